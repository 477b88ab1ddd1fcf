// The server's stderr (tracing lines such as `2026-11-21T23:13:09.526175Z  INFO target: text`)
// into the log output channel at their own level, without the server's timestamp (the channel
// adds its own). Pure (no `vscode`).

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const TRACING_LINE = /^\S+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$/;

/** The level and text of one stderr line; lines that are not tracing's (a panic) are errors. */
export function parseServerLine(line: string): { level: Level; text: string } {
  const match = TRACING_LINE.exec(line.replace(/\u001b\[[0-9;]*m/g, ''));
  if (match === null) {
    return { level: 'error', text: line };
  }
  return { level: match[1].toLowerCase() as Level, text: match[2] };
}
