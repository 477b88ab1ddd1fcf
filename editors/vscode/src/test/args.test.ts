import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as args from '../args';

const uri = 'file:///ws/src/lib.rs';
const range = { start: { line: 1, character: 0 }, end: { line: 4, character: 0 } };

test('an empty selection means the whole file', () => {
  assert.equal(args.selectionRange({ start: { line: 3, character: 2 }, end: { line: 3, character: 2 } }), undefined);
  assert.deepEqual(args.selectionRange(range), range);
});

test('delegate takes a preset or an instruction, and diagnostics only to fix', () => {
  assert.deepEqual(args.delegateArgs(uri, range, { preset: 'tests' }, ['unused']), { uri, range, preset: 'tests' });
  assert.deepEqual(args.delegateArgs(uri, undefined, { instruction: '  handle empty input ' }), {
    uri,
    instruction: 'handle empty input',
  });
  assert.deepEqual(args.delegateArgs(uri, range, { preset: 'fix' }, ['E0308 mismatched types']), {
    uri,
    range,
    preset: 'fix',
    diagnostics: ['E0308 mismatched types'],
  });
});

test('the quick pick offers the server presets and a custom instruction', () => {
  assert.deepEqual(
    args.PRESET_CHOICES.map((c) => c.preset ?? (c.custom ? 'custom' : '?')),
    ['implement', 'fix', 'tests', 'document', 'simplify', 'custom'],
  );
});

test('review, plan, targets and answers', () => {
  assert.deepEqual(args.reviewArgs(uri, undefined), { uri });
  assert.deepEqual(args.reviewArgs(uri, range), { uri, range });
  assert.deepEqual(args.planArgs(' add a flag '), { goal: 'add a flag' });
  assert.deepEqual(args.planArgs('add a flag', uri, range), { goal: 'add a flag', uri, range });
  assert.deepEqual(args.targetArgs({ taskId: 'p-1/a' }), { taskId: 'p-1/a' });
  assert.deepEqual(args.targetArgs({ planId: 'p-1' }), { planId: 'p-1' });
  assert.deepEqual(args.answerArgs('p-1', 'e-1', 'retry'), { planId: 'p-1', escalationId: 'e-1', choice: 'retry' });
});

test('selections are described in one-based lines, whole lines ending at the next line', () => {
  assert.equal(args.describeSelection('src/lib.rs', range), 'src/lib.rs lines 2-4');
  assert.equal(args.describeSelection('src/lib.rs', { start: { line: 2, character: 1 }, end: { line: 2, character: 5 } }), 'src/lib.rs line 3');
  assert.equal(args.describeSelection('src/lib.rs', undefined), 'src/lib.rs (whole file)');
});
