// Plan snapshots as the server sends them, for the unit tests.

import type { PlanSnapshot, TaskSummary } from '../lsp_ext';

export function task(id: string, fields: Partial<TaskSummary> = {}): TaskSummary {
  return {
    taskId: `p-1/${id}`,
    title: `Task ${id}`,
    status: 'pending',
    role: null,
    kind: 'implement',
    dependsOn: [],
    branch: null,
    round: 0,
    findings: 0,
    tokens: 0,
    cachedTokens: 0,
    costUsd: 0,
    savedUsd: 0,
    startedAt: null,
    finishedAt: null,
    error: null,
    ...fields,
  };
}

export function plan(fields: Partial<PlanSnapshot> = {}): PlanSnapshot {
  return {
    planId: 'p-1',
    goal: 'Implement add',
    status: 'running',
    integrationBranch: 'pitcrew/p-1/integration',
    createdAt: '2026-11-21T10:00:00Z',
    updatedAt: '2026-11-21T10:00:05Z',
    revision: 1,
    tokens: 0,
    cachedTokens: 0,
    costUsd: 0,
    savedUsd: 0,
    outcome: null,
    running: true,
    question: null,
    tasks: [task('delegated')],
    ...fields,
  };
}
