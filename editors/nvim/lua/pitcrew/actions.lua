-- What the commands and the plan view's keys do: delegate, review and plan selections, act on
-- plans and tasks, show a task's diff, answer the team's questions.
local compat = require('pitcrew.compat')
local config = require('pitcrew.config')
local lsp = require('pitcrew.lsp')
local plans = require('pitcrew.plans')

local M = {}

local notify = lsp.notify
local ERROR, WARN = vim.log.levels.ERROR, vim.log.levels.WARN

--- What a command's range selects, captured when it runs (prompts come later): whole lines,
--- or the characters of a charwise visual selection. Nil without a range.
function M.capture_range(bufnr, args)
  if not args or (args.range or 0) == 0 then
    return nil
  end
  local line1, line2 = args.line1, args.line2
  if args.range == 2 and vim.fn.visualmode() == 'v' then
    local from = vim.api.nvim_buf_get_mark(bufnr, '<')
    local to = vim.api.nvim_buf_get_mark(bufnr, '>')
    if from[1] == line1 and to[1] == line2 then
      local last = vim.api.nvim_buf_get_lines(bufnr, to[1] - 1, to[1], false)[1] or ''
      local exclusive = vim.o.selection == 'exclusive'
      -- '> is past the end of the line after `$`.
      to = { to[1], math.max(0, math.min(to[2], exclusive and #last or #last - 1)) }
      return { chars = true, from = from, to = to, exclusive = exclusive, line1 = line1, line2 = line2 }
    end
  end
  return { line1 = line1, line2 = line2 }
end

--- The byte just after the character at byte `col` (zero-based) of `line`.
local function char_end(line, col)
  if #line == 0 then
    return 0
  end
  col = math.max(0, math.min(col, #line - 1))
  -- Back to the first byte of the character (UTF-8 continuation bytes are 10xxxxxx).
  while col > 0 and line:byte(col + 1) >= 0x80 and line:byte(col + 1) < 0xC0 do
    col = col - 1
  end
  local lead = line:byte(col + 1)
  local length = lead < 0xC0 and 1 or lead < 0xE0 and 2 or lead < 0xF0 and 3 or 4
  return math.min(col + length, #line)
end

--- An LSP range for a captured range, in the client's position encoding.
function M.lsp_range(bufnr, captured, encoding)
  local util = vim.lsp.util
  if captured.chars then
    local function line_at(row)
      return vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ''
    end
    local first, last = line_at(captured.from[1]), line_at(captured.to[1])
    -- The end is exclusive: after the last selected character, whatever its length (with
    -- 'selection' exclusive, the character at '> is not selected).
    local finish = captured.exclusive and math.min(captured.to[2], #last) or char_end(last, captured.to[2])
    return {
      start = { line = captured.from[1] - 1, character = compat.utf_index(first, captured.from[2], encoding) },
      ['end'] = { line = captured.to[1] - 1, character = compat.utf_index(last, finish, encoding) },
    }
  end
  local count = vim.api.nvim_buf_line_count(bufnr)
  local finish
  if captured.line2 < count then
    finish = { line = captured.line2, character = 0 }
  else
    local last = vim.api.nvim_buf_get_lines(bufnr, count - 1, count, false)[1] or ''
    finish = { line = count - 1, character = util.character_offset(bufnr, count - 1, #last, encoding) }
  end
  return { start = { line = captured.line1 - 1, character = 0 }, ['end'] = finish }
end

local function file_buffer(bufnr)
  if not lsp.buffer_root(bufnr) then
    notify('run this in a file of a git repository', ERROR)
    return false
  end
  return true
end

--- The other diagnostics on the selected lines, for the `fix` preset.
local function diagnostics_in(bufnr, captured)
  local messages = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local inside = not captured or (d.lnum + 1 >= captured.line1 and d.lnum + 1 <= captured.line2)
    if inside and d.source ~= 'pitcrew' then
      table.insert(messages, d.source and (d.source .. ': ' .. d.message) or d.message)
    end
  end
  return messages
end

local function started(what)
  return function(result)
    local id = result and (result.taskId ~= vim.NIL and result.taskId or result.planId) or '?'
    notify(string.format('%s as %s (:PitcrewPlanView shows it)', what, id))
  end
end

--- The presets, offered with vim.ui.select when `:PitcrewDelegate` gets no instruction.
local preset_labels = {
  implement = 'Implement',
  fix = 'Fix the diagnostics here',
  tests = 'Add tests',
  document = 'Document',
  simplify = 'Simplify',
}

--- Delegates a selection to an implementer. `opts`: `instruction`, `preset`, `bufnr`, and
--- `range` (as `capture_range` returns). Without an instruction or preset, asks for an
--- instruction; an empty answer offers the presets (the `presets` option).
function M.delegate(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  if not file_buffer(bufnr) then
    return
  end
  local instruction = opts.instruction and vim.trim(opts.instruction) or ''
  if instruction == '' and not opts.preset then
    local prompt = config.options.presets and 'Delegate (empty: choose a preset): ' or 'Delegate: '
    vim.ui.input({ prompt = prompt }, function(input)
      if input == nil then
        return -- cancelled
      end
      if vim.trim(input) ~= '' then
        return M.delegate(vim.tbl_extend('force', opts, { instruction = input, bufnr = bufnr }))
      end
      if not config.options.presets then
        return
      end
      vim.ui.select(config.presets, {
        prompt = 'Delegate to an implementer',
        format_item = function(item)
          return preset_labels[item]
        end,
      }, function(choice)
        if choice then
          M.delegate(vim.tbl_extend('force', opts, { preset = choice, bufnr = bufnr }))
        end
      end)
    end)
    return
  end
  lsp.with_client(bufnr, function(client)
    local arguments = { uri = vim.uri_from_bufnr(bufnr) }
    if opts.range then
      arguments.range = M.lsp_range(bufnr, opts.range, client.offset_encoding)
    end
    if instruction ~= '' then
      arguments.instruction = instruction
    end
    if opts.preset then
      arguments.preset = opts.preset
      if opts.preset == 'fix' then
        arguments.diagnostics = diagnostics_in(bufnr, opts.range)
      end
    end
    lsp.execute(client, 'pitcrew.delegate', arguments, started('delegated'), bufnr)
  end)
end

--- Asks the reviewer to review a selection (`opts.range`) or the whole file, with an
--- optional focus (`opts.instruction`).
function M.review(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  if not file_buffer(bufnr) then
    return
  end
  lsp.with_client(bufnr, function(client)
    local arguments = { uri = vim.uri_from_bufnr(bufnr) }
    if opts.range then
      arguments.range = M.lsp_range(bufnr, opts.range, client.offset_encoding)
    end
    if opts.instruction and vim.trim(opts.instruction) ~= '' then
      arguments.instruction = opts.instruction
    end
    lsp.execute(client, 'pitcrew.review', arguments, started('review started'), bufnr)
  end)
end

--- Asks the planner for a plan towards `opts.goal` (asks for it when empty), pointing at
--- `opts.range` of the buffer when given.
function M.plan(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  local goal = opts.goal and vim.trim(opts.goal) or ''
  if goal == '' then
    vim.ui.input({ prompt = 'Plan the goal: ' }, function(input)
      if input and vim.trim(input) ~= '' then
        M.plan(vim.tbl_extend('force', opts, { goal = input, bufnr = bufnr }))
      end
    end)
    return
  end
  lsp.with_client(bufnr, function(client)
    local arguments = { goal = goal }
    if opts.range and lsp.buffer_root(bufnr) then
      arguments.uri = vim.uri_from_bufnr(bufnr)
      arguments.range = M.lsp_range(bufnr, opts.range, client.offset_encoding)
    end
    lsp.execute(client, 'pitcrew.plan', arguments, started('planning'), bufnr)
  end)
end

local function describe(target)
  return target.taskId and ('task ' .. target.taskId) or ('plan ' .. target.planId)
end

-- The default target of each action, from what the root's plans are doing.
local defaults = {
  apply = function(root)
    return plans.latest_ready(root), 'nothing is ready to apply'
  end,
  discard = function(root)
    return plans.latest_finished(root), 'no finished plan to discard'
  end,
  cancel = function(root)
    return plans.latest_unfinished(root), 'nothing is running'
  end,
  retry = function(root)
    for _, plan in ipairs(plans.list(root)) do
      local stopped = plan.status == 'failed' or plan.status == 'cancelled' or plan.status == 'escalated'
      if stopped or (plans.is_unfinished(plan) and not plan.running) then
        return { planId = plan.planId }
      end
    end
    return nil, 'no failed, cancelled or interrupted plan to retry'
  end,
}

local done = {
  apply = 'applying',
  discard = 'discarded',
  cancel = 'cancelling',
  retry = 'retrying',
}

--- Runs `pitcrew.<action>` (apply, discard, cancel, retry) on `id` (a plan id, or a task id
--- `<plan>/<task>`), or without one on the most recent plan it fits.
function M.act(action, id, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  lsp.with_client(bufnr, function(client, root)
    local function run(target)
      lsp.execute(client, 'pitcrew.' .. action, target, function()
        notify(done[action] .. ' ' .. describe(target))
      end, bufnr)
    end
    if id and id ~= '' then
      return run(plans.target(id))
    end
    lsp.refresh_plans(client, root, function()
      local target, why = defaults[action](root)
      if target then
        run(target)
      else
        notify(why, WARN)
      end
    end)
  end)
end

--- Shows the diff of a task's result (as last reviewed), from `pitcrew/task`.
function M.diff(task_id, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  lsp.with_client(bufnr, function(client)
    lsp.request(client, 'pitcrew/task', { taskId = task_id }, function(err, task)
      if err then
        return notify(err.message, ERROR)
      end
      if not task or task.diff == vim.NIL or not task.diff or task.diff == '' then
        return notify('task ' .. task_id .. ' has no result yet', WARN)
      end
      local name = 'pitcrew://diff/' .. task_id
      local existing = vim.fn.bufnr('^' .. vim.fn.escape(name, '\\/.*$^~[]') .. '$')
      if existing > 0 then
        vim.api.nvim_buf_delete(existing, { force = true })
      end
      vim.cmd('botright new')
      local diff = vim.api.nvim_get_current_buf()
      vim.api.nvim_buf_set_name(diff, name)
      vim.bo[diff].buftype = 'nofile'
      vim.bo[diff].bufhidden = 'wipe'
      vim.bo[diff].swapfile = false
      vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = diff, nowait = true, silent = true })
      vim.bo[diff].modifiable = true
      vim.api.nvim_buf_set_lines(diff, 0, -1, false, vim.split(task.diff, '\n', { plain = true, trimempty = true }))
      vim.bo[diff].modifiable = false
      vim.bo[diff].filetype = 'diff'
    end)
  end)
end

--- Answers the question a plan waits on, choosing with vim.ui.select.
function M.answer(plan_id, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  lsp.with_client(bufnr, function(client, root)
    local plan = plans.get(root, plan_id)
    local question = plan and plan.question
    if not question or question == vim.NIL then
      return notify('plan ' .. plan_id .. ' has no question', WARN)
    end
    vim.ui.select(question.choices or {}, {
      prompt = question.text,
      format_item = function(choice)
        return choice.label
      end,
    }, function(choice)
      if choice then
        lsp.execute(client, 'pitcrew.answer', {
          planId = plan_id,
          escalationId = question.escalationId,
          choice = choice.id,
        }, nil, bufnr)
      end
    end)
  end)
end

--- Fetches the plans again.
function M.refresh(bufnr)
  lsp.with_client(bufnr, function(client, root)
    lsp.refresh_plans(client, root, function() end)
  end)
end

--- The plan view's keys: the action on the plan or task under the cursor.
function M.at_cursor(action)
  local bufnr = vim.api.nvim_get_current_buf()
  local target = require('pitcrew.view').target_at_cursor()
  if not target then
    return notify('no plan or task on this line', WARN)
  end
  local root = lsp.root_for(bufnr)
  local plan = plans.get(root, target.planId)
  local single = plan and plan.tasks and #plan.tasks == 1 and plan.tasks[1]
  if action == 'diff' then
    local task = target.taskId or (single and single.taskId)
    if not task then
      return notify('put the cursor on a task', WARN)
    end
    return M.diff(task, bufnr)
  elseif action == 'answer' then
    return M.answer(target.planId, bufnr)
  end
  -- A task that is its plan's only one: act on the plan, which ends with it.
  local id = (target.taskId and not single) and target.taskId or target.planId
  if action ~= 'discard' then
    return M.act(action, id, bufnr)
  end
  -- Discarding drops the team's work: ask first.
  local what = describe(plans.target(id))
  vim.ui.select({ 'discard', 'keep' }, {
    prompt = 'Discard ' .. what .. '?',
    format_item = function(item)
      return item == 'discard' and ('Discard ' .. what) or 'Keep it'
    end,
  }, function(choice)
    if choice == 'discard' then
      M.act(action, id, bufnr)
    end
  end)
end

return M
