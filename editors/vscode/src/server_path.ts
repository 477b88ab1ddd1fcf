// Where the `pitcrew` binary comes from: `$PITCREW_SERVER_PATH`, else the `pitcrew.server.path`
// setting, else `pitcrew` on `PATH`. Pure (no `vscode`), so it is unit-tested under Node.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export type ServerSource = 'env' | 'setting' | 'path';

export interface ResolvedServer {
  command: string;
  source: ServerSource;
}

export interface MissingServer {
  /** Where the extension looked, for the error message. */
  source: ServerSource;
  /** What to tell the user. */
  message: string;
}

export interface ResolveInputs {
  /** `$PITCREW_SERVER_PATH`. */
  envPath: string | undefined;
  /** The `pitcrew.server.path` setting. */
  settingPath: string | undefined;
  /** `$PATH`. */
  searchPath: string | undefined;
  /** The workspace folder, for `${workspaceFolder}` and relative paths. */
  workspaceFolder: string | undefined;
  homeDir?: string;
  isExecutable?: (file: string) => boolean;
  /** Executable suffixes to try on `PATH` (`$PATHEXT` on Windows). */
  pathExtensions?: string[];
}

export function isExecutableFile(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Expands `~` and `${workspaceFolder}`, and makes a relative path relative to the folder. */
export function expandPath(
  value: string,
  workspaceFolder: string | undefined,
  homeDir: string = os.homedir(),
): string {
  let expanded = value.trim();
  if (expanded === '~' || expanded.startsWith('~/')) {
    expanded = path.join(homeDir, expanded.slice(1));
  }
  if (workspaceFolder !== undefined) {
    expanded = expanded.split('${workspaceFolder}').join(workspaceFolder);
    if (!path.isAbsolute(expanded) && expanded.includes(path.sep)) {
      expanded = path.join(workspaceFolder, expanded);
    }
  }
  return expanded;
}

/** Finds the binary, or says precisely why it cannot. */
export function resolveServer(inputs: ResolveInputs): ResolvedServer | MissingServer {
  const isExecutable = inputs.isExecutable ?? isExecutableFile;
  const explicit: [ServerSource, string | undefined, string][] = [
    ['env', inputs.envPath, 'PITCREW_SERVER_PATH'],
    ['setting', inputs.settingPath, 'the pitcrew.server.path setting'],
  ];
  for (const [source, value, what] of explicit) {
    if (value === undefined || value.trim() === '') {
      continue;
    }
    const command = expandPath(value, inputs.workspaceFolder, inputs.homeDir);
    if (path.isAbsolute(command)) {
      if (isExecutable(command)) {
        return { command, source };
      }
      return {
        source,
        message: `pitcrew: ${what} is ${command}, which is not an executable file. Build pitcrew (cargo build -p pitcrew) or correct the path.`,
      };
    }
    // A bare name: look it up on PATH like any command.
    const found = searchPath(command, inputs.searchPath, isExecutable, inputs.pathExtensions);
    if (found !== undefined) {
      return { command: found, source };
    }
    return {
      source,
      message: `pitcrew: ${what} is "${command}", which is not on PATH. Give the binary's full path.`,
    };
  }
  const found = searchPath('pitcrew', inputs.searchPath, isExecutable, inputs.pathExtensions);
  if (found !== undefined) {
    return { command: found, source: 'path' };
  }
  return {
    source: 'path',
    message:
      'pitcrew: cannot find the pitcrew binary on PATH. Install it (cargo install --path server in a pitcrew checkout) or set pitcrew.server.path to the binary.',
  };
}

export function isMissing(result: ResolvedServer | MissingServer): result is MissingServer {
  return 'message' in result;
}

/** `name` in the directories of `searchPath`, as a shell would find it. */
export function searchPath(
  name: string,
  searchPath: string | undefined,
  isExecutable: (file: string) => boolean,
  extensions: string[] = [''],
): string | undefined {
  for (const dir of (searchPath ?? '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    for (const extension of extensions) {
      const candidate = path.join(dir, name + extension);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}
