-- The plan view: a window that shows a repository's plans and their tasks as the team works
-- (pitcrew/plans, then every pitcrew/planChanged), with keys that act on the plan or task
-- under the cursor.
local config = require('pitcrew.config')
local plans = require('pitcrew.plans')

local M = {}

local ns = vim.api.nvim_create_namespace('pitcrew-plan-view')

-- root -> buffer
local buffers = {}
-- buffer -> { [line] = { planId = ..., taskId = ... } }
local targets = {}
-- buffer -> whether the key help is shown
local help_shown = {}

M.keys = {
  { 'a', 'apply', 'apply' },
  { 'D', 'discard', 'discard' },
  { 'c', 'cancel', 'cancel' },
  { 'r', 'retry', 'retry' },
  { 'd', 'diff', 'open diff' },
  { 'A', 'answer', 'answer question' },
  { 'R', 'refresh', 'refresh' },
  { 'q', 'close', 'close' },
  { '?', 'help', 'keys' },
}

local icons = {
  pending = '○',
  running = '●',
  reviewing = '◎',
  changes_requested = '↻',
  approved = '✓',
  ready = '✔',
  integrating = '⇄',
  applied = '✔',
  failed = '✘',
  cancelled = '⊘',
  escalated = '?',
  planning = '●',
  testing = '◎',
}

local groups = {
  PitcrewTitle = 'Title',
  PitcrewHelp = 'Comment',
  PitcrewId = 'Identifier',
  PitcrewDim = 'Comment',
  PitcrewWorking = 'DiagnosticWarn',
  PitcrewReady = 'DiagnosticInfo',
  PitcrewApplied = 'Comment',
  PitcrewFailed = 'DiagnosticError',
  PitcrewQuestion = 'DiagnosticWarn',
}

local function status_group(status)
  if status == 'ready' or status == 'approved' then
    return 'PitcrewReady'
  elseif status == 'applied' or status == 'cancelled' then
    return 'PitcrewApplied'
  elseif status == 'failed' or status == 'escalated' then
    return 'PitcrewFailed'
  elseif status == 'pending' then
    return 'PitcrewDim'
  end
  return 'PitcrewWorking'
end

local function define_highlights()
  for group, link in pairs(groups) do
    vim.cmd(string.format('highlight default link %s %s', group, link))
  end
end

local function thousands(n)
  local s = tostring(math.floor(n or 0))
  return (s:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', ''))
end

local function first_line(text)
  return ((text or ''):match('^[^\n]*'))
end

--- The lines of the view, their highlights and the target of each line.
--- `help` shows the key line.
function M.render(root, list, help)
  local lines, marks, line_targets = {}, {}, {}
  local function add(text, target, highlights)
    table.insert(lines, text)
    line_targets[#lines] = target
    for _, h in ipairs(highlights or {}) do
      table.insert(marks, { #lines - 1, h[1], h[2], h[3] })
    end
  end
  local title = 'pitcrew  ' .. vim.fn.fnamemodify(root, ':~')
  add(title .. '   (? keys)', nil, { { 0, #title, 'PitcrewTitle' }, { #title, -1, 'PitcrewHelp' } })
  if help then
    -- Two rows of keys: what acts on the line, then the view's own.
    local rows = { {}, {} }
    for i, key in ipairs(M.keys) do
      table.insert(rows[i <= 6 and 1 or 2], key[1] .. ' ' .. key[3])
    end
    for _, row in ipairs(rows) do
      add('  ' .. table.concat(row, '  '), nil, { { 0, -1, 'PitcrewHelp' } })
    end
  end
  if #list == 0 then
    add('')
    add('  No plans yet: :PitcrewDelegate, :PitcrewReview or :PitcrewPlan start one.', nil, { { 0, -1, 'PitcrewDim' } })
    return lines, marks, line_targets
  end
  local shown_finished = 0
  local hidden = 0
  for _, plan in ipairs(list) do
    local unfinished = plans.is_unfinished(plan) or plan.status == 'ready' or plan.question ~= vim.NIL and plan.question
    if not unfinished then
      shown_finished = shown_finished + 1
    end
    if unfinished or shown_finished <= config.options.plan_view.max_plans then
      local target = { planId = plan.planId }
      add('')
      local icon = icons[plan.status] or '·'
      local head = string.format('%s %s  ', icon, plan.planId)
      local interrupted = plan.running == false and (plan.status == 'planning' or plan.status == 'running' or plan.status == 'testing')
      local status = plan.status .. (interrupted and ' (interrupted: r retries)' or '')
      local goal = first_line(plan.goal)
      add(head .. status .. '  ' .. goal, target, {
        { 0, #icon, status_group(plan.status) },
        { #icon + 1, #head, 'PitcrewId' },
        { #head, #head + #status, status_group(plan.status) },
      })
      local spend = string.format('  %s tokens · $%.4f', thousands(plan.tokens), plan.costUsd or 0)
      add(spend, target, { { 0, -1, 'PitcrewDim' } })
      for _, task in ipairs(plan.tasks or {}) do
        local short = task.taskId:match('/(.*)$') or task.taskId
        local ticon = icons[task.status] or '·'
        local prefix = string.format('    %s %s  ', ticon, short)
        local tstatus = task.status
        if task.role ~= vim.NIL and task.role and task.status ~= 'ready' then
          tstatus = tstatus .. ' (' .. task.role .. ')'
        end
        local details = {}
        local depends_on = type(task.dependsOn) == 'table' and task.dependsOn or {}
        if #depends_on > 0 then
          local after = vim.tbl_map(function(id)
            return id:match('/(.*)$') or id
          end, depends_on)
          table.insert(details, 'after ' .. table.concat(after, ', '))
        end
        if (task.findings or 0) > 0 then
          table.insert(details, task.findings .. (task.findings == 1 and ' finding' or ' findings'))
        end
        if (task.round or 0) > 1 then
          table.insert(details, 'round ' .. task.round)
        end
        local extra = #details > 0 and ('  ' .. table.concat(details, ' · ')) or ''
        local text = prefix .. tstatus .. extra .. '  ' .. first_line(task.title)
        add(text, { planId = plan.planId, taskId = task.taskId }, {
          { 4, 4 + #ticon, status_group(task.status) },
          { 4 + #ticon + 1, #prefix, 'PitcrewId' },
          { #prefix, #prefix + #tstatus, status_group(task.status) },
          { #prefix + #tstatus, #prefix + #tstatus + #extra, 'PitcrewDim' },
        })
        if task.error ~= vim.NIL and task.error then
          add('        ' .. first_line(task.error), { planId = plan.planId, taskId = task.taskId }, { { 0, -1, 'PitcrewFailed' } })
        end
      end
      if plan.question ~= vim.NIL and plan.question then
        add('    ? ' .. first_line(plan.question.text) .. '  (A to answer)', target, { { 0, -1, 'PitcrewQuestion' } })
      end
      if plan.outcome ~= vim.NIL and plan.outcome and plan.status ~= 'ready' then
        add('    ' .. first_line(plan.outcome), target, { { 0, -1, 'PitcrewDim' } })
      end
    else
      hidden = hidden + 1
    end
  end
  if hidden > 0 then
    add('')
    add(string.format('  %d older plan%s (plan_view.max_plans)', hidden, hidden == 1 and '' or 's'), nil, { { 0, -1, 'PitcrewDim' } })
  end
  return lines, marks, line_targets
end

local function same_target(a, b)
  return a ~= nil and b ~= nil and a.planId == b.planId and a.taskId == b.taskId
end

--- Where the cursor of each window showing `bufnr` is: the target under it, and which of that
--- target's lines (a plan has two or more, a failed task two).
local function cursors_of(bufnr)
  local old = targets[bufnr] or {}
  local cursors = {}
  for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
    local row, col = unpack(vim.api.nvim_win_get_cursor(win))
    local target = old[row]
    local nth = 0
    if target then
      for line = 1, row do
        if same_target(old[line], target) then
          nth = nth + 1
        end
      end
    end
    table.insert(cursors, { win = win, row = row, col = col, target = target, nth = nth })
  end
  return cursors
end

--- Puts each cursor back on the line of its plan or task, wherever the redraw moved it (new
--- plans come first); on the plan's line when its task is gone.
local function restore_cursors(cursors, line_targets, count)
  for _, cursor in ipairs(cursors) do
    local row = math.min(cursor.row, count)
    if cursor.target then
      local found, plan_row, seen = nil, nil, 0
      for line = 1, count do
        local target = line_targets[line]
        if same_target(target, cursor.target) then
          seen = seen + 1
          if seen <= cursor.nth then
            found = line
          end
        elseif plan_row == nil and target and not target.taskId and target.planId == cursor.target.planId then
          plan_row = line
        end
      end
      row = found or plan_row or row
    end
    if vim.api.nvim_win_is_valid(cursor.win) then
      pcall(vim.api.nvim_win_set_cursor, cursor.win, { row, cursor.col })
    end
  end
end

local function draw(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  local root = vim.b[bufnr].pitcrew_root
  local lines, marks, line_targets = M.render(root, plans.list(root), help_shown[bufnr])
  local cursors = cursors_of(bufnr)
  vim.bo[bufnr].modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].modifiable = false
  vim.bo[bufnr].modified = false
  vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  for _, m in ipairs(marks) do
    local line = lines[m[1] + 1]
    local finish = m[3] < 0 and #line or math.min(m[3], #line)
    if finish > m[2] then
      vim.api.nvim_buf_set_extmark(bufnr, ns, m[1], m[2], { end_col = finish, hl_group = m[4] })
    end
  end
  targets[bufnr] = line_targets
  restore_cursors(cursors, line_targets, #lines)
end

-- Redraws the views of a root when its plans change (at most once per event-loop turn).
local scheduled = {}
plans.on_change(function(root)
  local bufnr = buffers[root]
  if not bufnr or scheduled[bufnr] then
    return
  end
  scheduled[bufnr] = true
  vim.schedule(function()
    scheduled[bufnr] = nil
    draw(bufnr)
  end)
end)

--- The plan or task under the cursor of the plan view.
function M.target_at_cursor()
  local bufnr = vim.api.nvim_get_current_buf()
  local line = vim.api.nvim_win_get_cursor(0)[1]
  return (targets[bufnr] or {})[line]
end

local function create_buffer(root)
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(bufnr, 'pitcrew://plans' .. root)
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].bufhidden = 'hide'
  vim.bo[bufnr].swapfile = false
  vim.bo[bufnr].modifiable = false
  vim.api.nvim_buf_set_var(bufnr, 'pitcrew_root', root)
  local actions = require('pitcrew.actions')
  for _, key in ipairs(M.keys) do
    local name = key[2]
    local fn
    if name == 'close' then
      fn = function()
        if #vim.api.nvim_list_wins() > 1 then
          vim.api.nvim_win_close(0, false)
        else
          vim.cmd('bprevious')
        end
      end
    elseif name == 'help' then
      fn = function()
        help_shown[bufnr] = not help_shown[bufnr]
        draw(bufnr)
      end
    elseif name == 'refresh' then
      fn = function()
        actions.refresh(bufnr)
      end
    else
      fn = function()
        actions.at_cursor(name)
      end
    end
    vim.keymap.set('n', key[1], fn, { buffer = bufnr, nowait = true, silent = true, desc = 'pitcrew: ' .. key[3] })
  end
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = bufnr,
    callback = function()
      buffers[root] = nil
      targets[bufnr] = nil
      help_shown[bufnr] = nil
    end,
  })
  -- Set last: FileType autocommands see a complete buffer.
  vim.bo[bufnr].filetype = 'pitcrew-plan'
  buffers[root] = bufnr
  return bufnr
end

local function open_window(bufnr)
  local options = config.options.plan_view
  local layout, size = options.layout, options.size
  if layout == 'float' then
    local fraction = size <= 1 and size or 0.8
    local width = math.floor(vim.o.columns * fraction)
    local height = math.floor((vim.o.lines - 2) * fraction)
    return vim.api.nvim_open_win(bufnr, true, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - 2 - height) / 2),
      col = math.floor((vim.o.columns - width) / 2),
      style = 'minimal',
      border = 'rounded',
    })
  end
  local commands = {
    right = 'botright vertical',
    left = 'topleft vertical',
    below = 'botright',
    above = 'topleft',
  }
  vim.cmd(string.format('%s %dsplit', commands[layout], size))
  vim.api.nvim_win_set_buf(0, bufnr)
  local win = vim.api.nvim_get_current_win()
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
  vim.wo[win].signcolumn = 'no'
  vim.wo[win].wrap = false
  vim.wo[win].cursorline = true
  vim.wo[win].statusline = " pitcrew plans%=%{v:lua.require'pitcrew'.status()} "
  if layout == 'right' or layout == 'left' then
    vim.wo[win].winfixwidth = true
  else
    vim.wo[win].winfixheight = true
  end
  return win
end

--- Opens (or focuses) the plan view of `root`; returns its buffer.
function M.open(root)
  define_highlights()
  local bufnr = buffers[root]
  if not bufnr or not vim.api.nvim_buf_is_valid(bufnr) then
    bufnr = create_buffer(root)
  end
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    vim.api.nvim_set_current_win(win)
  else
    open_window(bufnr)
  end
  draw(bufnr)
  return bufnr
end

--- The plan view buffer of `root`, if open.
function M.buffer(root)
  return buffers[root]
end

return M
