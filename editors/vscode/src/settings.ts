// The editor settings that mirror pitcrew.toml, as the configuration layer the server takes in
// `initializationOptions` and `workspace/didChangeConfiguration` (server/src/config.rs): the same
// shape as pitcrew.toml, with only what the user set, so that everything else still comes from
// pitcrew.toml. Pure (no `vscode`): the extension passes a getter over its settings.

/** The settings (under `pitcrew.`) that map one to one onto pitcrew.toml keys. */
export const MIRRORED_KEYS = [
  'roles.planner',
  'roles.implementer',
  'roles.reviewer',
  'roles.debugger',
  'roles.integrator',
  'team.implementers',
  'team.review_rounds',
  'team.budget_tokens',
  'team.budget_usd',
  'team.timeout_s',
  'team.task_budget_tokens',
  'team.task_timeout_s',
  'team.max_tasks',
  'team.max_turns',
  'team.auto_apply',
] as const;

/** Settings whose change needs a new server process rather than a configuration reload.
 * (`trace.server` is not one: languageclient applies it to the running server.) */
export const RESTART_KEYS = ['server.path'] as const;

/** Keys that must never be sent: the server names the variable that holds a key, not the key. */
const SECRET_FIELD = /(^|_)(api_?key|key|token|secret|password)$/i;

export type ConfigLayer = Record<string, unknown>;

export interface BuiltLayer {
  /** `undefined` when nothing is set, so pitcrew.toml applies untouched. */
  layer: ConfigLayer | undefined;
  /** Settings left out because they look like keys (`pitcrew.models.x.api_key`), to warn about. */
  dropped: string[];
}

/**
 * The configuration layer for the server from the settings `get` returns (`undefined` or `null`
 * for unset ones).
 */
export function configLayer(get: (key: string) => unknown): BuiltLayer {
  const layer: ConfigLayer = {};
  const dropped: string[] = [];
  const models = get('models');
  if (isObject(models) && Object.keys(models).length > 0) {
    const cleaned: Record<string, unknown> = {};
    for (const [name, model] of Object.entries(models)) {
      if (!isObject(model)) {
        cleaned[name] = model;
        continue;
      }
      const kept: Record<string, unknown> = {};
      for (const [field, value] of Object.entries(model)) {
        if (field !== 'api_key_env' && SECRET_FIELD.test(field)) {
          dropped.push(`pitcrew.models.${name}.${field}`);
        } else {
          kept[field] = value;
        }
      }
      cleaned[name] = kept;
    }
    layer.models = cleaned;
  }
  for (const key of MIRRORED_KEYS) {
    const value = get(key);
    if (value === undefined || value === null || value === '') {
      continue;
    }
    const [table, field] = key.split('.');
    const section = (layer[table] ??= {}) as Record<string, unknown>;
    section[field] = value;
  }
  return { layer: Object.keys(layer).length > 0 ? layer : undefined, dropped };
}

/** Whether a change to the settings under `pitcrew.` that `affects` reports needs a restart. */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return RESTART_KEYS.some((key) => affects(`pitcrew.${key}`));
}

/**
 * The warning for settings left out because they look like keys, or `undefined` when there is
 * nothing new to say: it is given once per distinct set of such settings (`warned` is the key of
 * the set last warned about; the result's `key` replaces it).
 */
export function droppedWarning(dropped: string[], warned: string): { key: string; text: string | undefined } {
  const key = [...dropped].sort().join('\n');
  if (key === '' || key === warned) {
    return { key, text: undefined };
  }
  return {
    key,
    text: `pitcrew: ${dropped.join(', ')} ${dropped.length === 1 ? 'looks like a key and was' : 'look like keys and were'} not sent; keys never go in settings. Set api_key_env to the name of the environment variable that holds the key.`,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether every setting in `sent` (the `initializationOptions` the server started with) is still
 * set in `next`. The server merges `didChangeConfiguration` over `initializationOptions` key by
 * key, so a setting the user removed can only be forgotten by a restart.
 */
export function coversKeys(next: ConfigLayer | undefined, sent: ConfigLayer | undefined): boolean {
  return leafPaths(sent).every((path) => leafPaths(next).includes(path));
}

function leafPaths(layer: unknown, prefix = ''): string[] {
  if (!isObject(layer)) {
    return prefix === '' ? [] : [prefix];
  }
  const entries = Object.entries(layer);
  if (entries.length === 0) {
    return prefix === '' ? [] : [prefix];
  }
  return entries.flatMap(([key, value]) => leafPaths(value, prefix === '' ? key : `${prefix}.${key}`));
}
