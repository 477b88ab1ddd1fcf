// Virtual documents for a task's changes, backed by `pitcrew/task`: for each file of the task's
// result, its text before and after (as the server reads them from git; rebuilt from the
// unified diff with diff.ts when a file's texts are not available), under the `pitcrew-task`
// scheme, so that `vscode.diff` can compare them; and the task in detail as markdown when it
// has no changes.

import * as vscode from 'vscode';

import { fileSides, parseUnifiedDiff, type FileDiff } from './diff';
import type { PlanSnapshot, TaskDetail } from './lsp_ext';
import { taskFingerprint, taskMarkdown } from './plan_model';

export const SCHEME = 'pitcrew-task';

type Side = 'before' | 'after' | 'detail';

/** `pitcrew-task:/before/src/lib.rs?p-1/delegated`: the path keeps the file's extension, so the
 * diff editor highlights it as the file. */
export function taskUri(taskId: string, side: Side, path: string): vscode.Uri {
  return vscode.Uri.from({ scheme: SCHEME, path: `/${side}/${path}`, query: taskId });
}

function parseTaskUri(uri: vscode.Uri): { taskId: string; side: Side; path: string } {
  const [, side, ...rest] = uri.path.split('/');
  return { taskId: uri.query, side: side as Side, path: rest.join('/') };
}

/** How long a task's detail serves both sides of a diff (and its markdown) without asking again. */
const DETAIL_TTL_MS = 2000;

export class TaskDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  /** Recent details, so both sides of a diff cost one request. */
  private readonly details = new Map<string, { at: number; detail: Promise<TaskDetail> }>();
  /** The open documents of each task, and what the task looked like when they were computed. */
  private readonly open = new Map<string, { uris: Set<string>; fingerprint: string | undefined }>();
  private readonly closed: vscode.Disposable;

  constructor(
    private readonly fetch: (taskId: string, path?: string) => Promise<TaskDetail>,
    private readonly folder: () => vscode.Uri | undefined,
  ) {
    this.closed = vscode.workspace.onDidCloseTextDocument((document) => this.documentClosed(document.uri));
  }

  dispose(): void {
    this.closed.dispose();
    this.changed.dispose();
  }

  /** A plan changed: the open documents of its tasks whose state changed are recomputed (a
   * plan changes up to ten times a second, mostly in what its agents spent). */
  planChanged(plan: PlanSnapshot): void {
    for (const task of plan.tasks) {
      const open = this.open.get(task.taskId);
      const fingerprint = taskFingerprint(task);
      if (open === undefined || open.fingerprint === fingerprint) {
        continue;
      }
      open.fingerprint = fingerprint;
      this.details.delete(task.taskId);
      for (const uri of open.uris) {
        this.changed.fire(vscode.Uri.parse(uri));
      }
    }
  }

  private documentClosed(uri: vscode.Uri): void {
    if (uri.scheme !== SCHEME) {
      return;
    }
    const { taskId } = parseTaskUri(uri);
    const open = this.open.get(taskId);
    open?.uris.delete(uri.toString());
    if (open !== undefined && open.uris.size === 0) {
      this.open.delete(taskId);
      this.details.delete(taskId);
    }
  }

  detail(taskId: string): Promise<TaskDetail> {
    const now = Date.now();
    for (const [id, cached] of this.details) {
      if (now - cached.at >= DETAIL_TTL_MS) {
        this.details.delete(id);
      }
    }
    const cached = this.details.get(taskId);
    if (cached !== undefined) {
      return cached.detail;
    }
    const detail = this.fetch(taskId);
    this.details.set(taskId, { at: now, detail });
    detail.catch(() => this.details.delete(taskId));
    return detail;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const { taskId, side, path } = parseTaskUri(uri);
    const open = this.open.get(taskId) ?? { uris: new Set<string>(), fingerprint: undefined };
    this.open.set(taskId, open);
    open.uris.add(uri.toString());
    const detail = await this.detail(taskId);
    open.fingerprint ??= taskFingerprint(detail);
    if (side === 'detail') {
      return taskMarkdown(detail);
    }
    // Both texts from the server, exactly as the task started and as it ended.
    const exact = await this.fetch(taskId, path)
      .then((d) => (d.files ?? []).find((f) => f.path === path))
      .catch(() => undefined);
    if (exact !== undefined && !exact.binary) {
      const text = side === 'before' ? exact.base : exact.result;
      if (text !== undefined || exact.change === (side === 'before' ? 'added' : 'deleted')) {
        return text ?? '';
      }
    }
    const file = parseUnifiedDiff(detail.diff ?? '').find((f) => f.path === path);
    if (file === undefined) {
      return '';
    }
    const sides = fileSides(file, await this.currentText(file));
    return side === 'before' ? sides.before : sides.after;
  }

  /** The file as the user has it: the open buffer (unsaved edits included), else the disk. */
  async currentText(file: FileDiff): Promise<string | undefined> {
    const folder = this.folder();
    const path = file.oldPath ?? file.path;
    if (folder === undefined || path === '') {
      return undefined;
    }
    const uri = vscode.Uri.joinPath(folder, path);
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (document !== undefined) {
      return document.getText();
    }
    try {
      return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    } catch {
      return undefined;
    }
  }

  /** Opens the task's changes: a diff editor for one file, a multi-file diff for more, or the
   * task in detail when it has none. */
  async show(taskId: string, title: string): Promise<void> {
    this.details.delete(taskId);
    const detail = await this.detail(taskId);
    const files = parseUnifiedDiff(detail.diff ?? '').filter((f) => !f.binary);
    const folder = this.folder();
    if (files.length === 0 || folder === undefined) {
      const uri = taskUri(taskId, 'detail', `${taskId.replace(/\//g, '-')}.md`);
      await vscode.window.showTextDocument(uri, { preview: true });
      return;
    }
    if (files.length === 1) {
      const [file] = files;
      await vscode.commands.executeCommand(
        'vscode.diff',
        taskUri(taskId, 'before', file.path),
        taskUri(taskId, 'after', file.path),
        `${file.path} ↔ ${title}`,
        { preview: true },
      );
      return;
    }
    await vscode.commands.executeCommand(
      'vscode.changes',
      `pitcrew: ${title}`,
      files.map((f) => [vscode.Uri.joinPath(folder, f.path), taskUri(taskId, 'before', f.path), taskUri(taskId, 'after', f.path)]),
    );
  }
}
