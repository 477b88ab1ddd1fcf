// Unified diffs (what `pitcrew/task` returns as a task's `diff`) turned into the two texts a diff
// editor compares. The diff only has three lines of context, so the full texts come from the file
// as the user has it: the diff applied forwards (not applied yet) or backwards (already applied).
// When neither fits, the hunks alone are shown. Pure (no `vscode`).

export interface Hunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** The hunk's body lines, each starting with ` `, `-` or `+`. */
  lines: string[];
}

export interface FileDiff {
  /** The path after the change (before it, for a deleted file), relative to the repository. */
  path: string;
  oldPath: string | null;
  newPath: string | null;
  binary: boolean;
  hunks: Hunk[];
}

export interface Sides {
  before: string;
  after: string;
  /** False when only the changed regions could be shown. */
  complete: boolean;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

function stripPrefix(name: string): string | null {
  if (name === '/dev/null') {
    return null;
  }
  const unquoted = name.startsWith('"') && name.endsWith('"') ? name.slice(1, -1) : name;
  return unquoted.replace(/^[ab]\//, '');
}

export function parseUnifiedDiff(text: string): FileDiff[] {
  const files: FileDiff[] = [];
  let file: FileDiff | null = null;
  let hunk: Hunk | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --git ')) {
      const rest = line.slice('diff --git '.length);
      const at = rest.lastIndexOf(' b/');
      const oldPath = at === -1 ? rest : rest.slice(0, at);
      const newPath = at === -1 ? rest : rest.slice(at + 1);
      file = {
        path: stripPrefix(newPath) ?? '',
        oldPath: stripPrefix(oldPath),
        newPath: stripPrefix(newPath),
        binary: false,
        hunks: [],
      };
      files.push(file);
      hunk = null;
      continue;
    }
    if (file === null) {
      continue;
    }
    const header = HUNK_HEADER.exec(line);
    if (header !== null) {
      hunk = {
        oldStart: Number(header[1]),
        oldLines: header[2] === undefined ? 1 : Number(header[2]),
        newStart: Number(header[3]),
        newLines: header[4] === undefined ? 1 : Number(header[4]),
        lines: [],
      };
      file.hunks.push(hunk);
      continue;
    }
    if (hunk !== null && (line.startsWith(' ') || line.startsWith('-') || line.startsWith('+'))) {
      const counted = hunk.lines.filter((l) => l[0] !== '+').length;
      const added = hunk.lines.filter((l) => l[0] !== '-').length;
      const full = counted >= hunk.oldLines && added >= hunk.newLines;
      if (!full) {
        hunk.lines.push(line);
        continue;
      }
    }
    if (line.startsWith('--- ')) {
      file.oldPath = stripPrefix(line.slice(4).trim());
      hunk = null;
    } else if (line.startsWith('+++ ')) {
      file.newPath = stripPrefix(line.slice(4).trim());
      hunk = null;
    } else if (line.startsWith('Binary files ') || line === 'GIT binary patch') {
      file.binary = true;
    } else if (line.startsWith('deleted file mode')) {
      file.newPath = null;
    } else if (line.startsWith('new file mode')) {
      file.oldPath = null;
    } else if (line.startsWith('rename from ')) {
      file.oldPath = line.slice('rename from '.length);
    } else if (line.startsWith('rename to ')) {
      file.newPath = line.slice('rename to '.length);
    }
  }
  for (const f of files) {
    f.path = f.newPath ?? f.oldPath ?? f.path;
  }
  return files;
}

function side(hunk: Hunk, keep: '-' | '+'): string[] {
  return hunk.lines.filter((l) => l[0] === ' ' || l[0] === keep).map((l) => l.slice(1));
}

function splitLines(text: string): { lines: string[]; finalNewline: boolean } {
  const finalNewline = text.endsWith('\n');
  const body = finalNewline ? text.slice(0, -1) : text;
  return { lines: body === '' && !finalNewline ? [] : body.split('\n'), finalNewline };
}

function joinLines(lines: string[], finalNewline: boolean): string {
  return lines.length === 0 ? '' : lines.join('\n') + (finalNewline ? '\n' : '');
}

function matchesAt(lines: string[], at: number, block: string[]): boolean {
  if (at < 0 || at + block.length > lines.length) {
    return false;
  }
  return block.every((l, i) => lines[at + i] === l);
}

/**
 * Applies the hunks to `text`, from one side to the other, each found at its line or the nearest
 * place it fits (the user may have edited above it). `undefined` if one does not fit; else the
 * result and how many lines of `text` the hunks matched (the evidence that it was that side).
 */
export function applyHunks(
  text: string,
  hunks: Hunk[],
  direction: 'forward' | 'reverse',
): { text: string; matched: number } | undefined {
  const { lines, finalNewline } = splitLines(text.replace(/\r\n/g, '\n'));
  const [from, to] = direction === 'forward' ? (['-', '+'] as const) : (['+', '-'] as const);
  const out = [...lines];
  // How far lines have moved in `out` relative to the hunks' coordinates.
  let delta = 0;
  let matched = 0;
  for (const hunk of hunks) {
    const expected = side(hunk, from);
    const replacement = side(hunk, to);
    const start = direction === 'forward' ? hunk.oldStart : hunk.newStart;
    // `@@ -3,0 …`: an insertion after line 3; otherwise the block starts at line `start`.
    const anchor = (expected.length === 0 ? start : start - 1) + delta;
    let found: number | undefined;
    for (let distance = 0; distance <= out.length; distance++) {
      if (matchesAt(out, anchor - distance, expected)) {
        found = anchor - distance;
        break;
      }
      if (distance > 0 && matchesAt(out, anchor + distance, expected)) {
        found = anchor + distance;
        break;
      }
    }
    if (found === undefined) {
      return undefined;
    }
    out.splice(found, expected.length, ...replacement);
    delta += found - anchor + replacement.length - expected.length;
    matched += expected.length;
  }
  return { text: joinLines(out, finalNewline || lines.length === 0), matched };
}

/** The hunks alone, when the file as the user has it fits neither side. */
function excerpt(file: FileDiff, keep: '-' | '+'): string {
  const parts: string[] = [];
  for (const hunk of file.hunks) {
    parts.push(`⋯ @@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`);
    parts.push(...side(hunk, keep));
  }
  return parts.join('\n') + '\n';
}

/**
 * The two texts to compare for one file of a diff, given the file as the user has it now
 * (`undefined` when it does not exist).
 */
export function fileSides(file: FileDiff, current: string | undefined): Sides {
  if (file.oldPath === null) {
    // Added: its hunk is the whole file.
    const after = file.hunks.flatMap((h) => side(h, '+'));
    return { before: '', after: joinLines(after, true), complete: true };
  }
  if (file.newPath === null) {
    const before = file.hunks.flatMap((h) => side(h, '-'));
    return { before: joinLines(before, true), after: '', complete: true };
  }
  if (current !== undefined) {
    // Both can fit (an insertion's context is on both sides): the side that matched more of
    // the file is the one it is on.
    const forward = applyHunks(current, file.hunks, 'forward');
    const reverse = applyHunks(current, file.hunks, 'reverse');
    if (forward !== undefined && (reverse === undefined || forward.matched >= reverse.matched)) {
      return { before: current, after: forward.text, complete: true };
    }
    if (reverse !== undefined) {
      return { before: reverse.text, after: current, complete: true };
    }
  }
  return { before: excerpt(file, '-'), after: excerpt(file, '+'), complete: false };
}
