-- The pitcrew plugin in a real Neovim, driven as a user would: an unsaved edit, a delegated
-- range, the plan view, :PitcrewApply, the reviewer's diagnostics, :checkhealth, :help.
-- Run by tests/tests/editor_nvim.rs with the data in PITCREW_TEST_* variables; writes its
-- progress to stderr, and exits with `qall!` when every check passed, `cquit 1` otherwise.

local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local env, log, check, equal, wait_for = H.env, H.log, H.check, H.equal, H.wait_for
local read_file, buffer_text, lines_of, find_line = H.read_file, H.buffer_text, H.lines_of, H.find_line
local pitcrew_diagnostics = H.pitcrew_diagnostics

local function test()
  local bin = env('PITCREW_TEST_BIN')
  local repo = env('PITCREW_TEST_REPO')
  local file = repo .. '/' .. env('PITCREW_TEST_FILE')
  local original = read_file(file)
  local plugin = env('PITCREW_TEST_PLUGIN')

  local version = vim.version()
  log(string.format('Neovim %d.%d.%d', version.major, version.minor, version.patch))
  require('pitcrew').setup({ cmd = { bin, 'lsp' } })
  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()

  -- The user writes a note above the function, and does not save.
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { env('PITCREW_TEST_NOTE') })
  check(vim.bo[buf].modified, 'the buffer is modified')

  -- Delegate the function (lines 2 to the end), unsaved note and all.
  local last = vim.api.nvim_buf_line_count(buf)
  vim.cmd(string.format('2,%dPitcrewDelegate %s', last, env('PITCREW_TEST_INSTRUCTION')))
  local client = wait_for('the client', function()
    local c = require('pitcrew').get_client(buf)
    return c and c.initialized and c
  end)
  log('client ' .. client.id .. ', positions in ' .. client.offset_encoding)
  equal(client.offset_encoding, env('PITCREW_TEST_ENCODING'), 'the negotiated position encoding')

  -- The plan view shows the task at work, then ready.
  vim.cmd('PitcrewPlanView')
  local view = vim.api.nvim_get_current_buf()
  check(view ~= buf, 'the plan view is its own buffer')
  equal(vim.bo[view].filetype, 'pitcrew-plan', 'the plan view filetype')
  local task_line = wait_for('the task in the plan view', function()
    return find_line(lines_of(view), 'delegated')
  end)
  log('plan view: ' .. task_line)
  -- The plan's line (`<icon> <plan id>  ready  <goal>`) and the task's, both ready.
  local function ready_lines()
    local plan_line, task_line
    for _, line in ipairs(lines_of(view)) do
      if line:find('delegated  ready', 1, true) and line:find(env('PITCREW_TEST_INSTRUCTION'), 1, true) then
        task_line = line
      elseif line:match('^%S+ %S+  ready  ') and line:find(env('PITCREW_TEST_INSTRUCTION'), 1, true) then
        plan_line = line
      end
    end
    return plan_line and task_line and { plan_line, task_line }
  end
  local plan_line, ready_line = unpack(wait_for('the plan and its task ready in the plan view', ready_lines))
  local view_lines = lines_of(view)
  log('plan view when ready:\n  ' .. table.concat(view_lines, '\n  '))
  check(view_lines[1]:find('pitcrew', 1, true) and view_lines[1]:find('? keys', 1, true), 'a header that names the keys')
  check(ready_line:find('1 finding', 1, true), 'the task line counts the finding: ' .. ready_line)
  -- The agents' progress was shown, by default, where Neovim has LspProgress (0.10+).
  if vim.fn.exists('##LspProgress') == 1 then
    local shown = require('pitcrew').last_progress
    check(shown and shown:find('^pitcrew'), 'progress echoed: ' .. tostring(shown))
    log('progress shown: ' .. shown)
  end
  -- The plugin says it is ready and names the command that applies it (no raw JSON).
  local told = wait_for('the ready notification', function()
    return find_line(H.messages, 'pitcrew: ready: ')
  end)
  check(told:find(':PitcrewApply ', 1, true) and not told:find('{', 1, true), 'the ready message: ' .. told)
  -- `?` shows the keys.
  vim.api.nvim_feedkeys('?', 'x', false)
  check(find_line(lines_of(view), 'a apply', 'd open diff'), 'the key help after ?')

  -- The reviewer's finding is on the line it is about in the unsaved buffer.
  local before = wait_for('the finding before applying', function()
    local d = pitcrew_diagnostics(buf)
    return #d == 1 and d[1]
  end)
  equal(before.lnum, tonumber(env('PITCREW_TEST_FINDING_LINE_BEFORE')), 'the finding line before applying')
  check(before.message:find(env('PITCREW_TEST_FINDING'), 1, true), 'the finding message: ' .. before.message)

  -- Task ids complete on the command line.
  local plan_id = plan_line:match('^%S+%s+(%S+)')
  check(plan_id, 'a plan id in ' .. plan_line)
  local completions = vim.fn.getcompletion('PitcrewApply ', 'cmdline')
  check(vim.tbl_contains(completions, plan_id .. '/delegated'), 'completion offers the task: ' .. vim.inspect(completions))

  -- The user types more while the result waits; then applies from the plan view's buffer.
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { env('PITCREW_TEST_LATER') })
  vim.cmd('PitcrewApply')
  local expected = env('PITCREW_TEST_EXPECTED')
  wait_for('the result in the buffer', function()
    return buffer_text(buf) == expected
  end)
  equal(buffer_text(buf), expected, 'the buffer after applying')
  check(vim.bo[buf].modified, 'the result is in the buffer, not saved')
  equal(read_file(file), original, 'the file on disk')
  wait_for('the plan applied in the view', function()
    return find_line(lines_of(view), plan_id, 'applied')
  end)

  -- The finding follows the result into the buffer.
  local after = wait_for('the finding on the applied line', function()
    local d = pitcrew_diagnostics(buf)
    return #d == 1 and d[1].lnum == tonumber(env('PITCREW_TEST_FINDING_LINE_AFTER')) and d[1]
  end)
  check(after.message:find(env('PITCREW_TEST_FINDING'), 1, true), 'the finding message after applying')
  equal(after.severity, vim.diagnostic.severity.WARN, 'the finding severity')

  -- An edit computed for an older version of the buffer is refused, not skipped in silence
  -- (Neovim's handler would answer `applied: true`); one for the current version applies.
  local apply_edit = client.handlers['workspace/applyEdit']
  local function edit_at(version, text)
    local change = {
      textDocument = { uri = vim.uri_from_bufnr(buf), version = version },
      edits = { { range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 0 } }, newText = text } },
    }
    return apply_edit(nil, { edit = { documentChanges = { change } } }, { client_id = client.id, method = 'workspace/applyEdit' }, {})
  end
  local current = vim.lsp.util.buf_versions[buf]
  local stale = edit_at(current - 1, '// stale\n')
  equal(stale.applied, false, 'a stale edit is refused')
  equal(buffer_text(buf), expected, 'the buffer after a stale edit')
  local fresh = edit_at(current, '// fresh\n')
  equal(fresh.applied, true, 'a current edit applies')
  equal(buffer_text(buf), '// fresh\n' .. expected, 'the buffer after a current edit')

  -- :checkhealth pitcrew runs the binary and `pitcrew doctor`.
  vim.cmd('checkhealth pitcrew')
  local report = table.concat(lines_of(vim.api.nvim_get_current_buf()), '\n')
  log('checkhealth:\n' .. report)
  check(report:find('pitcrew 0', 1, true), 'checkhealth shows the version')
  check(report:find('configuration and models OK', 1, true), 'checkhealth: the configuration is good')
  check(not report:find('ERROR', 1, true), 'checkhealth reports no error')
  check(report:find('tool calls: native', 1, true), 'checkhealth shows how the model calls tools')
  check(report:find('context window', 1, true), 'checkhealth shows the context window')

  -- The help file's tags work.
  local docs = vim.fn.tempname()
  vim.fn.mkdir(docs .. '/doc', 'p')
  vim.fn.writefile(vim.fn.readfile(plugin .. '/doc/pitcrew.txt'), docs .. '/doc/pitcrew.txt')
  vim.cmd('helptags ' .. vim.fn.fnameescape(docs .. '/doc'))
  vim.opt.runtimepath:append(docs)
  for _, tag in ipairs({ 'pitcrew', ':PitcrewDelegate', 'pitcrew-plan-view', 'pitcrew-options', 'pitcrew.setup()' }) do
    vim.cmd('help ' .. tag)
    local shown = vim.fn.expand('%:t')
    check(vim.bo.buftype == 'help' and shown == 'pitcrew.txt', ':help ' .. tag .. ' opened ' .. shown)
  end
end

H.run(test)
