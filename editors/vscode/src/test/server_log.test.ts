import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseServerLine } from '../server_log';

test('tracing lines keep their level and lose their timestamp', () => {
  assert.deepEqual(parseServerLine('2026-11-21T23:13:09.526175Z  INFO pitcrew::lsp::notify: configuration loaded'), {
    level: 'info',
    text: 'pitcrew::lsp::notify: configuration loaded',
  });
  assert.deepEqual(parseServerLine('\u001b[2m2026-11-21T23:13:09Z\u001b[0m \u001b[33m WARN\u001b[0m x: slow'), {
    level: 'warn',
    text: 'x: slow',
  });
});

test('anything else, such as a panic, is an error', () => {
  assert.deepEqual(parseServerLine("thread 'main' panicked at src/main.rs:3:5"), {
    level: 'error',
    text: "thread 'main' panicked at src/main.rs:3:5",
  });
});
