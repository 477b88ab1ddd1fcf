// The arguments of the `pitcrew.*` commands the extension runs (server/src/lsp/ext.rs shapes),
// and the choices the palette commands offer. Pure (no `vscode`).

import type { AnswerArgs, Preset, Range, SelectionArgs, TargetArgs } from './lsp_ext';

export interface PresetChoice {
  label: string;
  description: string;
  preset?: Preset;
  /** The "Custom instruction…" row: ask for the instruction instead. */
  custom?: true;
}

/** The delegate quick pick: the server's presets, then a free-form instruction. */
export const PRESET_CHOICES: PresetChoice[] = [
  { label: '$(wand) Implement', description: 'what the selection describes: comments, stubs, TODOs', preset: 'implement' },
  { label: '$(wrench) Fix', description: 'the problems reported here, at their cause', preset: 'fix' },
  { label: '$(beaker) Add tests', description: 'for the selected code, without changing it', preset: 'tests' },
  { label: '$(book) Document', description: 'what it does, its inputs, outputs and failures', preset: 'document' },
  { label: '$(fold) Simplify', description: 'without changing its behaviour', preset: 'simplify' },
  { label: '$(edit) Custom instruction…', description: 'say what to do', custom: true },
];

/** The selection as an LSP range, or none for an empty selection (the whole file). */
export function selectionRange(range: Range): Range | undefined {
  const empty = range.start.line === range.end.line && range.start.character === range.end.character;
  return empty ? undefined : range;
}

export function delegateArgs(
  uri: string,
  range: Range | undefined,
  choice: { preset?: Preset; instruction?: string },
  diagnostics: string[] = [],
): SelectionArgs {
  const args: SelectionArgs = { uri };
  if (range !== undefined) {
    args.range = range;
  }
  if (choice.preset !== undefined) {
    args.preset = choice.preset;
  }
  const instruction = choice.instruction?.trim();
  if (instruction) {
    args.instruction = instruction;
  }
  if (choice.preset === 'fix' && diagnostics.length > 0) {
    args.diagnostics = diagnostics;
  }
  return args;
}

export function reviewArgs(uri: string, range: Range | undefined): SelectionArgs {
  return range === undefined ? { uri } : { uri, range };
}

export function planArgs(goal: string, uri?: string, range?: Range): SelectionArgs {
  const args: SelectionArgs = { goal: goal.trim() };
  if (uri !== undefined) {
    args.uri = uri;
    if (range !== undefined) {
      args.range = range;
    }
  }
  return args;
}

/** `{taskId}` for a task, `{planId}` for a plan: what apply/discard/cancel/retry take. */
export function targetArgs(target: { planId: string } | { taskId: string }): TargetArgs {
  return 'taskId' in target ? { taskId: target.taskId } : { planId: target.planId };
}

export function answerArgs(planId: string, escalationId: string, choice: string): AnswerArgs {
  return { planId, escalationId, choice };
}

/** `src/lib.rs lines 2-4` / `src/lib.rs`, for prompts. */
export function describeSelection(relativePath: string, range: Range | undefined): string {
  if (range === undefined) {
    return `${relativePath} (whole file)`;
  }
  let last = range.end.line;
  if (range.end.character === 0 && last > range.start.line) {
    last -= 1;
  }
  const first = range.start.line + 1;
  return first === last + 1 ? `${relativePath} line ${first}` : `${relativePath} lines ${first}-${last + 1}`;
}
