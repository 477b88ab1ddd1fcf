-- :PitcrewReview, :PitcrewPlan and :PitcrewCancel in a real Neovim, and the plan view's `c` and
-- `r` keys, in the floating plan view: a range of an unsaved buffer reviewed, then the whole
-- file, the findings as diagnostics on their lines; a planned goal of two tasks, one after the
-- other, ready; of two slow tasks, one cancelled by name and retried with `r`, the other
-- cancelled with `c`; a slow plan cancelled with :PitcrewCancel. The cursor stays on its task
-- as plans come in above it; `D` asks before it discards. Run by tests/tests/editor_nvim.rs;
-- see harness.lua.

local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local env, log, check, equal, wait_for = H.env, H.log, H.check, H.equal, H.wait_for
local lines_of, find_line, pitcrew_diagnostics = H.lines_of, H.find_line, H.pitcrew_diagnostics

-- How long a cancellation may take to show in the plan view.
local PROMPTLY_MS = 5000
local uv = require('pitcrew.compat').uv

--- The plan line of `goal` in the plan view (`<icon> <plan id>  <status>  <goal>`): its id
--- and status.
local function plan_line(view, goal)
  for _, line in ipairs(lines_of(view)) do
    local id, status, rest = line:match('^%S+ (%S+)  (%S+)  (.*)$')
    if id and rest == goal then
      return id, status
    end
  end
end

--- The line of task `short` in the plan view (`    <icon> <task>  <status>...`): its status,
--- the line, and its row.
local function task_line(view, short)
  for row, line in ipairs(lines_of(view)) do
    local status = line:match('^    %S+ ' .. vim.pesc(short) .. '  (%S+)')
    if status then
      return status, line, row
    end
  end
end

local function shown(view)
  return '\n  ' .. table.concat(lines_of(view), '\n  ')
end

--- Waits until task `short` shows `status`; returns its line and row.
local function wait_task(view, short, status, timeout)
  local ok = vim.wait(timeout or 20000, function()
    return task_line(view, short) == status
  end, 20)
  check(ok, string.format('task %s %s in the plan view within %d ms:%s', short, status, timeout or 20000, shown(view)))
  local _, line, row = task_line(view, short)
  return line, row
end

--- Waits until the plan of `goal` shows `status`; returns its id.
local function wait_plan(view, goal, status, timeout)
  local ok = vim.wait(timeout or 20000, function()
    return select(2, plan_line(view, goal)) == status
  end, 20)
  check(ok, string.format('plan %q %s in the plan view within %d ms:%s', goal, status, timeout or 20000, shown(view)))
  return (plan_line(view, goal))
end

--- Presses `key` on the line of task `short` in the plan view's window.
local function press_on_task(view, short, key)
  local win = vim.fn.bufwinid(view)
  check(win ~= -1, 'the plan view is shown')
  vim.api.nvim_set_current_win(win)
  local _, _, row = task_line(view, short)
  check(row, 'task ' .. short .. ' in the plan view')
  vim.api.nvim_win_set_cursor(win, { row, 0 })
  vim.api.nvim_feedkeys(key, 'x', false)
end

local function test()
  local file = env('PITCREW_TEST_REPO') .. '/' .. env('PITCREW_TEST_FILE')
  local goal_ready, goal_retry, goal_cancel = env('PITCREW_TEST_GOAL_READY'), env('PITCREW_TEST_GOAL_RETRY'), env('PITCREW_TEST_GOAL_CANCEL')
  local version = vim.version()
  log(string.format('Neovim %d.%d.%d', version.major, version.minor, version.patch))
  require('pitcrew').setup({ cmd = { env('PITCREW_TEST_BIN'), 'lsp' }, plan_view = { layout = 'float' } })
  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()
  local file_win = vim.api.nvim_get_current_win()

  -- An unsaved note above the function; the reviewer reviews the function (lines 2-4).
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { env('PITCREW_TEST_NOTE') })
  vim.cmd('2,4PitcrewReview')
  local range_finding = wait_for('the finding of the range review', function()
    local d = pitcrew_diagnostics(buf)
    return #d == 1 and d[1]
  end)
  equal(range_finding.lnum, tonumber(env('PITCREW_TEST_RANGE_FINDING_LINE')), 'the line of the range review finding')
  check(range_finding.message:find(env('PITCREW_TEST_RANGE_FINDING'), 1, true), 'the range finding: ' .. range_finding.message)
  equal(range_finding.severity, vim.diagnostic.severity.WARN, 'the range finding severity')

  -- The whole file: its finding is on the unsaved note, and the first one stays.
  vim.cmd('PitcrewReview')
  local file_finding = wait_for('the finding of the file review', function()
    for _, d in ipairs(pitcrew_diagnostics(buf)) do
      if d.message:find(env('PITCREW_TEST_FILE_FINDING'), 1, true) then
        return d
      end
    end
  end)
  equal(file_finding.lnum, tonumber(env('PITCREW_TEST_FILE_FINDING_LINE')), 'the line of the file review finding')
  local lines = {}
  for _, d in ipairs(pitcrew_diagnostics(buf)) do
    table.insert(lines, d.lnum)
  end
  table.sort(lines)
  equal(lines, { file_finding.lnum, range_finding.lnum }, "the lines of both reviews' findings")
  check(vim.bo[buf].modified, 'nothing saved')

  -- A goal for the team, planned into two tasks, the second after the first.
  vim.cmd('PitcrewPlan ' .. goal_ready)

  -- The plan view, floating over the editor.
  vim.cmd('PitcrewPlanView')
  local view = vim.api.nvim_get_current_buf()
  equal(vim.bo[view].filetype, 'pitcrew-plan', 'the plan view filetype')
  local float = vim.api.nvim_get_current_win()
  local float_config = vim.api.nvim_win_get_config(float)
  equal(float_config.relative, 'editor', 'the plan view is a float over the editor')
  check(float ~= file_win and vim.api.nvim_win_get_buf(file_win) == buf, 'the file stays in its window under the float')
  equal(float_config.width, math.floor(vim.o.columns * 0.8), 'the float width')
  equal(float_config.height, math.floor((vim.o.lines - 2) * 0.8), 'the float height')

  -- Both reviews in the view, by what they reviewed.
  wait_plan(view, 'Review ' .. env('PITCREW_TEST_FILE') .. ':2-4', 'ready')
  wait_plan(view, 'Review ' .. env('PITCREW_TEST_FILE'), 'ready')

  -- The plan ready, its tasks with their order.
  local ready_id = wait_plan(view, goal_ready, 'ready')
  local t1 = wait_task(view, 't1', 'ready')
  local t2 = wait_task(view, 't2', 'ready')
  log('plan view, plan ready:' .. shown(view))
  check(not t1:find('after', 1, true), 't1 depends on nothing: ' .. t1)
  check(t2:find('after t1', 1, true), 't2 shows it comes after t1: ' .. t2)
  -- What the float shows is the plan view, tasks included.
  local in_float = lines_of(vim.api.nvim_win_get_buf(float))
  check(find_line(in_float, ready_id, 'ready', goal_ready), 'the plan in the float')
  check(find_line(in_float, 't2', 'after t1'), 'the second task in the float')

  -- The cursor on t2 stays on t2 when the next plan comes in above it.
  local _, _, t2_row = task_line(view, 't2')
  vim.api.nvim_win_set_cursor(float, { t2_row, 2 })

  -- A plan of two slow tasks side by side: s1 cancelled by name, promptly, and only it.
  vim.cmd('PitcrewPlan ' .. goal_retry)
  wait_task(view, 's1', 'running')
  local _, _, t2_moved = task_line(view, 't2')
  check(t2_moved > t2_row, 'the new plan is above t2:' .. shown(view))
  equal(vim.api.nvim_win_get_cursor(float), { t2_moved, 2 }, 'the cursor still on t2 after the redraw')
  wait_task(view, 's2', 'running')
  local retry_id = plan_line(view, goal_retry)
  local cancelled_at = uv.now()
  vim.cmd('PitcrewCancel ' .. retry_id .. '/s1')
  wait_task(view, 's1', 'cancelled', PROMPTLY_MS)
  log(string.format('s1 cancelled in %d ms', uv.now() - cancelled_at))
  equal(task_line(view, 's2'), 'running', 's2 still runs')
  equal(select(2, plan_line(view, goal_retry)), 'running', 'its plan still runs')

  -- `r` on s1 runs it again (its model answers at once now), while s2 still works.
  press_on_task(view, 's1', 'r')
  wait_task(view, 's1', 'ready')
  equal(task_line(view, 's2'), 'running', 's2 still runs after the retry')
  log('plan view, s1 retried:' .. shown(view))

  -- `c` on s2 cancels it: the plan ends without it.
  cancelled_at = uv.now()
  press_on_task(view, 's2', 'c')
  wait_task(view, 's2', 'cancelled', PROMPTLY_MS)
  log(string.format('s2 cancelled with c in %d ms', uv.now() - cancelled_at))
  wait_plan(view, goal_retry, 'failed', PROMPTLY_MS)
  equal(task_line(view, 's1'), 'ready', 's1 stays ready')
  check(find_line(lines_of(view), 'not every task succeeded', 's2 (cancelled)'), 'why the plan failed:' .. shown(view))

  -- A plan whose first task is slow, the second after it: :PitcrewCancel without an id stops
  -- it, the task at work and the one waiting for it.
  vim.cmd('PitcrewPlan ' .. goal_cancel)
  wait_task(view, 'u1', 'running')
  local u2 = wait_task(view, 'u2', 'pending')
  check(u2:find('after u1', 1, true), 'u2 comes after u1: ' .. u2)
  -- :PitcrewCancel without an id stops the plan still at work.
  cancelled_at = uv.now()
  vim.cmd('PitcrewCancel')
  wait_plan(view, goal_cancel, 'cancelled', PROMPTLY_MS)
  wait_task(view, 'u1', 'cancelled', PROMPTLY_MS)
  wait_task(view, 'u2', 'cancelled', PROMPTLY_MS)
  log(string.format('plan cancelled in %d ms', uv.now() - cancelled_at))
  log('plan view at the end:' .. shown(view))
  -- The other plans are as they were.
  equal(select(2, plan_line(view, goal_ready)), 'ready', 'the first plan')
  equal(select(2, plan_line(view, goal_retry)), 'failed', 'the plan without s2')

  -- `D` on the ready plan asks first: kept, then discarded.
  local function press_on_plan(goal, key, answer)
    local row
    for r, line in ipairs(lines_of(view)) do
      if line:match('^%S+ %S+  %S+  (.*)$') == goal then
        row = r
      end
    end
    check(row, 'the plan of ' .. goal .. ' in the plan view')
    vim.api.nvim_set_current_win(float)
    vim.api.nvim_win_set_cursor(float, { row, 0 })
    local asked
    local select = vim.ui.select
    vim.ui.select = function(items, opts, on_choice)
      asked = opts.prompt
      on_choice(vim.tbl_contains(items, answer) and answer or nil)
    end
    vim.api.nvim_feedkeys(key, 'x', false)
    vim.ui.select = select
    return asked
  end
  local asked = press_on_plan(goal_ready, 'D', 'keep')
  check(asked and asked:find(ready_id, 1, true), 'D asks before discarding the plan: ' .. tostring(asked))
  equal(select(2, plan_line(view, goal_ready)), 'ready', 'kept')
  press_on_plan(goal_ready, 'D', 'discard')
  wait_plan(view, goal_ready, 'cancelled')
  log('plan view after D:' .. shown(view))
end

H.run(test)
