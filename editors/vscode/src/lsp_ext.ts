// pitcrew's extensions to LSP, mirroring server/src/lsp/ext.rs (names, fields, method names) and
// documented in docs/lsp-extensions.md. Pure declarations: no `vscode` import, so the unit
// tests can load what depends on them under plain Node.

/** Every command the server executes (`workspace/executeCommand`). */
export const commands = {
  delegate: 'pitcrew.delegate',
  review: 'pitcrew.review',
  plan: 'pitcrew.plan',
  apply: 'pitcrew.apply',
  discard: 'pitcrew.discard',
  cancel: 'pitcrew.cancel',
  retry: 'pitcrew.retry',
  showPlan: 'pitcrew.showPlan',
  dismissFinding: 'pitcrew.dismissFinding',
  /** Sends a reviewer's finding to an implementer as a new task. */
  sendBack: 'pitcrew.sendBack',
  /** Answers a plan's pending question. */
  answer: 'pitcrew.answer',
} as const;

export type ServerCommand = (typeof commands)[keyof typeof commands];

/** `pitcrew/plan`: a plan's state, for plan views. */
export const PLAN = 'pitcrew/plan';

export interface PlanParams {
  /** The plan; the most recent one when absent. */
  planId?: string | null;
}

export type PlanStatus =
  | 'planning'
  | 'running'
  | 'testing'
  | 'ready'
  | 'applied'
  | 'failed'
  | 'cancelled'
  | 'escalated';

/** A plan as plan views show it. */
export interface PlanSnapshot {
  planId: string;
  goal: string;
  status: PlanStatus | string;
  integrationBranch: string;
  createdAt: string;
  updatedAt: string;
  /** Grows with every saved change: of two snapshots of a plan, keep the higher. */
  revision: number;
  tokens: number;
  /** Of `tokens`, read from a prompt cache. */
  cachedTokens: number;
  costUsd: number;
  /** What prompt caching saved, in US dollars. */
  savedUsd: number;
  outcome: string | null;
  /** Whether the server is running it now (an interrupted plan is unfinished and not running). */
  running: boolean;
  /** The question waiting for the user, if any. */
  question: Question | null;
  tasks: TaskSummary[];
}

/** A question for the user; answer with `pitcrew.answer`. */
export interface Question {
  escalationId: string;
  /** `<plan>/<task>` when the question is about a task. */
  taskId: string | null;
  text: string;
  choices: QuestionChoice[];
}

export interface QuestionChoice {
  /** `retry`, `send_back`, `continue`, `abort`. */
  id: string;
  label: string;
}

/** `pitcrew/plans`: every plan of the workspace, most recent first. */
export const PLANS = 'pitcrew/plans';

export interface PlansResult {
  plans: PlanSnapshot[];
}

export type TaskStatus =
  | 'pending'
  | 'running'
  | 'reviewing'
  | 'changes_requested'
  | 'approved'
  | 'ready'
  | 'integrating'
  | 'applied'
  | 'failed'
  | 'cancelled'
  | 'escalated';

export interface TaskSummary {
  /** `<plan>/<task>`, the id commands take. */
  taskId: string;
  title: string;
  status: TaskStatus | string;
  /** The role at work on it, if any. */
  role: string | null;
  /** `implement`, `resolve`, `fix`, `review`. */
  kind: string;
  dependsOn: string[];
  branch: string | null;
  round: number;
  findings: number;
  tokens: number;
  /** Of `tokens`, read from a prompt cache. */
  cachedTokens: number;
  costUsd: number;
  /** What prompt caching saved, in US dollars. */
  savedUsd: number;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

/** `pitcrew/task`: one task in detail. */
export const TASK = 'pitcrew/task';

export interface TaskParams {
  taskId: string;
  /** A file of the task's result: its entry in `files` carries both texts. */
  path?: string;
}

/** A file a task's result changes. */
export interface TaskFile {
  path: string;
  /** The path before a rename. */
  oldPath: string | null;
  change: 'added' | 'modified' | 'deleted' | 'renamed';
  binary: boolean;
  /** The texts where the task started and in its result: only for the file asked for with
   * `path`, and absent for a side that does not exist or is binary. */
  base?: string;
  result?: string;
}

/**
 * A task in detail: the summary's fields, with `findings` the list of findings rather than
 * their count.
 */
export interface TaskDetail extends Omit<TaskSummary, 'findings'> {
  planId: string;
  instructions: string;
  handoff: string | null;
  verdict: string | null;
  /** The unified diff of its result, as last reviewed. */
  diff: string | null;
  findings: unknown[];
  checks: unknown[];
  /** What its agents did, most recent last. */
  transcriptSummary: string[];
  /** The files its result changes (empty until it has one), for diff views. */
  files: TaskFile[];
}

/** `pitcrew/planChanged`, server to client: a plan changed (at most ten a second). */
export const PLAN_CHANGED = 'pitcrew/planChanged';

export interface PlanChangedParams {
  planId: string;
  status: string;
  /** The plan as `pitcrew/plan` would return it now. */
  plan: PlanSnapshot;
}

/** `window/workDoneProgress/cancel`, client to server. */
export const PROGRESS_CANCEL = 'window/workDoneProgress/cancel';

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type Preset = 'implement' | 'fix' | 'tests' | 'document' | 'simplify';

/** Arguments of `pitcrew.delegate`, `pitcrew.review` and `pitcrew.plan`. */
export interface SelectionArgs {
  uri?: string;
  range?: Range;
  instruction?: string;
  preset?: Preset;
  /** `pitcrew.plan`: the goal. */
  goal?: string;
  /** Preset `fix`: the messages of the diagnostics to fix. */
  diagnostics?: string[];
}

/** Arguments of the commands that act on a task or a plan. */
export interface TargetArgs {
  taskId?: string;
  planId?: string;
  findingId?: string;
}

/** Arguments of `pitcrew.answer`. */
export interface AnswerArgs {
  planId: string;
  escalationId: string;
  /** A choice id from the question. */
  choice: string;
}

/** What `pitcrew.delegate`, `pitcrew.review`, `pitcrew.plan` and `pitcrew.sendBack` return. */
export interface Started {
  planId: string;
  /** `<plan>/<task>`; absent for `pitcrew.plan`. */
  taskId?: string | null;
}

/** What `pitcrew.apply` returns at once (the edit follows as `workspace/applyEdit`). */
export interface ApplyStarted {
  planId: string;
  taskIds: string[];
}

/** What `pitcrew.showPlan` returns: the plan's markdown file, which it also asks to show. */
export interface ShowPlanResult {
  uri: string;
  planId: string;
}

/** `pitcrew/debug/documentText`: the server's copy of an open document (debugging only). */
export const DOCUMENT_TEXT = 'pitcrew/debug/documentText';

export interface DocumentTextParams {
  uri: string;
}

export interface DocumentTextResult {
  version: number;
  text: string;
}

/** `pitcrew/debug/config`: the configuration in force, its sources and the last load's errors. */
export const CONFIG = 'pitcrew/debug/config';

export interface ConfigResult {
  config: unknown;
  sources: { kind: string; location: string; status: string }[];
  errors: string[];
}
