import assert from 'node:assert/strict';
import { test } from 'node:test';

import { expandPath, isMissing, resolveServer } from '../server_path';

const executables = new Set(['/opt/pitcrew/bin/pitcrew', '/usr/local/bin/pitcrew', '/ws/target/debug/pitcrew']);
const base = {
  envPath: undefined,
  settingPath: undefined,
  searchPath: '/usr/bin:/usr/local/bin',
  workspaceFolder: '/ws',
  homeDir: '/home/me',
  isExecutable: (file: string) => executables.has(file),
};

test('PITCREW_SERVER_PATH comes first', () => {
  const found = resolveServer({ ...base, envPath: '/opt/pitcrew/bin/pitcrew', settingPath: '/ws/target/debug/pitcrew' });
  assert.deepEqual(found, { command: '/opt/pitcrew/bin/pitcrew', source: 'env' });
});

test('then the pitcrew.server.path setting, with ${workspaceFolder} and relative paths', () => {
  assert.deepEqual(resolveServer({ ...base, settingPath: '${workspaceFolder}/target/debug/pitcrew' }), {
    command: '/ws/target/debug/pitcrew',
    source: 'setting',
  });
  assert.deepEqual(resolveServer({ ...base, settingPath: 'target/debug/pitcrew' }), {
    command: '/ws/target/debug/pitcrew',
    source: 'setting',
  });
  assert.deepEqual(resolveServer({ ...base, envPath: '  ', settingPath: '' }), { command: '/usr/local/bin/pitcrew', source: 'path' });
});

test('then pitcrew on PATH', () => {
  assert.deepEqual(resolveServer(base), { command: '/usr/local/bin/pitcrew', source: 'path' });
});

test('a missing binary says where it looked and what to do', () => {
  const missing = resolveServer({ ...base, searchPath: '/usr/bin' });
  assert.ok(isMissing(missing));
  assert.equal(missing.source, 'path');
  assert.match(missing.message, /cannot find the pitcrew binary on PATH/);
  assert.match(missing.message, /pitcrew\.server\.path/);

  const wrong = resolveServer({ ...base, envPath: '/nowhere/pitcrew' });
  assert.ok(isMissing(wrong));
  assert.equal(wrong.source, 'env');
  assert.match(wrong.message, /PITCREW_SERVER_PATH is \/nowhere\/pitcrew, which is not an executable file/);

  const setting = resolveServer({ ...base, settingPath: '~/bin/pitcrew' });
  assert.ok(isMissing(setting));
  assert.match(setting.message, /pitcrew\.server\.path setting is \/home\/me\/bin\/pitcrew/);
});

test('a bare name in the setting is looked up on PATH', () => {
  assert.deepEqual(resolveServer({ ...base, settingPath: 'pitcrew' }), { command: '/usr/local/bin/pitcrew', source: 'setting' });
  const missing = resolveServer({ ...base, settingPath: 'pitcrew-nightly' });
  assert.ok(isMissing(missing));
  assert.match(missing.message, /"pitcrew-nightly", which is not on PATH/);
});

test('~ expands to the home directory', () => {
  assert.equal(expandPath('~/bin/pitcrew', undefined, '/home/me'), '/home/me/bin/pitcrew');
  assert.equal(expandPath('/abs/pitcrew', '/ws', '/home/me'), '/abs/pitcrew');
});
