import assert from 'node:assert/strict';
import { test } from 'node:test';

import { configLayer, coversKeys, droppedWarning, needsRestart } from '../settings';

function getter(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test('nothing set sends nothing, so pitcrew.toml applies untouched', () => {
  assert.deepEqual(configLayer(getter({ models: {}, 'team.implementers': null, 'roles.planner': '' })), {
    layer: undefined,
    dropped: [],
  });
});

test('settings nest as pitcrew.toml does', () => {
  const built = configLayer(
    getter({
      models: { strong: { provider: 'anthropic', model: 'claude-sonnet-4-5', api_key_env: 'ANTHROPIC_API_KEY' } },
      'roles.planner': 'strong',
      'roles.reviewer': 'strong',
      'team.implementers': 2,
      'team.review_rounds': 0,
      'team.auto_apply': false,
    }),
  );
  assert.deepEqual(built.layer, {
    models: { strong: { provider: 'anthropic', model: 'claude-sonnet-4-5', api_key_env: 'ANTHROPIC_API_KEY' } },
    roles: { planner: 'strong', reviewer: 'strong' },
    team: { implementers: 2, review_rounds: 0, auto_apply: false },
  });
  assert.deepEqual(built.dropped, []);
});

test('keys are never sent, and the user is told which settings were left out', () => {
  const built = configLayer(getter({ models: { x: { model: 'm', api_key: 'sk-secret', api_key_env: 'X_KEY' } } }));
  assert.deepEqual(built.layer, { models: { x: { model: 'm', api_key_env: 'X_KEY' } } });
  assert.deepEqual(built.dropped, ['pitcrew.models.x.api_key']);
  assert.ok(!JSON.stringify(built.layer).includes('sk-secret'));
});

test('only server settings need a new process', () => {
  assert.equal(needsRestart((s) => s === 'pitcrew.server.path'), true);
  assert.equal(needsRestart((s) => s === 'pitcrew.team.implementers'), false);
});

test('a removed setting needs a restart; a changed or added one does not', () => {
  const sent = { team: { implementers: 2 }, roles: { planner: 'strong' } };
  assert.equal(coversKeys({ team: { implementers: 3 }, roles: { planner: 'fast' } }, sent), true);
  assert.equal(coversKeys({ team: { implementers: 3, max_turns: 9 }, roles: { planner: 'x' } }, sent), true);
  assert.equal(coversKeys({ team: { implementers: 3 } }, sent), false);
  assert.equal(coversKeys(undefined, sent), false);
  assert.equal(coversKeys(undefined, undefined), true);
});

test('tracing applies live: it needs no restart', () => {
  assert.equal(needsRestart((s) => s === 'pitcrew.trace.server'), false);
});

test('settings that look like keys are warned about once per distinct set', () => {
  const first = droppedWarning(['pitcrew.models.x.api_key'], '');
  assert.match(first.text ?? '', /pitcrew\.models\.x\.api_key looks like a key and was not sent/);
  assert.equal(droppedWarning(['pitcrew.models.x.api_key'], first.key).text, undefined);
  const more = droppedWarning(['pitcrew.models.y.token', 'pitcrew.models.x.api_key'], first.key);
  assert.match(more.text ?? '', /look like keys and were not sent/);
  assert.equal(droppedWarning(['pitcrew.models.x.api_key', 'pitcrew.models.y.token'], more.key).text, undefined);
  // Once fixed, the same mistake made again is warned about again.
  const fixed = droppedWarning([], more.key);
  assert.deepEqual(fixed, { key: '', text: undefined });
  assert.notEqual(droppedWarning(['pitcrew.models.x.api_key'], fixed.key).text, undefined);
});
