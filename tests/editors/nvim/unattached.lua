-- A buffer the client has not opened, in a real Neovim: the client runs for the repository
-- (a Rust file), a Python file is not attached (`filetypes = { 'rust' }`) and has an unsaved
-- line; a charwise visual selection on it, ending on a character of two UTF-16 code units, is
-- delegated. The plugin opens the buffer first (the implementer reads its unsaved text) and
-- sends the selection's exact range; the result applies with the unsaved line kept. Then
-- `window/showDocument` where the plugin handles it (0.7): from a modified buffer without
-- 'hidden', at a column after non-ASCII characters.
-- Run by tests/tests/editor_nvim.rs; see harness.lua.

local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local env, log, check, equal, wait_for = H.env, H.log, H.check, H.equal, H.wait_for
local buffer_text, lines_of, find_line = H.buffer_text, H.lines_of, H.find_line

local function test()
  local repo = env('PITCREW_TEST_REPO')
  local version = vim.version()
  log(string.format('Neovim %d.%d.%d', version.major, version.minor, version.patch))
  vim.cmd('filetype on')
  require('pitcrew').setup({ cmd = { env('PITCREW_TEST_BIN'), 'lsp' }, filetypes = { 'rust' } })

  -- The Rust file starts the client.
  vim.cmd('edit ' .. vim.fn.fnameescape(repo .. '/' .. env('PITCREW_TEST_FILE')))
  local rust = vim.api.nvim_get_current_buf()
  local client = wait_for('the client', function()
    local c = require('pitcrew').get_client(rust)
    return c and c.initialized and c
  end)
  log('client ' .. client.id .. ', positions in ' .. client.offset_encoding)

  -- The Python file is not attached; the user adds a line and does not save.
  vim.cmd('edit ' .. vim.fn.fnameescape(repo .. '/' .. env('PITCREW_TEST_PY')))
  local py = vim.api.nvim_get_current_buf()
  equal(vim.bo[py].filetype, 'python', 'the filetype of the second file')
  check(not vim.lsp.buf_is_attached(py, client.id), 'the Python buffer is not attached (filetypes)')
  vim.api.nvim_buf_set_lines(py, -1, -1, false, { env('PITCREW_TEST_UNSAVED') })

  -- Select the string's characters, the last one an emoji, and delegate them.
  local row = vim.api.nvim_buf_line_count(py)
  local line = vim.api.nvim_buf_get_lines(py, row - 1, row, false)[1]
  local selected = env('PITCREW_TEST_SELECTED')
  local col = assert(line:find(selected, 1, true), 'the selection in the line') - 1
  vim.api.nvim_win_set_cursor(0, { row, col })
  vim.cmd('normal! v' .. (vim.fn.strchars(selected) - 1) .. 'l\27')
  equal(vim.fn.visualmode(), 'v', 'a charwise selection')
  vim.cmd("'<,'>PitcrewDelegate " .. env('PITCREW_TEST_INSTRUCTION'))
  check(vim.lsp.buf_is_attached(py, client.id), 'the delegate attached the Python buffer')

  -- Ready, then applied: the result, the unsaved line in it, lands in the buffer.
  vim.cmd('PitcrewPlanView')
  local view = vim.api.nvim_get_current_buf()
  local plan_line = wait_for('the plan ready', function()
    for _, l in ipairs(lines_of(view)) do
      if l:match('^%S+ %S+  ready  ') then
        return l
      end
    end
  end)
  local plan_id = plan_line:match('^%S+%s+(%S+)')
  vim.cmd('PitcrewApply ' .. plan_id)
  local expected = env('PITCREW_TEST_RESULT')
  vim.wait(20000, function()
    return buffer_text(py) == expected
  end, 20)
  equal(buffer_text(py), expected, 'the result in the Python buffer')
  check(vim.bo[py].modified, 'the result is not saved')
  wait_for('the plan applied', function()
    return find_line(lines_of(view), plan_id, 'applied')
  end)

  -- window/showDocument: Neovim 0.7 has no handler, the plugin's opens the file.
  local show_document = client.handlers['window/showDocument']
  if show_document then
    vim.cmd('only')
    vim.api.nvim_win_set_buf(0, rust)
    vim.api.nvim_buf_set_lines(rust, 0, 0, false, { '// modified, not saved' })
    vim.o.hidden = false
    local character = tonumber(env('PITCREW_TEST_SHOW_CHARACTER'))
    local ok, result = pcall(show_document, nil, {
      uri = vim.uri_from_bufnr(py),
      takeFocus = true,
      selection = {
        start = { line = 0, character = character },
        ['end'] = { line = 0, character = character },
      },
    }, { client_id = client.id, method = 'window/showDocument' })
    check(ok, 'showDocument from a modified buffer without hidden: ' .. tostring(result))
    equal(result, { success = true }, 'the showDocument result')
    equal(vim.api.nvim_get_current_buf(), py, 'the document shown in the current window')
    equal(vim.api.nvim_win_get_cursor(0), { 1, tonumber(env('PITCREW_TEST_SHOW_BYTE')) }, 'the cursor at the selection')
    check(vim.fn.bufwinid(rust) ~= -1, 'the modified buffer stays in a window')
  else
    log('Neovim handles window/showDocument itself')
  end
end

H.run(test)
