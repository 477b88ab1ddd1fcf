// What the plan view and the status bar show, computed from plan snapshots: labels, icons,
// descriptions, tooltips and which actions each node offers. Pure (no `vscode`): the view turns
// these specs into TreeItems, and the unit tests check them under plain Node.

import type { PlanSnapshot, TaskDetail, TaskSummary } from './lsp_ext';

export type Action = 'apply' | 'discard' | 'cancel' | 'retry' | 'answer';

export interface Icon {
  /** A codicon id, e.g. `sync~spin`. */
  id: string;
  /** A theme color id, e.g. `testing.iconPassed`. */
  color?: string;
}

export interface ItemSpec {
  /** Stable across refreshes, so expansion and selection survive updates. */
  id: string;
  label: string;
  description: string;
  /** Markdown. */
  tooltip: string;
  icon: Icon;
  /** `plan …` / `task …` / `question …`, followed by the actions it offers. */
  contextValue: string;
  collapsible: 'none' | 'collapsed' | 'expanded';
  /** What clicking it does: open the task's changes, or answer the question. */
  click?: 'openTaskDiff' | 'answer';
}

export type PlanNode =
  | { kind: 'plan'; plan: PlanSnapshot }
  | { kind: 'question'; plan: PlanSnapshot }
  | { kind: 'task'; plan: PlanSnapshot; task: TaskSummary };

const TASK_ICONS: Record<string, Icon> = {
  pending: { id: 'circle-outline' },
  running: { id: 'sync~spin', color: 'charts.blue' },
  reviewing: { id: 'eye', color: 'charts.purple' },
  changes_requested: { id: 'request-changes', color: 'charts.orange' },
  approved: { id: 'pass', color: 'charts.green' },
  integrating: { id: 'git-merge', color: 'charts.blue' },
  ready: { id: 'check', color: 'testing.iconPassed' },
  applied: { id: 'check-all', color: 'testing.iconPassed' },
  failed: { id: 'error', color: 'testing.iconFailed' },
  cancelled: { id: 'circle-slash', color: 'disabledForeground' },
  escalated: { id: 'question', color: 'charts.yellow' },
};

const PLAN_ICONS: Record<string, Icon> = {
  planning: { id: 'loading~spin', color: 'charts.blue' },
  running: { id: 'sync~spin', color: 'charts.blue' },
  testing: { id: 'beaker', color: 'charts.blue' },
  ready: { id: 'check', color: 'testing.iconPassed' },
  applied: { id: 'check-all', color: 'testing.iconPassed' },
  failed: { id: 'error', color: 'testing.iconFailed' },
  cancelled: { id: 'circle-slash', color: 'disabledForeground' },
  escalated: { id: 'question', color: 'charts.yellow' },
};

/** Task statuses in which an agent is at work. */
const ACTIVE_TASK = new Set(['running', 'reviewing', 'changes_requested', 'integrating']);
const FINISHED_PLAN = new Set(['ready', 'applied', 'failed', 'cancelled', 'escalated']);

export function taskIcon(status: string): Icon {
  return TASK_ICONS[status] ?? { id: 'circle-outline' };
}

export function planIcon(plan: PlanSnapshot): Icon {
  if (!plan.running && !FINISHED_PLAN.has(plan.status)) {
    // Interrupted (the editor closed while it ran): it resumes with Retry.
    return { id: 'debug-pause', color: 'charts.yellow' };
  }
  return PLAN_ICONS[plan.status] ?? { id: 'circle-outline' };
}

/** `changes_requested` → `changes requested`. */
export function statusLabel(status: string): string {
  return status.replace(/_/g, ' ');
}

/** 950 → `950`, 12_345 → `12.3k`, 1_234_567 → `1.2M`. */
export function formatTokens(tokens: number): string {
  if (tokens < 1000) {
    return `${tokens}`;
  }
  if (tokens < 1_000_000) {
    return `${trimZero((tokens / 1000).toFixed(tokens < 10_000 ? 1 : 0))}k`;
  }
  return `${trimZero((tokens / 1_000_000).toFixed(1))}M`;
}

export function formatCost(usd: number): string {
  if (usd <= 0) {
    return '';
  }
  return usd < 0.01 ? '<$0.01' : `$${usd.toFixed(2)}`;
}

/**
 * `12.3k tok · $0.04`, or `` when nothing was spent; with what the prompt cache served and
 * saved: `12.3k tok (9k cached) · $0.04 (saved $0.10)`.
 */
export function formatSpend(tokens: number, costUsd: number, cachedTokens = 0, savedUsd = 0): string {
  const parts: string[] = [];
  if (tokens > 0) {
    const cached = cachedTokens > 0 ? ` (${formatTokens(cachedTokens)} cached)` : '';
    parts.push(`${formatTokens(tokens)} tok${cached}`);
  }
  const cost = formatCost(costUsd);
  if (cost !== '') {
    const saved = formatCost(savedUsd);
    parts.push(saved !== '' && savedUsd > 0 ? `${cost} (saved ${saved})` : cost);
  }
  return parts.join(' · ');
}

function trimZero(text: string): string {
  return text.replace(/\.0$/, '');
}

/** A task's own id, without its plan: `p-1/tests` → `tests`. */
export function shortTaskId(taskId: string): string {
  const slash = taskId.lastIndexOf('/');
  return slash === -1 ? taskId : taskId.slice(slash + 1);
}

function isReviewPlan(plan: PlanSnapshot): boolean {
  return plan.tasks.length > 0 && plan.tasks.every((t) => t.kind === 'review');
}

/** What the user can do with a plan, as the server allows it (server/src/lsp/team). */
export function planActions(plan: PlanSnapshot): Action[] {
  const actions: Action[] = [];
  const finished = FINISHED_PLAN.has(plan.status);
  if (plan.status === 'ready' && !plan.running && !isReviewPlan(plan)) {
    actions.push('apply');
  }
  if (plan.question !== null) {
    actions.push('answer');
  }
  if (plan.running) {
    actions.push('cancel');
  }
  const retryable = plan.tasks.some((t) => ['failed', 'cancelled', 'escalated'].includes(t.status));
  if (!plan.running && (retryable || !finished)) {
    actions.push('retry');
  }
  if (plan.status !== 'applied') {
    actions.push('discard');
  }
  return actions;
}

/** What the user can do with one task. In a one-task plan, the task stands for its plan. */
export function taskActions(plan: PlanSnapshot, task: TaskSummary): Action[] {
  if (plan.tasks.length === 1) {
    return planActions(plan).filter((a) => a !== 'answer');
  }
  const actions: Action[] = [];
  if (task.status === 'ready' && !plan.running && task.kind !== 'review') {
    actions.push('apply');
  }
  if (plan.running && !['ready', 'applied', 'failed', 'cancelled', 'escalated'].includes(task.status)) {
    actions.push('cancel');
  }
  if (['failed', 'cancelled', 'escalated'].includes(task.status)) {
    actions.push('retry');
  }
  // Discarding one task of a larger plan only stops it (that is Cancel): discard the plan.
  return actions;
}

function contextValue(kind: string, actions: string[]): string {
  return [kind, ...actions].join(' ');
}

/** The top-level nodes: plans, most recent first. */
export function rootNodes(plans: PlanSnapshot[]): PlanNode[] {
  return plans.map((plan) => ({ kind: 'plan', plan }));
}

/** A plan's children: its pending question, then its tasks in plan order. */
export function childNodes(node: PlanNode): PlanNode[] {
  if (node.kind !== 'plan') {
    return [];
  }
  const children: PlanNode[] = [];
  if (node.plan.question !== null) {
    children.push({ kind: 'question', plan: node.plan });
  }
  for (const task of node.plan.tasks) {
    children.push({ kind: 'task', plan: node.plan, task });
  }
  return children;
}

/** The first line of a plan's goal (goals can carry "The user pointed at …" paragraphs). */
/**
 * What the Plans view shows for `plans`, as one string: equal strings render the same tree.
 * The view refreshes only when it changes, since a refresh retires the commands of the rows
 * on screen and a click that lands just after one does nothing.
 */
export function treeSignature(plans: PlanSnapshot[]): string {
  const shown = (node: PlanNode, index: number): unknown => {
    const spec = itemSpec(node, index);
    const children = spec.collapsible === 'none' ? [] : childNodes(node).map((child) => shown(child, 0));
    return [spec, children];
  };
  return JSON.stringify(rootNodes(plans).map((node, index) => shown(node, index)));
}

export function goalTitle(goal: string): string {
  const first = goal.split('\n', 1)[0].trim();
  return first.length > 80 ? `${first.slice(0, 79)}…` : first;
}

export function itemSpec(node: PlanNode, index = 0): ItemSpec {
  switch (node.kind) {
    case 'plan':
      return planSpec(node.plan, index);
    case 'question':
      return questionSpec(node.plan);
    case 'task':
      return taskSpec(node.plan, node.task);
  }
}

function planSpec(plan: PlanSnapshot, index: number): ItemSpec {
  const state = !plan.running && !FINISHED_PLAN.has(plan.status) ? 'interrupted' : statusLabel(plan.status);
  const description = [state, formatSpend(plan.tokens, plan.costUsd)].filter((p) => p !== '').join(' · ');
  const lines = [
    `**${escapeMarkdown(goalTitle(plan.goal))}**`,
    '',
    `Plan \`${plan.planId}\`: ${state}${plan.outcome ? ` — ${escapeMarkdown(plan.outcome)}` : ''}`,
    '',
    `${plan.tasks.length} task${plan.tasks.length === 1 ? '' : 's'} · ${formatSpend(plan.tokens, plan.costUsd, plan.cachedTokens, plan.savedUsd) || 'nothing spent yet'}`,
  ];
  if (plan.question !== null) {
    lines.push('', `Question: ${escapeMarkdown(plan.question.text)}`);
  }
  return {
    id: plan.planId,
    label: goalTitle(plan.goal) || plan.planId,
    description,
    tooltip: lines.join('\n'),
    icon: planIcon(plan),
    contextValue: contextValue('plan', planActions(plan)),
    collapsible: index === 0 || plan.running ? 'expanded' : 'collapsed',
  };
}

function questionSpec(plan: PlanSnapshot): ItemSpec {
  const question = plan.question!;
  return {
    id: `${plan.planId}#${question.escalationId}`,
    label: question.text.split('\n', 1)[0],
    description: question.choices.map((c) => c.label).join(' / '),
    tooltip: `**The team asks**\n\n${escapeMarkdown(question.text)}\n\nClick to answer.`,
    icon: { id: 'comment-discussion', color: 'charts.yellow' },
    contextValue: contextValue('question', ['answer']),
    collapsible: 'none',
    click: 'answer',
  };
}

function taskSpec(plan: PlanSnapshot, task: TaskSummary): ItemSpec {
  const parts = [statusLabel(task.status)];
  if (task.role !== null && ACTIVE_TASK.has(task.status)) {
    parts.push(task.role);
  }
  if (task.dependsOn.length > 0) {
    parts.push(`after ${task.dependsOn.map(shortTaskId).join(', ')}`);
  }
  if (task.findings > 0) {
    parts.push(`${task.findings} finding${task.findings === 1 ? '' : 's'}`);
  }
  const spend = formatSpend(task.tokens, task.costUsd);
  if (spend !== '') {
    parts.push(spend);
  }
  const lines = [
    `**${escapeMarkdown(task.title)}**`,
    '',
    `Task \`${task.taskId}\` (${task.kind}): ${statusLabel(task.status)}${task.round > 0 ? `, review round ${task.round}` : ''}`,
  ];
  if (task.role !== null) {
    lines.push('', `Role: ${task.role}`);
  }
  if (task.dependsOn.length > 0) {
    lines.push('', `Depends on: ${task.dependsOn.map((d) => `\`${shortTaskId(d)}\``).join(', ')}`);
  }
  lines.push('', `Spend: ${spend || 'nothing yet'}`);
  if (task.findings > 0) {
    lines.push('', `Reviewer findings: ${task.findings}`);
  }
  if (task.error !== null) {
    lines.push('', `Error: ${escapeMarkdown(task.error)}`);
  }
  const actions: string[] = taskActions(plan, task);
  const hasChanges = task.kind !== 'review';
  if (hasChanges) {
    actions.push('diff');
    lines.push('', 'Click to open its changes.');
  }
  return {
    id: task.taskId,
    label: task.title,
    description: parts.join(' · '),
    tooltip: lines.join('\n'),
    icon: taskIcon(task.status),
    contextValue: contextValue('task', actions),
    collapsible: 'none',
    click: 'openTaskDiff',
  };
}

export function escapeMarkdown(text: string): string {
  return text.replace(/([\\`*_{}[\]<>()#+!|])/g, '\\$1');
}

export interface StatusSpec {
  text: string;
  tooltip: string;
  /** Whether the team is at work (the item is highlighted). */
  busy: boolean;
}

/** How many agents are at work in a plan: the planner while it plans, one per active task. */
export function activeAgents(plan: PlanSnapshot): number {
  if (!plan.running) {
    return 0;
  }
  const planner = plan.status === 'planning' ? 1 : 0;
  return planner + plan.tasks.filter((t) => ACTIVE_TASK.has(t.status)).length;
}

/**
 * The status bar: agents at work and what the running plans spent; when nothing runs, the most
 * recent plan's state and spend.
 */
export function statusSpec(plans: PlanSnapshot[], connection: 'starting' | 'running' | 'stopped'): StatusSpec {
  if (connection !== 'running') {
    return {
      text: connection === 'starting' ? '$(loading~spin) pitcrew' : '$(circle-slash) pitcrew',
      tooltip:
        connection === 'starting' ? 'pitcrew: starting the server…' : 'pitcrew: the server is not running. Click to see the plans; restart it from the view.',
      busy: false,
    };
  }
  const running = plans.filter((p) => p.running);
  if (running.length > 0) {
    const agents = running.reduce((n, p) => n + activeAgents(p), 0);
    const tokens = running.reduce((n, p) => n + p.tokens, 0);
    const cost = running.reduce((n, p) => n + p.costUsd, 0);
    const spend = formatSpend(tokens, cost);
    const text = `$(sync~spin) ${agents} agent${agents === 1 ? '' : 's'}${spend ? ` · ${spend}` : ''}`;
    const tooltip = running
      .map((p) => `${goalTitle(p.goal)}: ${statusLabel(p.status)}, ${activeAgents(p)} at work, ${formatSpend(p.tokens, p.costUsd) || 'nothing spent yet'}`)
      .join('\n');
    return { text, tooltip: `pitcrew — click to show the plans\n${tooltip}`, busy: true };
  }
  const latest = plans[0];
  if (latest === undefined) {
    return { text: '$(organization) pitcrew', tooltip: 'pitcrew: no plans yet. Click to show the plans.', busy: false };
  }
  const spend = formatSpend(latest.tokens, latest.costUsd);
  const waiting = latest.question !== null ? ' $(question)' : '';
  return {
    text: `$(organization) ${statusLabel(latest.status)}${spend ? ` · ${spend}` : ''}${waiting}`,
    tooltip: `pitcrew — click to show the plans\nLatest: ${goalTitle(latest.goal)} (${statusLabel(latest.status)})`,
    busy: false,
  };
}

/** Merges a `pitcrew/planChanged` snapshot into the list, most recent first. */
export function mergePlan(plans: PlanSnapshot[], changed: PlanSnapshot): PlanSnapshot[] {
  const current = plans.find((p) => p.planId === changed.planId);
  if (current !== undefined && current.revision > changed.revision) {
    return plans;
  }
  return sortPlans([changed, ...plans.filter((p) => p.planId !== changed.planId)]);
}

/**
 * The plans a `pitcrew/plans` answer lists, each kept as `plans` has it when that is newer (the
 * answer can arrive after a `pitcrew/planChanged` sent later than it was computed).
 */
export function mergeListed(plans: PlanSnapshot[], listed: PlanSnapshot[]): PlanSnapshot[] {
  const known = new Map(plans.map((p) => [p.planId, p]));
  return sortPlans(
    listed.map((p) => {
      const current = known.get(p.planId);
      return current !== undefined && current.revision > p.revision ? current : p;
    }),
  );
}

/** The plans as the server no longer runs any of them (it stopped). */
export function stoppedPlans(plans: PlanSnapshot[]): PlanSnapshot[] {
  return plans.some((p) => p.running) ? plans.map((p) => (p.running ? { ...p, running: false } : p)) : plans;
}

function sortPlans(plans: PlanSnapshot[]): PlanSnapshot[] {
  return plans.sort((a, b) => (a.createdAt === b.createdAt ? b.planId.localeCompare(a.planId) : b.createdAt.localeCompare(a.createdAt)));
}

/**
 * What a task's documents (its diff, its detail) show depends on: they are recomputed only
 * when this changes.
 */
export function taskFingerprint(task: Pick<TaskSummary, 'status' | 'round' | 'finishedAt'>): string {
  return `${task.status}|${task.round}|${task.finishedAt ?? ''}`;
}

/** Quick pick rows for choosing a plan or task to act on, from the palette. */
export interface TargetChoice {
  label: string;
  description: string;
  target: { planId: string } | { taskId: string };
}

/** Every plan and task that offers `action`, most recent plan first. */
export function targetChoices(plans: PlanSnapshot[], action: Action): TargetChoice[] {
  const choices: TargetChoice[] = [];
  for (const plan of plans) {
    const multi = plan.tasks.length > 1;
    if (planActions(plan).includes(action)) {
      choices.push({
        label: `$(${planIcon(plan).id.replace('~spin', '')}) ${goalTitle(plan.goal)}`,
        description: `plan ${plan.planId} · ${statusLabel(plan.status)}`,
        target: { planId: plan.planId },
      });
    }
    if (!multi) {
      continue;
    }
    for (const task of plan.tasks) {
      if (taskActions(plan, task).includes(action)) {
        choices.push({
          label: `$(${taskIcon(task.status).id.replace('~spin', '')}) ${task.title}`,
          description: `task ${task.taskId} · ${statusLabel(task.status)}`,
          target: { taskId: task.taskId },
        });
      }
    }
  }
  return choices;
}

/** A task in detail, as a markdown document (shown when it has no changes to diff). */
export function taskMarkdown(detail: TaskDetail): string {
  const lines = [
    `# ${detail.title}`,
    '',
    `Task \`${detail.taskId}\` (${detail.kind}) — ${statusLabel(detail.status)}${detail.role ? `, ${detail.role}` : ''}`,
    '',
    `Spend: ${formatSpend(detail.tokens, detail.costUsd, detail.cachedTokens, detail.savedUsd) || 'nothing yet'}`,
  ];
  if (detail.dependsOn.length > 0) {
    lines.push('', `Depends on: ${detail.dependsOn.map((d) => `\`${shortTaskId(d)}\``).join(', ')}`);
  }
  if (detail.error) {
    lines.push('', `**Error:** ${detail.error}`);
  }
  if (detail.verdict) {
    lines.push('', `Reviewer's verdict: ${detail.verdict}`);
  }
  lines.push('', '## Instructions', '', detail.instructions);
  if (detail.handoff) {
    lines.push('', '## Handoff', '', detail.handoff);
  }
  if (detail.findings.length > 0) {
    lines.push('', '## Findings', '');
    for (const finding of detail.findings) {
      const f = finding as { path?: string; line?: number; severity?: string; message?: string };
      lines.push(`- ${f.severity ?? 'note'}: ${f.path ?? ''}${f.line ? `:${f.line}` : ''} ${f.message ?? JSON.stringify(finding)}`);
    }
  }
  if (detail.transcriptSummary.length > 0) {
    lines.push('', '## Activity', '');
    for (const entry of detail.transcriptSummary) {
      lines.push(`- ${entry}`);
    }
  }
  if (!detail.diff) {
    lines.push('', '_No changes yet._');
  }
  return lines.join('\n') + '\n';
}
