-- What the plugin knows of each repository's plans: the snapshots from `pitcrew/plans` and
-- `pitcrew/planChanged`, kept per repository root.
local M = {}

-- root -> { [planId] = snapshot }
local by_root = {}
-- Called with the root whenever its plans change.
local listeners = {}

local unfinished = { planning = true, running = true, testing = true }
local finished_task = { ready = true }

function M.on_change(fn)
  table.insert(listeners, fn)
end

local function changed(root)
  for _, fn in ipairs(listeners) do
    fn(root)
  end
end

-- The questions already told, by escalation id: each is told once.
local told = {}

local function question_of(plan)
  local question = plan and plan.question
  if type(question) == 'table' and type(question.escalationId) == 'string' then
    return question
  end
end

-- A new question of the team: a notification that points at the answer (no prompt: it would
-- take the keys the user is typing).
local function tell(plan)
  local question = question_of(plan)
  if not question or told[question.escalationId] then
    return
  end
  told[question.escalationId] = true
  vim.schedule(function()
    vim.notify(
      string.format(
        'pitcrew asks (plan %s): %s\nAnswer with :PitcrewAnswer %s, or A in :PitcrewPlanView.',
        plan.planId,
        question.text or '',
        plan.planId
      ),
      vim.log.levels.WARN
    )
  end)
end

local function first_line(text)
  return (tostring(text or ''):match('^[^\n]*'))
end

-- A plan that just ended, seen live: what it came to and the command that acts on it.
local function tell_ending(previous, plan)
  if not previous or previous.status == plan.status or M.is_unfinished(plan) or question_of(plan) then
    return
  end
  local goal = first_line(plan.goal)
  local outcome = plan.outcome ~= vim.NIL and plan.outcome or nil
  local message, level
  if plan.status == 'ready' then
    message = string.format(
      'pitcrew: "%s" is ready%s. Apply it with :PitcrewApply %s (or a in :PitcrewPlanView); see it with :PitcrewPlanView.',
      goal,
      outcome and (' (' .. outcome .. ')') or '',
      plan.planId
    )
    level = vim.log.levels.INFO
  elseif plan.status == 'failed' or plan.status == 'escalated' then
    message = string.format(
      'pitcrew: "%s" %s%s. :PitcrewRetry %s runs it again.',
      goal,
      plan.status,
      outcome and (': ' .. outcome) or '',
      plan.planId
    )
    level = vim.log.levels.WARN
  else
    return
  end
  vim.schedule(function()
    vim.notify(message, level)
  end)
end

--- Records a plan snapshot (as `pitcrew/plan` returns it).
function M.update(root, plan)
  if type(plan) ~= 'table' or type(plan.planId) ~= 'string' then
    return
  end
  by_root[root] = by_root[root] or {}
  local previous = by_root[root][plan.planId]
  by_root[root][plan.planId] = plan
  tell(plan)
  tell_ending(previous, plan)
  changed(root)
end

--- Replaces what is known of `root` with `plans` (the result of `pitcrew/plans`).
function M.replace(root, plans)
  local known = {}
  for _, plan in ipairs(plans or {}) do
    if type(plan) == 'table' and type(plan.planId) == 'string' then
      known[plan.planId] = plan
    end
  end
  by_root[root] = known
  for _, plan in pairs(known) do
    tell(plan)
  end
  changed(root)
end

function M.forget(root)
  by_root[root] = nil
  changed(root)
end

--- The plans of `root`, most recent first.
function M.list(root)
  local list = vim.tbl_values(by_root[root] or {})
  table.sort(list, function(a, b)
    local ka, kb = a.createdAt or '', b.createdAt or ''
    if ka ~= kb then
      return ka > kb
    end
    return a.planId > b.planId
  end)
  return list
end

function M.get(root, plan_id)
  return (by_root[root] or {})[plan_id]
end

function M.roots()
  return vim.tbl_keys(by_root)
end

function M.is_unfinished(plan)
  return unfinished[plan.status] == true or plan.running == true
end

--- The plan and task a task id (`<plan>/<task>`) names, if known.
function M.find_task(root, task_id)
  local plan_id = task_id:match('^(.-)/')
  local plan = plan_id and M.get(root, plan_id)
  for _, task in ipairs(plan and plan.tasks or {}) do
    if task.taskId == task_id then
      return plan, task
    end
  end
end

--- The most recent plan that can be applied: a ready plan, or failing that, a ready task of
--- a plan that has finished (the server applies nothing of a plan still at work). Returns a
--- target (`{planId}` or `{taskId}`) and its plan.
function M.latest_ready(root)
  for _, plan in ipairs(M.list(root)) do
    if plan.status == 'ready' then
      return { planId = plan.planId }, plan
    end
    if not M.is_unfinished(plan) and plan.status ~= 'applied' then
      for _, task in ipairs(plan.tasks or {}) do
        if finished_task[task.status] then
          return { taskId = task.taskId }, plan
        end
      end
    end
  end
end

--- The most recent plan that has finished, neither applied nor cancelled (as a discarded
--- plan is): its result can be dropped.
function M.latest_finished(root)
  for _, plan in ipairs(M.list(root)) do
    if not M.is_unfinished(plan) and plan.status ~= 'applied' and plan.status ~= 'cancelled' then
      return { planId = plan.planId }, plan
    end
  end
end

--- The most recent plan waiting on a question.
function M.latest_question(root)
  for _, plan in ipairs(M.list(root)) do
    if question_of(plan) then
      return plan
    end
  end
end

--- The most recent plan still at work.
function M.latest_unfinished(root)
  for _, plan in ipairs(M.list(root)) do
    if M.is_unfinished(plan) then
      return { planId = plan.planId }, plan
    end
  end
end

--- Every plan and task id known for `root`, for command-line completion.
function M.ids(root)
  local ids = {}
  for _, plan in ipairs(M.list(root)) do
    table.insert(ids, plan.planId)
    for _, task in ipairs(plan.tasks or {}) do
      table.insert(ids, task.taskId)
    end
  end
  return ids
end

--- `{taskId}` for an id with a slash, `{planId}` otherwise.
function M.target(id)
  if id:find('/', 1, true) then
    return { taskId = id }
  end
  return { planId = id }
end

return M
