-- Sets up the scene of docs/screenshots/nvim-plan-window.png in a real Neovim (run by
-- ./screenshot inside tmux): a delegated function whose result is ready, with the reviewer's
-- finding on it, and a plan of three tasks at work, in the plan view. Touches
-- $PITCREW_SHOT_READY when the screen shows all of it.

local bin = assert(os.getenv('PITCREW_BIN'), 'PITCREW_BIN')
local ready_file = assert(os.getenv('PITCREW_SHOT_READY'), 'PITCREW_SHOT_READY')

vim.o.termguicolors = true
vim.cmd('filetype plugin indent on')
vim.cmd('syntax on')
vim.o.number = true
vim.o.signcolumn = 'yes'
vim.o.laststatus = 2
vim.o.showmode = false
vim.o.shortmess = vim.o.shortmess .. 'F'
vim.o.statusline = " %<%f %m%=%{v:lua.require'pitcrew'.status()}   %l:%c "
vim.diagnostic.config({ virtual_text = { prefix = '●' }, severity_sort = true })

local function fail(message)
  io.stderr:write('screenshot: ' .. message .. '\n')
  vim.cmd('cquit 1')
end

local function wait_for(what, condition)
  if not vim.wait(30000, condition, 50) then
    fail('timed out waiting for ' .. what)
  end
end

local function view_has(...)
  local needles = { ... }
  local root = require('pitcrew.lsp').root_for(0)
  local bufnr = require('pitcrew.view').buffer(root)
  if not bufnr then
    return false
  end
  local text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n')
  for _, needle in ipairs(needles) do
    if not text:find(needle, 1, true) then
      return false
    end
  end
  return true
end

require('pitcrew').setup({ cmd = { bin, 'lsp' }, plan_view = { size = 78 } })
vim.cmd('edit src/lib.rs')
local source = vim.api.nvim_get_current_buf()

-- The function delegated from the command line.
vim.cmd('3,6PitcrewDelegate implement add; overflow must not wrap silently')
vim.cmd('PitcrewPlanView')
wait_for('the delegated task to be ready', function()
  return view_has('ready')
end)
vim.cmd('PitcrewPlan Return errors instead of panicking, with tests')
wait_for('the plan at work', function()
  return view_has('reviewing', 'running', 'pending', 'ready', '1 finding')
end)
wait_for('the finding in the buffer', function()
  return #vim.diagnostic.get(source) > 0
end)
-- The keys, and the cursor on a task.
vim.api.nvim_feedkeys('?', 'x', false)
vim.fn.search('reviewing')
vim.cmd('normal! 0')
vim.cmd('redraw!')
vim.defer_fn(function()
  local file = assert(io.open(ready_file, 'w'))
  file:write('ready\n')
  file:close()
end, 300)
