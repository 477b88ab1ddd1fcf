// The Plans view: plans, their pending questions and their tasks, from the snapshots the
// extension keeps up to date (`pitcrew/plans`, then `pitcrew/planChanged`).

import * as vscode from 'vscode';

import type { PlanSnapshot } from './lsp_ext';
import { childNodes, itemSpec, rootNodes, treeSignature, type PlanNode } from './plan_model';

export class PlanTree implements vscode.TreeDataProvider<PlanNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<PlanNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private plans: PlanSnapshot[] = [];

  dispose(): void {
    this.changed.dispose();
  }

  private shown = '';

  /** Takes the latest snapshots; redraws only when what the view shows changed. */
  update(plans: PlanSnapshot[]): void {
    this.plans = plans;
    const shown = treeSignature(plans);
    if (shown !== this.shown) {
      this.shown = shown;
      this.changed.fire(undefined);
    }
  }

  getChildren(node?: PlanNode): PlanNode[] {
    return node === undefined ? rootNodes(this.plans) : childNodes(node);
  }

  getParent(node: PlanNode): PlanNode | undefined {
    return node.kind === 'plan' ? undefined : { kind: 'plan', plan: node.plan };
  }

  /** The node of a plan or task id, to reveal it. */
  find(id: string): PlanNode | undefined {
    for (const plan of rootNodes(this.plans)) {
      if (plan.kind === 'plan' && plan.plan.planId === id) {
        return plan;
      }
      const child = childNodes(plan).find((c) => c.kind === 'task' && c.task.taskId === id);
      if (child !== undefined) {
        return child;
      }
    }
    return undefined;
  }

  getTreeItem(node: PlanNode): vscode.TreeItem {
    const index = node.kind === 'plan' ? this.plans.findIndex((p) => p.planId === node.plan.planId) : 0;
    const spec = itemSpec(node, index);
    const collapsible = {
      none: vscode.TreeItemCollapsibleState.None,
      collapsed: vscode.TreeItemCollapsibleState.Collapsed,
      expanded: vscode.TreeItemCollapsibleState.Expanded,
    }[spec.collapsible];
    const item = new vscode.TreeItem(spec.label, collapsible);
    item.id = spec.id;
    item.description = spec.description;
    item.tooltip = new vscode.MarkdownString(spec.tooltip);
    item.iconPath = new vscode.ThemeIcon(spec.icon.id, spec.icon.color ? new vscode.ThemeColor(spec.icon.color) : undefined);
    item.contextValue = spec.contextValue;
    if (spec.click === 'openTaskDiff' && node.kind === 'task') {
      item.command = { command: 'pitcrew.ui.openTaskDiff', title: 'Open Changes', arguments: [node] };
    } else if (spec.click === 'answer') {
      item.command = { command: 'pitcrew.ui.answer', title: 'Answer', arguments: [node] };
    }
    return item;
  }
}
