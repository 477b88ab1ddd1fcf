// The pitcrew extension: runs `pitcrew lsp` for the workspace folder with vscode-languageclient
// and adds what plain LSP cannot show: commands to delegate, review and plan, the Plans view, the
// task diffs and a status bar item. The server's own commands (`pitcrew.delegate`, …, used by
// its code actions) are registered by languageclient; the extension's commands are
// `pitcrew.ui.*` and call them with `workspace/executeCommand`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  ResponseError,
  State,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';

import * as args from './args';
import * as ext from './lsp_ext';
import { mergeListed, mergePlan, statusSpec, stoppedPlans, targetChoices, type Action, type PlanNode } from './plan_model';
import { PlanTree } from './plan_view';
import { parseServerLine } from './server_log';
import { isMissing, resolveServer } from './server_path';
import { configLayer, coversKeys, droppedWarning, needsRestart, type ConfigLayer } from './settings';
import { SCHEME, TaskDocuments } from './task_documents';

const VIEW = 'pitcrew.plans';
/** How long to keep asking while the server is still loading its configuration. */
const STARTING_TIMEOUT_MS = 30_000;
/** How long a request waits for a server that is starting (answering `initialize`). */
const CONNECT_TIMEOUT_MS = 10_000;

let controller: Controller | undefined;

export function activate(context: vscode.ExtensionContext): void {
  controller = new Controller();
  context.subscriptions.push(controller);
  // Not awaited: activation (and with it every command, Restart and Show Log included) must not
  // wait for a server that may never answer.
  void controller.restart();
}

/** Whether `folder` has a pitcrew.toml, or it or a folder above it holds `.git` (a folder, or a worktree's file). */
function inRepository(folder: string): boolean {
  if (fs.existsSync(path.join(folder, 'pitcrew.toml'))) {
    return true;
  }
  for (let dir = folder; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, '.git'))) {
      return true;
    }
    if (path.dirname(dir) === dir) {
      return false;
    }
  }
}

/**
 * The delegate picker: a preset, "Custom instruction…", or whatever the user typed (offered
 * last, so typing filters the presets first; typing an instruction no preset matches and
 * pressing Enter delegates with it).
 */
function pickDelegation(title: string): Promise<{ choice: args.PresetChoice; typed?: string } | undefined> {
  const pick = vscode.window.createQuickPick<args.PresetChoice & vscode.QuickPickItem & { typed?: string }>();
  pick.title = title;
  pick.placeholder = 'What should the implementer do? Pick a preset, or type an instruction and press Enter';
  pick.matchOnDescription = true;
  pick.items = args.PRESET_CHOICES;
  pick.onDidChangeValue((value) => {
    const typed = value.trim();
    if (typed === '') {
      pick.items = args.PRESET_CHOICES;
      return;
    }
    const own: args.PresetChoice & vscode.QuickPickItem & { typed?: string } = {
      label: typed,
      description: 'delegate with this instruction',
      custom: true,
      alwaysShow: true,
      typed,
    };
    pick.items = [...args.PRESET_CHOICES, own];
    // Replacing the items resets the highlight: keep it on a preset the text names, else on
    // the typed instruction, so Enter does what the list shows.
    const named = args.PRESET_CHOICES.find((c) => c.label.replace(/^\$\([^)]*\)\s*/, '').toLowerCase().includes(typed.toLowerCase()));
    pick.activeItems = [named ?? own];
  });
  return new Promise((resolve) => {
    let done = false;
    pick.onDidAccept(() => {
      // The highlighted item; none when the list was just replaced as the user typed: then
      // what they typed is the instruction.
      const item = pick.selectedItems[0] ?? pick.activeItems[0];
      const typed = pick.value.trim();
      done = true;
      pick.hide();
      if (item !== undefined) {
        // The typed item may trail the last keystrokes: what is in the box is the instruction.
        resolve({ choice: item, typed: item.typed === undefined ? undefined : typed || item.typed });
      } else if (typed !== '') {
        resolve({ choice: { label: typed, description: 'delegate with this instruction', custom: true }, typed });
      } else {
        resolve(undefined);
      }
    });
    pick.onDidHide(() => {
      pick.dispose();
      if (!done) {
        resolve(undefined);
      }
    });
    pick.show();
  });
}

export function deactivate(): Promise<void> | undefined {
  const stopping = controller?.shutdown();
  controller = undefined;
  return stopping;
}

type Connection = 'starting' | 'running' | 'stopped';

class Controller implements vscode.Disposable {
  private readonly log = vscode.window.createOutputChannel('pitcrew', { log: true });
  private readonly tree = new PlanTree();
  private readonly view: vscode.TreeView<PlanNode>;
  private readonly status = vscode.window.createStatusBarItem('pitcrew.status', vscode.StatusBarAlignment.Left, 10);
  private readonly documents: TaskDocuments;
  private client: LanguageClient | undefined;
  private folder: vscode.WorkspaceFolder | undefined;
  private plans: ext.PlanSnapshot[] = [];
  private connection: Connection = 'stopped';
  /** The configuration sent as `initializationOptions` to the running server. */
  private sentLayer: ConfigLayer | undefined;
  /** Restarts run one after the other; only the latest one asked for starts a server. */
  private restarting: Promise<void> = Promise.resolve();
  private generation = 0;
  /** Gives up on the start in progress (the server has not answered `initialize`). */
  private abandonStart: (() => void) | undefined;
  private disposed = false;
  private shuttingDown: Promise<void> | undefined;
  /** The questions already shown as toasts, by escalation id. */
  private readonly told = new Set<string>();
  /** The settings that look like keys last warned about. */
  private warnedDropped = '';
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.view = vscode.window.createTreeView(VIEW, { treeDataProvider: this.tree, showCollapseAll: true });
    this.documents = new TaskDocuments(
      (taskId, path) =>
        this.request<ext.TaskDetail>(ext.TASK, { taskId, path } satisfies ext.TaskParams),
      () => this.folder?.uri,
    );
    this.status.name = 'pitcrew';
    this.status.command = { command: `${VIEW}.focus`, title: 'Show the plans' };
    this.updateStatus();
    this.status.show();

    const command = (id: string, run: (...a: any[]) => unknown) =>
      vscode.commands.registerCommand(id, async (...a: any[]) => {
        if (!vscode.workspace.isTrusted && id !== 'pitcrew.showLog') {
          const choice = await vscode.window.showWarningMessage(
            'pitcrew starts once you trust this workspace: it runs the checks pitcrew.toml configures and sends code to the models it names.',
            'Manage Workspace Trust',
          );
          if (choice === 'Manage Workspace Trust') {
            await vscode.commands.executeCommand('workbench.trust.manage');
          }
          return;
        }
        try {
          await run(...a);
        } catch (err) {
          this.showError(err);
        }
      });
    this.disposables.push(
      this.log,
      this.tree,
      this.view,
      this.status,
      this.documents,
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.documents),
      command('pitcrew.restart', () => this.restart()),
      command('pitcrew.showLog', () => this.log.show()),
      command('pitcrew.ui.delegate', () => this.delegate()),
      command('pitcrew.ui.review', () => this.review()),
      command('pitcrew.ui.plan', () => this.plan()),
      command('pitcrew.ui.apply', (node?: PlanNode) => this.act('apply', node)),
      command('pitcrew.ui.discard', (node?: PlanNode) => this.act('discard', node)),
      command('pitcrew.ui.cancel', (node?: PlanNode) => this.act('cancel', node)),
      command('pitcrew.ui.retry', (node?: PlanNode) => this.act('retry', node)),
      command('pitcrew.ui.answer', (node?: PlanNode) => this.answer(node)),
      command('pitcrew.ui.showPlan', (node?: PlanNode) => this.showPlan(node)),
      command('pitcrew.ui.openTaskDiff', (node?: PlanNode) => this.openTaskDiff(node)),
      command('pitcrew.ui.refreshPlans', () => this.loadPlans()),
      vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.restart()),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        if (this.folder === undefined || !vscode.workspace.workspaceFolders?.includes(this.folder)) {
          void this.restart();
        }
      }),
    );
  }

  dispose(): void {
    void this.shutdown();
  }

  /** Stops the server for good (deactivation): no restart asked for before or after starts one. */
  shutdown(): Promise<void> {
    if (this.shuttingDown === undefined) {
      this.disposed = true;
      this.generation++;
      this.abandonStart?.();
      // The output channel and the rest go once the server has stopped (it logs meanwhile).
      this.shuttingDown = this.stop().finally(() => {
        for (const disposable of this.disposables) {
          disposable.dispose();
        }
      });
    }
    return this.shuttingDown;
  }

  // ------------------------------------------------------------------------------------------
  // The client's life.

  /**
   * (Re)starts the server: `pitcrew.restart`, activation, trust, settings and folder changes
   * all come here, and nothing else starts a client (a crashed server is not restarted behind
   * the user's back: see `errorHandler`). A start still waiting for the server is given up, so
   * that a server that never answers cannot hold up the next one.
   */
  restart(): Promise<void> {
    const generation = ++this.generation;
    this.abandonStart?.();
    const run = this.restarting.then(() => (generation === this.generation && !this.disposed ? this.doRestart(generation) : undefined));
    this.restarting = run.catch(() => undefined);
    return run;
  }

  private async doRestart(generation: number): Promise<void> {
    await this.stop();
    if (generation !== this.generation || this.disposed) {
      return;
    }
    if (!vscode.workspace.isTrusted) {
      // The server runs the repository's checks and talks to the models its pitcrew.toml and
      // .vscode/settings.json name: only in a workspace the user trusts.
      this.log.info('the workspace is not trusted: pitcrew starts when you trust it');
      return;
    }
    this.folder = vscode.workspace.workspaceFolders?.[0];
    if (this.folder === undefined) {
      this.log.info('no workspace folder open: pitcrew starts when a folder is opened');
      return;
    }
    if (this.folder.uri.scheme !== 'file') {
      this.log.warn(`${this.folder.uri.toString()} is not a local folder; pitcrew needs one`);
      return;
    }
    if (!inRepository(this.folder.uri.fsPath)) {
      // Activated at startup in any window: a folder outside git has nothing for the team,
      // and no status bar item either (pitcrew: Restart starts it after `git init`).
      this.log.info(`${this.folder.uri.fsPath} is not in a git repository and has no pitcrew.toml: pitcrew is idle`);
      this.status.hide();
      return;
    }
    this.status.show();
    const settings = vscode.workspace.getConfiguration('pitcrew', this.folder);
    const server = resolveServer({
      envPath: process.env.PITCREW_SERVER_PATH,
      settingPath: settings.get<string>('server.path'),
      searchPath: process.env.PATH,
      workspaceFolder: this.folder.uri.fsPath,
      pathExtensions: process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE').split(';') : [''],
    });
    if (isMissing(server)) {
      this.log.error(server.message);
      this.setConnection('stopped');
      void vscode.window.showErrorMessage(server.message, 'Open Settings', 'Show Log').then((choice) => {
        if (choice === 'Open Settings') {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'pitcrew.server.path');
        } else if (choice === 'Show Log') {
          this.log.show();
        }
      });
      return;
    }
    this.log.info(`starting ${server.command} lsp (from ${server.source}) in ${this.folder.uri.fsPath}`);
    const layer = this.configLayer();
    this.sentLayer = layer;
    const serverOptions: ServerOptions = {
      command: server.command,
      args: ['lsp'],
      options: { cwd: this.folder.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      // The folder's files: a relative pattern (a glob built from the path would need escaping).
      documentSelector: [{ scheme: 'file', pattern: { baseUri: this.folder.uri.toString(), pattern: '**/*' } }],
      workspaceFolder: this.folder,
      outputChannel: this.log,
      traceOutputChannel: this.log,
      // The server logs to stderr with tracing's levels: keep them (languageclient would log
      // every stderr line as an error).
      stdioOptions: {
        stdout: (input, channel) => {
          readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', (line) => channel.info(line));
        },
        stderr: (input, channel) => {
          readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', (line) => {
            const { level, text } = parseServerLine(line);
            channel[level](text);
          });
        },
      },
      initializationOptions: layer ?? {},
      // A crashed server is not restarted behind `restart()`'s back (with the settings it
      // started with and the plans it was running shown as still running): the user is told,
      // and Restart goes through `restart()`.
      errorHandler: {
        error: (_error, _message, count) => ({ action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => ({ action: CloseAction.DoNotRestart, handled: true }),
      },
      middleware: {
        // Should the server ask for its settings, it gets the same layer (never `server.*`).
        workspace: {
          configuration: (params, token, next) =>
            params.items.some((item) => item.section === 'pitcrew')
              ? params.items.map((item) => (item.section === 'pitcrew' ? (this.configLayer() ?? {}) : null))
              : next(params, token),
        },
        // Delegations started from the server's code actions show in the view like any other.
        executeCommand: async (command, commandArgs, next) => {
          const result = await next(command, commandArgs);
          this.started(result);
          return result;
        },
      },
    };
    const client = new LanguageClient('pitcrew', 'pitcrew', serverOptions, clientOptions);
    this.client = client;
    this.setConnection('starting');
    client.onDidChangeState((e) => {
      if (this.client !== client) {
        return;
      }
      this.setConnection(e.newState === State.Running ? 'running' : e.newState === State.Starting ? 'starting' : 'stopped');
      if (e.oldState === State.Running && e.newState === State.Stopped) {
        // Not a stop of ours (`stop()` forgets the client first): the server exited.
        this.client = undefined;
        this.serverStopped();
      }
    });
    // The team's questions and the end of plans arrive in plan snapshots and show as toasts
    // with buttons (tellQuestions, tellEnding): the server sends no message of its own.
    client.registerFeature({
      fillClientCapabilities: (capabilities) => {
        capabilities.experimental = { ...(capabilities.experimental as object | undefined), pitcrew: { plugin: true } };
      },
      initialize: () => {},
      getState: () => ({ kind: 'static' }),
      clear: () => {},
    });
    client.onNotification(ext.PLAN_CHANGED, (params: ext.PlanChangedParams) => this.planChanged(params));
    const abandoned = new Promise<'abandoned'>((resolve) => {
      this.abandonStart = () => resolve('abandoned');
    });
    let outcome: 'started' | 'abandoned';
    try {
      outcome = await Promise.race([client.start().then(() => 'started' as const), abandoned]);
    } catch (err) {
      if (this.client !== client) {
        // Given up on by a restart or shutdown meanwhile: not worth an error.
        return;
      }
      this.log.error(`the server did not start: ${message(err)}`);
      this.client = undefined;
      this.setConnection('stopped');
      void vscode.window
        .showErrorMessage(`pitcrew: the server did not start (${message(err)}).`, 'Restart', 'Show Log', 'Open Settings')
        .then((choice) => {
          if (choice === 'Restart') {
            void this.restart();
          } else if (choice === 'Show Log') {
            this.log.show();
          } else if (choice === 'Open Settings') {
            void vscode.commands.executeCommand('workbench.action.openSettings', 'pitcrew.server');
          }
        });
      return;
    } finally {
      this.abandonStart = undefined;
    }
    if (outcome === 'abandoned' || this.client !== client) {
      // The next restart (or the shutdown) stops it.
      return;
    }
    this.loadPlans().catch((err) => this.log.warn(`cannot list the plans: ${message(err)}`));
  }

  /** The server exited on its own: say so, and offer Restart (which goes through `restart()`). */
  private serverStopped(): void {
    this.plans = stoppedPlans(this.plans);
    this.plansChanged();
    const text = 'pitcrew: the server stopped unexpectedly; running plans are interrupted (Retry resumes them).';
    this.log.error(text);
    void vscode.window.showErrorMessage(text, 'Restart', 'Show Log').then((choice) => {
      if (choice === 'Restart') {
        void this.restart();
      } else if (choice === 'Show Log') {
        this.log.show();
      }
    });
  }

  private async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.setConnection('stopped');
    this.plans = stoppedPlans(this.plans);
    this.plansChanged();
    if (client === undefined) {
      return;
    }
    if (client.state === State.Starting) {
      // languageclient cannot stop a client before the server answers `initialize`: end the
      // process, which fails the start; should it start all the same, stop it then.
      this.log.warn('the server did not finish starting: stopping its process');
      client.onDidChangeState((e) => {
        if (e.newState === State.Running) {
          client.stop(2000).catch(() => undefined);
        }
      });
      void killWhenSpawned(client);
      return;
    }
    if (client.state === State.Running) {
      try {
        await client.stop(5000);
      } catch (err) {
        this.log.warn(`stopping the server: ${message(err)}`);
      }
    }
  }

  private configLayer(): ConfigLayer | undefined {
    const settings = vscode.workspace.getConfiguration('pitcrew', this.folder);
    const built = configLayer((key) => settings.get(key));
    // Asked for on every change and every configuration pull: warn once per set of settings.
    const warning = droppedWarning(built.dropped, this.warnedDropped);
    this.warnedDropped = warning.key;
    if (warning.text !== undefined) {
      this.log.warn(warning.text);
      void vscode.window.showWarningMessage(warning.text);
    }
    return built.layer;
  }

  private configurationChanged(e: vscode.ConfigurationChangeEvent): void {
    if (!e.affectsConfiguration('pitcrew')) {
      return;
    }
    const layer = this.configLayer();
    if (needsRestart((section) => e.affectsConfiguration(section)) || !coversKeys(layer, this.sentLayer)) {
      void this.restart();
      return;
    }
    // Models, roles and team limits reload in place: running agents keep running.
    void this.client?.sendNotification(DidChangeConfigurationNotification.type, { settings: layer ?? {} });
  }

  private setConnection(connection: Connection): void {
    this.connection = connection;
    this.updateStatus();
  }

  // ------------------------------------------------------------------------------------------
  // Plans.

  private async loadPlans(): Promise<void> {
    const result = await this.request<ext.PlansResult>(ext.PLANS, null);
    this.plans = mergeListed(this.plans, result.plans);
    this.plansChanged();
  }

  private planChanged(params: ext.PlanChangedParams): void {
    const previous = this.plans.find((p) => p.planId === params.plan.planId);
    if (previous !== undefined && previous.revision <= params.plan.revision) {
      this.tellEnding(previous, params.plan);
    }
    this.plans = mergePlan(this.plans, params.plan);
    this.plansChanged();
    this.documents.planChanged(params.plan);
  }

  /** A plan that just ended, seen live: a toast with the buttons that act on it. */
  private tellEnding(previous: ext.PlanSnapshot, plan: ext.PlanSnapshot): void {
    // Ended: no longer at work (its status final and its run over; the two can arrive in
    // separate snapshots), seen happen live.
    const atWork = (p: ext.PlanSnapshot) => p.running || ['planning', 'running', 'testing'].includes(p.status);
    if (!atWork(previous) || atWork(plan) || plan.question !== null) {
      return;
    }
    const goal = plan.goal.split('\n')[0];
    const outcome = plan.outcome ?? '';
    const review = plan.tasks.length > 0 && plan.tasks.every((t) => t.kind === 'review');
    if (plan.status === 'ready' && review) {
      // A review has nothing to apply: its findings are in the editor.
      void vscode.window
        .showInformationMessage(`pitcrew: reviewed "${goal}"${outcome === '' ? '' : ` (${outcome})`}.`, 'Show Plans')
        .then((choice) => this.endingChoice(plan, choice));
    } else if (plan.status === 'ready') {
      void vscode.window
        .showInformationMessage(`pitcrew: "${goal}" is ready${outcome === '' ? '' : ` (${outcome})`}.`, 'Apply', 'Show Plans', 'Discard')
        .then((choice) => this.endingChoice(plan, choice));
    } else if (plan.status === 'failed' || plan.status === 'escalated') {
      void vscode.window
        .showWarningMessage(`pitcrew: "${goal}" ${plan.status}${outcome === '' ? '' : `: ${outcome}`}`, 'Retry', 'Show Plans', 'Show Log')
        .then((choice) => this.endingChoice(plan, choice));
    }
  }

  private async endingChoice(plan: ext.PlanSnapshot, choice: string | undefined): Promise<void> {
    try {
      if (choice === 'Apply' || choice === 'Discard' || choice === 'Retry') {
        const action = choice.toLowerCase() as 'apply' | 'discard' | 'retry';
        await this.executeServer(ext.commands[action], args.targetArgs({ planId: plan.planId }));
      } else if (choice === 'Show Plans') {
        await vscode.commands.executeCommand(`${VIEW}.focus`);
      } else if (choice === 'Show Log') {
        this.log.show();
      }
    } catch (err) {
      this.showError(err);
    }
  }

  /**
   * A new question of the team: a toast (it never takes the keyboard) with the choices as
   * buttons; dismissed, the question stays in the Plans view and "Answer Question…".
   */
  private tellQuestions(): void {
    for (const plan of this.plans) {
      const question = plan.question;
      if (question === null) {
        continue;
      }
      // Escalation ids count within a plan: key by both.
      const key = `${plan.planId}/${question.escalationId}`;
      if (this.told.has(key)) {
        continue;
      }
      this.told.add(key);
      const task = question.taskId === null ? '' : ` (${question.taskId})`;
      void vscode.window
        .showWarningMessage(`pitcrew asks${task}: ${question.text}`, ...question.choices.map((c) => c.label))
        .then(async (label) => {
          const choice = question.choices.find((c) => c.label === label);
          if (choice === undefined) {
            return;
          }
          try {
            await this.executeServer(ext.commands.answer, args.answerArgs(plan.planId, question.escalationId, choice.id));
          } catch (err) {
            this.showError(err);
          }
        });
    }
  }

  private plansChanged(): void {
    this.tree.update(this.plans);
    this.updateStatus();
    this.tellQuestions();
  }

  private updateStatus(): void {
    const spec = statusSpec(this.plans, this.connection);
    this.status.text = spec.text;
    this.status.tooltip = spec.tooltip;
    this.status.backgroundColor = spec.busy ? new vscode.ThemeColor('statusBarItem.prominentBackground') : undefined;
  }

  /** After a command that started work: show it in the view, without taking the focus. */
  private started(result: unknown): void {
    const started = result as Partial<ext.Started> | null | undefined;
    const id = started?.taskId ?? started?.planId;
    if (typeof id !== 'string') {
      return;
    }
    void this.revealWhenListed(id);
  }

  private async revealWhenListed(id: string): Promise<void> {
    for (let attempt = 0; attempt < 40; attempt++) {
      const node = this.tree.find(id);
      if (node !== undefined) {
        if (!this.view.visible) {
          return;
        }
        try {
          await this.view.reveal(node, { select: true, focus: false, expand: true });
          return;
        } catch {
          // The view has not rendered the new plan yet.
        }
      }
      await delay(50);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Talking to the server.

  private async request<R>(method: string, params: unknown): Promise<R> {
    const connecting = Date.now() + CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + STARTING_TIMEOUT_MS;
    for (;;) {
      const client = this.client;
      if (client === undefined || this.connection === 'stopped') {
        throw new NotRunning();
      }
      if (!client.isRunning()) {
        await delay(100);
        if (Date.now() > connecting) {
          throw new NotRunning();
        }
        continue;
      }
      try {
        // No params at all rather than `null`: vscode-jsonrpc would send `[null]`.
        return await (params === null ? client.sendRequest<R>(method) : client.sendRequest<R>(method, params));
      } catch (err) {
        // The team is still loading its configuration: ask again shortly.
        if (err instanceof ResponseError && /still starting/.test(err.message) && Date.now() < deadline) {
          await delay(150);
          continue;
        }
        throw err;
      }
    }
  }

  private executeServer<R>(command: ext.ServerCommand, argument: unknown): Promise<R> {
    return this.request<R>(ExecuteCommandRequest.method, { command, arguments: [argument] });
  }

  private showError(err: unknown): void {
    if (err instanceof NotRunning) {
      void vscode.window.showErrorMessage('pitcrew: the server is not running.', 'Restart', 'Show Log').then((choice) => {
        if (choice === 'Restart') {
          void this.restart();
        } else if (choice === 'Show Log') {
          this.log.show();
        }
      });
      return;
    }
    const text = message(err);
    this.log.error(text);
    void vscode.window.showErrorMessage(text.startsWith('pitcrew') ? text : `pitcrew: ${text}`);
  }

  // ------------------------------------------------------------------------------------------
  // Commands.

  /** The active editor's file in the workspace, as LSP URI and range. */
  private selection(): { uri: string; range: ext.Range | undefined; editor: vscode.TextEditor; label: string } {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || editor.document.uri.scheme !== 'file') {
      throw new Error('pitcrew: open a file of the workspace and select the code first.');
    }
    const client = this.client;
    if (client === undefined) {
      throw new NotRunning();
    }
    const converter = client.code2ProtocolConverter;
    const range = args.selectionRange(converter.asRange(editor.selection));
    const label = args.describeSelection(vscode.workspace.asRelativePath(editor.document.uri), range);
    return { uri: converter.asUri(editor.document.uri), range, editor, label };
  }

  private async delegate(): Promise<void> {
    const selection = this.selection();
    const picked = await pickDelegation(`pitcrew: delegate ${selection.label}`);
    if (picked === undefined) {
      return;
    }
    const choice = picked.choice;
    let instruction: string | undefined = picked.typed;
    if (choice.custom && instruction === undefined) {
      instruction = await vscode.window.showInputBox({
        title: `pitcrew: delegate ${selection.label}`,
        prompt: 'The instruction for the implementer',
        placeHolder: 'e.g. handle the empty input and add a test for it',
        validateInput: (value) => (value.trim() === '' ? 'Say what to do' : undefined),
      });
      if (instruction === undefined) {
        return;
      }
    }
    const diagnostics =
      choice.preset === 'fix'
        ? vscode.languages
            .getDiagnostics(selection.editor.document.uri)
            // pitcrew's own findings are the reviewer's, not the compiler's.
            .filter((d) => d.source !== 'pitcrew')
            .filter((d) => d.range.intersection(selection.editor.selection) !== undefined || selection.range === undefined)
            .map((d) => d.message)
        : [];
    const started = await this.executeServer<ext.Started>(
      ext.commands.delegate,
      args.delegateArgs(selection.uri, selection.range, { preset: choice.preset, instruction }, diagnostics),
    );
    this.started(started);
    void vscode.window.setStatusBarMessage(`pitcrew: delegated ${selection.label}`, 4000);
  }

  private async review(): Promise<void> {
    const selection = this.selection();
    const started = await this.executeServer<ext.Started>(ext.commands.review, args.reviewArgs(selection.uri, selection.range));
    this.started(started);
    void vscode.window.setStatusBarMessage(`pitcrew: reviewing ${selection.label}`, 4000);
  }

  private async plan(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const inWorkspace = editor !== undefined && editor.document.uri.scheme === 'file' && !editor.selection.isEmpty;
    const goal = await vscode.window.showInputBox({
      title: 'pitcrew: plan a goal',
      prompt: inWorkspace ? 'The goal for the team (the selection is passed along)' : 'The goal for the team',
      placeHolder: 'e.g. add a --json flag to the status command, with tests',
      validateInput: (value) => (value.trim() === '' ? 'Give a goal' : undefined),
    });
    if (goal === undefined) {
      return;
    }
    const selection = inWorkspace ? this.selection() : undefined;
    const started = await this.executeServer<ext.Started>(ext.commands.plan, args.planArgs(goal, selection?.uri, selection?.range));
    this.started(started);
  }

  /** The plan or task a command acts on: the view's node, else one picked from a quick pick. */
  private async target(action: Action, node: PlanNode | undefined): Promise<{ planId: string } | { taskId: string } | undefined> {
    if (node !== undefined) {
      if (node.kind === 'task') {
        return node.plan.tasks.length === 1 ? { planId: node.plan.planId } : { taskId: node.task.taskId };
      }
      return { planId: node.plan.planId };
    }
    await this.loadPlans();
    const choices = targetChoices(this.plans, action);
    if (choices.length === 0) {
      void vscode.window.showInformationMessage(`pitcrew: no plan or task to ${action} now.`);
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(choices, {
      title: `pitcrew: ${action}`,
      placeHolder: `The plan or task to ${action}`,
      matchOnDescription: true,
    });
    return picked?.target;
  }

  private async act(action: Exclude<Action, 'answer'>, node: PlanNode | undefined): Promise<void> {
    const target = await this.target(action, node);
    if (target === undefined) {
      return;
    }
    if (action === 'discard') {
      const what = 'taskId' in target ? `task ${target.taskId}` : `plan ${target.planId}`;
      const sure = await vscode.window.showWarningMessage(
        `Discard ${what}? Its work is thrown away.`,
        { modal: true },
        'Discard',
      );
      if (sure !== 'Discard') {
        return;
      }
    }
    await this.executeServer(ext.commands[action], args.targetArgs(target));
  }

  private async answer(node: PlanNode | undefined): Promise<void> {
    let plan = node?.plan;
    if (plan === undefined) {
      await this.loadPlans();
      const asking = this.plans.filter((p) => p.question !== null);
      const picked =
        asking.length <= 1
          ? asking[0]
          : (
              await vscode.window.showQuickPick(
                asking.map((p) => ({ label: p.question!.text, description: p.planId, plan: p })),
                { title: 'pitcrew: answer a question' },
              )
            )?.plan;
      if (picked === undefined) {
        if (asking.length === 0) {
          void vscode.window.showInformationMessage('pitcrew: the team has no question for you.');
        }
        return;
      }
      plan = picked;
    }
    const question = plan.question;
    if (question === null) {
      return;
    }
    const choice = await vscode.window.showQuickPick(
      question.choices.map((c) => ({ label: c.label, description: c.id, id: c.id })),
      { title: 'pitcrew asks', placeHolder: question.text },
    );
    if (choice !== undefined) {
      await this.executeServer(ext.commands.answer, args.answerArgs(plan.planId, question.escalationId, choice.id));
    }
  }

  private async showPlan(node: PlanNode | undefined): Promise<void> {
    // The server writes the plan's markdown and asks VS Code to show it (window/showDocument).
    await this.executeServer<ext.ShowPlanResult>(ext.commands.showPlan, node === undefined ? {} : { planId: node.plan.planId });
  }

  private async openTaskDiff(node: PlanNode | undefined): Promise<void> {
    if (node === undefined || node.kind !== 'task') {
      await vscode.commands.executeCommand(`${VIEW}.focus`);
      return;
    }
    await this.documents.show(node.task.taskId, node.task.title);
  }
}

class NotRunning extends Error {
  constructor() {
    super('pitcrew: the server is not running');
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Ends the process of a client that is starting, once it exists (languageclient spawns it a
 * moment after the client enters `Starting`). */
async function killWhenSpawned(client: LanguageClient): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const process = client.serverProcess;
    if (process !== undefined) {
      process.kill();
      return;
    }
    if (client.state !== State.Starting) {
      return;
    }
    await delay(50);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
