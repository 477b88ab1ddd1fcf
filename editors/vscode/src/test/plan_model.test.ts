import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as model from '../plan_model';
import { plan, task } from './fixtures';

test('a plan lists its question, then its tasks', () => {
  const snapshot = plan({
    question: { escalationId: 'e-1', taskId: 'p-1/a', text: 'Task a failed twice. Retry?', choices: [{ id: 'retry', label: 'Retry' }, { id: 'abort', label: 'Abort' }] },
    tasks: [task('a', { status: 'escalated' }), task('b', { dependsOn: ['p-1/a'] })],
  });
  const [root] = model.rootNodes([snapshot]);
  const children = model.childNodes(root).map((n) => model.itemSpec(n));
  assert.deepEqual(
    children.map((c) => [c.id, c.label, c.contextValue]),
    [
      ['p-1#e-1', 'Task a failed twice. Retry?', 'question answer'],
      ['p-1/a', 'Task a', 'task retry diff'],
      ['p-1/b', 'Task b', 'task cancel diff'],
    ],
  );
  assert.equal(children[0].description, 'Retry / Abort');
  assert.equal(children[0].click, 'answer');
  assert.match(children[2].description, /after a/);
});

test('a task shows its state icon, role, dependencies and spend', () => {
  const snapshot = plan({
    tasks: [
      task('api', { status: 'ready', tokens: 1200, costUsd: 0.004, findings: 1 }),
      task('ui', { status: 'running', role: 'implementer', dependsOn: ['p-1/api'], tokens: 45_678, costUsd: 0.1234 }),
    ],
  });
  const [ready, running] = snapshot.tasks.map((t) => model.itemSpec({ kind: 'task', plan: snapshot, task: t }));
  assert.deepEqual(ready.icon, { id: 'check', color: 'testing.iconPassed' });
  assert.equal(ready.description, 'ready · 1 finding · 1.2k tok · <$0.01');
  assert.deepEqual(running.icon, { id: 'sync~spin', color: 'charts.blue' });
  assert.equal(running.description, 'running · implementer · after api · 46k tok · $0.12');
  assert.match(running.tooltip, /Depends on: `api`/);
  assert.match(running.tooltip, /Role: implementer/);
  assert.equal(running.click, 'openTaskDiff');
  // While the plan runs, a ready task of a multi-task plan cannot be applied yet.
  assert.equal(ready.contextValue, 'task diff');
});

test('a ready plan offers apply and discard; a one-task plan’s task stands for the plan', () => {
  const ready = plan({ status: 'ready', running: false, tokens: 3000, tasks: [task('delegated', { status: 'ready' })] });
  const spec = model.itemSpec({ kind: 'plan', plan: ready }, 0);
  assert.equal(spec.contextValue, 'plan apply discard');
  assert.equal(spec.description, 'ready · 3k tok');
  assert.equal(spec.collapsible, 'expanded');
  const only = model.itemSpec({ kind: 'task', plan: ready, task: ready.tasks[0] });
  assert.equal(only.contextValue, 'task apply discard diff');
});

test('review plans cannot be applied; applied plans cannot be discarded', () => {
  const review = plan({ status: 'ready', running: false, tasks: [task('review', { kind: 'review', status: 'ready' })] });
  assert.deepEqual(model.planActions(review), ['discard']);
  assert.equal(model.itemSpec({ kind: 'task', plan: review, task: review.tasks[0] }).contextValue, 'task discard');
  const applied = plan({ status: 'applied', running: false, tasks: [task('a', { status: 'applied' })] });
  assert.deepEqual(model.planActions(applied), []);
});

test('an interrupted plan offers retry (to resume) and shows as interrupted', () => {
  const interrupted = plan({ status: 'running', running: false });
  assert.deepEqual(model.planActions(interrupted), ['retry', 'discard']);
  assert.equal(model.itemSpec({ kind: 'plan', plan: interrupted }, 3).description, 'interrupted');
  assert.equal(model.itemSpec({ kind: 'plan', plan: interrupted }, 3).collapsible, 'collapsed');
  assert.equal(model.planIcon(interrupted).id, 'debug-pause');
});

test('every status has its own icon', () => {
  const statuses = ['pending', 'running', 'reviewing', 'changes_requested', 'approved', 'ready', 'integrating', 'applied', 'failed', 'cancelled', 'escalated'];
  const ids = new Set(statuses.map((s) => model.taskIcon(s).id));
  assert.equal(ids.size, statuses.length);
});

test('the status bar counts agents at work and what the running plans spent', () => {
  const running = plan({
    status: 'running',
    tokens: 12_345,
    costUsd: 0.04,
    tasks: [task('a', { status: 'running', role: 'implementer' }), task('b', { status: 'reviewing', role: 'reviewer' }), task('c', { status: 'ready' })],
  });
  const spec = model.statusSpec([running], 'running');
  assert.equal(spec.text, '$(sync~spin) 2 agents · 12k tok · $0.04');
  assert.equal(spec.busy, true);
  assert.match(spec.tooltip, /Implement add: running, 2 at work/);

  const planning = plan({ status: 'planning', tasks: [] });
  assert.equal(model.statusSpec([planning], 'running').text, '$(sync~spin) 1 agent');

  const done = plan({ status: 'ready', running: false, tokens: 999 });
  assert.equal(model.statusSpec([done], 'running').text, '$(organization) ready · 999 tok');
  assert.equal(model.statusSpec([], 'running').text, '$(organization) pitcrew');
  assert.equal(model.statusSpec([done], 'stopped').text, '$(circle-slash) pitcrew');
  assert.equal(model.statusSpec([done], 'starting').text, '$(loading~spin) pitcrew');
});

test('planChanged snapshots replace their plan and keep the most recent first', () => {
  const older = plan({ planId: 'p-1', createdAt: '2026-11-21T10:00:00Z' });
  const newer = plan({ planId: 'p-2', createdAt: '2026-11-21T11:00:00Z' });
  const merged = model.mergePlan([older], newer);
  assert.deepEqual(merged.map((p) => p.planId), ['p-2', 'p-1']);
  const updated = model.mergePlan(merged, { ...older, status: 'ready' });
  assert.deepEqual(updated.map((p) => [p.planId, p.status]), [['p-2', 'running'], ['p-1', 'ready']]);
});

test('of two snapshots of a plan, the higher revision wins, whichever arrives last', () => {
  const listed = plan({ revision: 4, status: 'running' });
  const changed = plan({ revision: 5, status: 'ready' });
  // A planChanged older than what is shown is ignored.
  assert.deepEqual(model.mergePlan([changed], listed).map((p) => p.status), ['ready']);
  // A pitcrew/plans answer computed before the last planChanged keeps the newer snapshot, and
  // lists what it lists.
  const other = plan({ planId: 'p-0', createdAt: '2026-11-20T10:00:00Z', revision: 9 });
  const merged = model.mergeListed([changed], [listed, other]);
  assert.deepEqual(merged.map((p) => [p.planId, p.status]), [['p-1', 'ready'], ['p-0', 'running']]);
  assert.deepEqual(model.mergeListed([listed], [changed]).map((p) => p.status), ['ready']);
  assert.deepEqual(model.mergeListed([changed], []), []);
});

test('when the server stops, no plan shows as running', () => {
  const plans = [plan({ running: true }), plan({ planId: 'p-2', running: false, status: 'applied' })];
  const stopped = model.stoppedPlans(plans);
  assert.deepEqual(stopped.map((p) => p.running), [false, false]);
  assert.equal(model.statusSpec(stopped, 'running').busy, false);
  assert.equal(model.stoppedPlans(stopped), stopped);
});

test("a task's documents are recomputed when its state, round or end changes, not its spend", () => {
  const running = task('a', { status: 'running', tokens: 10 });
  assert.equal(model.taskFingerprint(running), model.taskFingerprint(task('a', { status: 'running', tokens: 900, costUsd: 1 })));
  assert.notEqual(model.taskFingerprint(running), model.taskFingerprint({ ...running, status: 'reviewing' }));
  assert.notEqual(model.taskFingerprint(running), model.taskFingerprint({ ...running, round: 1 }));
  assert.notEqual(model.taskFingerprint(running), model.taskFingerprint({ ...running, finishedAt: '2026-11-21T10:01:00Z' }));
});

test('the palette offers the plans and tasks an action applies to', () => {
  const ready = plan({ planId: 'p-2', goal: 'Document it\n\nThe user pointed at src/lib.rs lines 1-3.', status: 'ready', running: false, tasks: [task('d', { status: 'ready' })] });
  const busy = plan({ tasks: [task('a', { status: 'running' }), task('b', { status: 'failed' })] });
  assert.deepEqual(
    model.targetChoices([ready, busy], 'apply').map((c) => c.target),
    [{ planId: 'p-2' }],
  );
  assert.equal(model.targetChoices([ready], 'apply')[0].label, '$(check) Document it');
  assert.deepEqual(
    model.targetChoices([ready, busy], 'cancel').map((c) => c.target),
    [{ planId: 'p-1' }, { taskId: 'p-1/a' }],
  );
  assert.deepEqual(
    model.targetChoices([ready, busy], 'retry').map((c) => c.target),
    [{ taskId: 'p-1/b' }],
  );
});

test('numbers read short', () => {
  assert.equal(model.formatTokens(950), '950');
  assert.equal(model.formatTokens(1000), '1k');
  assert.equal(model.formatTokens(2_500_000), '2.5M');
  assert.equal(model.formatCost(0), '');
  assert.equal(model.formatCost(1.5), '$1.50');
  assert.equal(model.formatSpend(0, 0), '');
  assert.equal(model.formatSpend(9_300, 0.04, 8_000, 0.1), '9.3k tok (8k cached) · $0.04 (saved $0.10)');
});

test('a task without changes reads as a document', () => {
  const text = model.taskMarkdown({
    ...task('review', { kind: 'review', status: 'ready', tokens: 10 }),
    findings: [{ path: 'src/lib.rs', line: 3, severity: 'warning', message: 'overflows' }],
    files: [],
    planId: 'p-1',
    instructions: 'Review src/lib.rs',
    handoff: null,
    verdict: 'approve',
    diff: null,
    checks: [],
    transcriptSummary: ['reviewer: read src/lib.rs'],
  });
  assert.match(text, /^# Task review/);
  assert.match(text, /- warning: src\/lib.rs:3 overflows/);
  assert.match(text, /- reviewer: read src\/lib.rs/);
  assert.match(text, /_No changes yet._/);
});

test('the tree signature changes exactly when what the view shows changes', () => {
  const before = plan({ tasks: [task('a', { status: 'running', tokens: 1200 })] });
  const same = plan({ tasks: [task('a', { status: 'running', tokens: 1210 })] });
  const more = plan({ tasks: [task('a', { status: 'running', tokens: 4300 })] });
  const ready = plan({ tasks: [task('a', { status: 'ready', tokens: 4300 })] });
  const signature = model.treeSignature([before]);
  // 1,200 and 1,210 tokens both read "1.2k tok": nothing to redraw.
  assert.equal(model.treeSignature([same]), signature);
  assert.notEqual(model.treeSignature([more]), signature);
  assert.notEqual(model.treeSignature([ready]), model.treeSignature([more]));
  assert.notEqual(model.treeSignature([]), signature);
});
