-- The team's question in a real Neovim: it never takes the keyboard (no showMessageRequest,
-- whose input list would swallow what the user types, even with a UI attached); the user
-- types on while it arrives and loses nothing; a notification names :PitcrewAnswer; the
-- question shows in the plan view, `d` opens the rejected result's diff, and `A` answers it;
-- a second plan's question is told too.
-- Run by tests/tests/editor_nvim.rs; see harness.lua.

local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local env, log, check, equal, wait_for = H.env, H.log, H.check, H.equal, H.wait_for
local lines_of, find_line = H.lines_of, H.find_line

local function test()
  -- As with a UI attached: Neovim's own prompt handler would take the keys; count its calls.
  vim.api.nvim_list_uis = function()
    return { { width = 80, height = 24 } }
  end
  local prompts = 0
  vim.lsp.handlers['window/showMessageRequest'] = function()
    prompts = prompts + 1
    return vim.NIL
  end
  require('pitcrew').setup({ cmd = { env('PITCREW_TEST_BIN'), 'lsp' } })
  vim.cmd('edit ' .. vim.fn.fnameescape(env('PITCREW_TEST_REPO') .. '/' .. env('PITCREW_TEST_FILE')))
  vim.cmd('PitcrewDelegate ' .. env('PITCREW_TEST_INSTRUCTION'))
  vim.cmd('PitcrewPlanView')
  local view = vim.api.nvim_get_current_buf()

  -- The user types in a scratch buffer while the reviewer rejects the result and the team
  -- asks: every word lands in the buffer.
  vim.cmd('new')
  local scratch = vim.api.nvim_get_current_buf()
  local typed = {}
  local question
  for i = 1, 400 do
    local word = 'word' .. i
    vim.api.nvim_feedkeys('A ' .. word .. '\27', 'xt', false)
    table.insert(typed, word)
    question = find_line(lines_of(view), '(A to answer)')
    if question and #typed >= 27 then
      break
    end
    vim.wait(20)
  end
  check(question, 'the question in the plan view')
  log('question: ' .. question)
  check(question:find('rejected', 1, true), 'the question says why: ' .. question)
  local text = table.concat(lines_of(scratch), '\n')
  equal(text, ' ' .. table.concat(typed, ' '), 'every word typed while the team asked')
  log(string.format('typed %d words while the question arrived; none lost', #typed))
  wait_for('the one-line notification that names :PitcrewAnswer', function()
    return find_line(H.messages, ':PitcrewAnswer ')
  end)
  equal(prompts, 0, 'prompts that took the keyboard')
  vim.cmd('bwipeout!')
  vim.fn.win_gotoid(vim.fn.bufwinid(view))

  -- `d` on the task shows the diff of its result.
  local task_row
  for row, line in ipairs(lines_of(view)) do
    if line:find('delegated', 1, true) then
      task_row = row
    end
  end
  check(task_row, 'the task line')
  vim.api.nvim_win_set_cursor(0, { task_row, 0 })
  vim.api.nvim_feedkeys('d', 'x', false)
  local diff = wait_for('the diff window', function()
    local name = vim.api.nvim_buf_get_name(0)
    return name:find('pitcrew://diff/', 1, true) and vim.api.nvim_get_current_buf()
  end)
  equal(vim.bo[diff].filetype, 'diff', 'the diff buffer filetype')
  check(find_line(lines_of(diff), env('PITCREW_TEST_DIFF_LINE')), 'the diff shows the change:\n' .. table.concat(lines_of(diff), '\n'))
  vim.api.nvim_feedkeys('q', 'x', false)
  check(vim.api.nvim_buf_is_valid(diff) == false or vim.fn.bufwinid(diff) == -1, 'q closes the diff')

  -- `A` answers with the choice made in vim.ui.select.
  vim.fn.win_gotoid(vim.fn.bufwinid(view))
  vim.api.nvim_win_set_cursor(0, { task_row, 0 })
  local offered
  vim.ui.select = function(items, opts, on_choice)
    offered = vim.tbl_map(opts.format_item, items)
    for _, item in ipairs(items) do
      if opts.format_item(item) == env('PITCREW_TEST_ANSWER') then
        return on_choice(item)
      end
    end
    on_choice(nil)
  end
  vim.api.nvim_feedkeys('A', 'x', false)
  check(offered, 'A offers the choices')
  log('choices: ' .. table.concat(offered, ', '))
  local ended = wait_for('the plan to end', function()
    local lines = lines_of(view)
    return not find_line(lines, '(A to answer)') and (find_line(lines, 'failed') or find_line(lines, 'escalated'))
  end)
  log('after the answer: ' .. ended)

  -- A second plan asks too (its question has the same id within its plan): told as well.
  vim.cmd('wincmd p')
  vim.cmd('PitcrewDelegate ' .. env('PITCREW_TEST_INSTRUCTION'))
  local function asked()
    local plans = {}
    for _, message in ipairs(H.messages) do
      local id = message:match('pitcrew asks %(:PitcrewAnswer (%S+)%)')
      if id then
        plans[id] = true
      end
    end
    return vim.tbl_count(plans) >= 2 and plans
  end
  local both = wait_for("the second plan's question", asked)
  log('questions told for plans: ' .. table.concat(vim.tbl_keys(both), ', '))
end

H.run(test)
