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

-- The questions already told, by plan and escalation id (ids count within a plan): each is
-- told once.
local told = {}

local function question_of(plan)
  local question = plan and plan.question
  if type(question) == 'table' and type(question.escalationId) == 'string' then
    return question
  end
end

local function first_line(text)
  return (tostring(text or ''):match('^[^\n]*'))
end

--- `text` on one line that fits the message area: a longer message would stop Neovim at a
--- hit-enter prompt, which takes the next key the user types.
function M.fit(text)
  text = first_line(text)
  local room = math.max((vim.v.echospace or 80) - 1, 20)
  if vim.fn.strdisplaywidth(text) > room then
    text = vim.fn.strcharpart(text, 0, room - 1) .. '…'
  end
  return text
end

local function say(text, level)
  vim.schedule(function()
    vim.notify(M.fit(text), level)
  end)
end

-- A new question of the team: a notification that points at the answer (no prompt: it would
-- take the keys the user is typing). The whole question is in the plan view.
local function tell(plan)
  local question = question_of(plan)
  if not question then
    return
  end
  local key = plan.planId .. '/' .. question.escalationId
  if told[key] then
    return
  end
  told[key] = true
  say(
    -- The command first: a long question is cut at the end of the line.
    string.format('pitcrew asks (:PitcrewAnswer %s): %s', plan.planId, first_line(question.text)),
    vim.log.levels.WARN
  )
end

local function is_review(plan)
  local tasks = plan.tasks or {}
  if #tasks == 0 then
    return false
  end
  for _, task in ipairs(tasks) do
    if task.kind ~= 'review' then
      return false
    end
  end
  return true
end

-- A plan that just ended, seen live (no longer at work: its final status and the end of its
-- run can come in separate snapshots): what it came to and the command that acts on it.
local function tell_ending(previous, plan)
  if not previous or not M.is_unfinished(previous) or M.is_unfinished(plan) or question_of(plan) then
    return
  end
  local goal = first_line(plan.goal)
  if plan.status == 'ready' and is_review(plan) then
    say(string.format('pitcrew: reviewed "%s"; the findings are diagnostics', goal), vim.log.levels.INFO)
  elseif plan.status == 'ready' then
    say(string.format('pitcrew: ready: :PitcrewApply %s ("%s")', plan.planId, goal), vim.log.levels.INFO)
  elseif plan.status == 'failed' or plan.status == 'escalated' then
    local outcome = plan.outcome ~= vim.NIL and plan.outcome or ''
    say(
      string.format('pitcrew: %s: :PitcrewRetry %s ("%s": %s)', plan.status, plan.planId, goal, first_line(outcome)),
      vim.log.levels.WARN
    )
  end
end

--- Whether any plan of `root` waits on a question.
function M.has_question(root)
  for _, plan in pairs(by_root[root] or {}) do
    if question_of(plan) then
      return true
    end
  end
  return false
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
