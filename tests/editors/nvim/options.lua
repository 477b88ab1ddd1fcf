-- setup() and vim.g.pitcrew in a real Neovim: good options are taken, bad ones are refused
-- with a message that names them; the plugin file keeps setup()'s options; :PitcrewDelegate's
-- questions. Run by tests/tests/editor_nvim.rs; see harness.lua.

local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/harness.lua')
local check, equal = H.check, H.equal

local function refused(opts, needle)
  local ok, err = pcall(require('pitcrew').setup, opts)
  check(not ok, 'setup(' .. vim.inspect(opts) .. ') is refused')
  check(tostring(err):find(needle, 1, true), 'the error names ' .. needle .. ': ' .. tostring(err))
  H.log('refused: ' .. tostring(err))
end

local function test()
  local config = require('pitcrew.config')
  require('pitcrew').setup({ cmd = { 'my-pitcrew', 'lsp' }, plan_view = { layout = 'float' } })
  equal(config.options.cmd, { 'my-pitcrew', 'lsp' }, 'cmd replaces the default list')
  equal(config.options.plan_view.layout, 'float', 'plan_view.layout')
  equal(config.options.plan_view.max_plans, 10, 'the other plan_view defaults stay')

  vim.g.pitcrew = { cmd = { 'from-g' }, presets = false }
  require('pitcrew').setup()
  equal(config.options.cmd, { 'from-g' }, 'vim.g.pitcrew')
  require('pitcrew').setup({ presets = true })
  equal(config.options.cmd, { 'from-g' }, 'vim.g.pitcrew under setup()')
  equal(config.options.presets, true, 'setup() over vim.g.pitcrew')
  vim.g.pitcrew = nil

  refused({ cmd = 'pitcrew lsp' }, 'cmd')
  refused({ cmd = {} }, 'cmd')
  refused({ autostart = 'yes' }, 'autostart')
  refused({ plan_view = { layout = 'sideways' } }, 'plan_view.layout')
  refused({ debounce_text_changes = -1 }, 'debounce_text_changes')
  refused({ on_attach = 3 }, 'on_attach')
  refused({ auto_start = true }, 'auto_start')
  refused({ plan_view = { width = 3 } }, 'plan_view.width')
  vim.g.pitcrew = { filetypes = 'rust' }
  refused({}, 'filetypes')
  vim.g.pitcrew = nil

  -- The commands exist, with completion, and the plugin file loads cleanly.
  vim.cmd('runtime plugin/pitcrew.lua')
  for _, name in ipairs({ 'Delegate', 'Review', 'Plan', 'PlanView', 'Apply', 'Discard', 'Cancel', 'Retry', 'Diff' }) do
    equal(vim.fn.exists(':Pitcrew' .. name), 2, ':Pitcrew' .. name)
  end

  -- setup() from init.lua, then the plugin file with vim.g.pitcrew set: the options stay.
  vim.g.pitcrew = { presets = false }
  require('pitcrew').setup({ cmd = { 'from-init' }, autostart = false })
  vim.g.loaded_pitcrew = nil
  vim.cmd('runtime plugin/pitcrew.lua')
  equal(config.options.cmd, { 'from-init' }, "setup()'s options after the plugin file")
  equal(config.options.presets, false, 'vim.g.pitcrew under them')
  vim.g.pitcrew = nil

  -- :PitcrewDelegate without an instruction asks for one first; an empty answer offers the
  -- presets.
  require('pitcrew').setup({ cmd = { 'from-init' }, autostart = false })
  vim.cmd('edit ' .. vim.fn.fnameescape(H.env('PITCREW_TEST_REPO') .. '/' .. H.env('PITCREW_TEST_FILE')))
  local input, select = vim.ui.input, vim.ui.select
  local asked = {}
  vim.ui.input = function(opts, on_confirm)
    table.insert(asked, 'input: ' .. opts.prompt)
    on_confirm('')
  end
  vim.ui.select = function(items, opts, on_choice)
    table.insert(asked, 'select: ' .. table.concat(vim.tbl_map(opts.format_item, items), ', '))
    on_choice(nil)
  end
  vim.cmd('PitcrewDelegate')
  vim.ui.input, vim.ui.select = input, select
  equal(asked, {
    'input: Delegate (empty: choose a preset): ',
    'select: Implement, Fix the diagnostics here, Add tests, Document, Simplify',
  }, 'what :PitcrewDelegate asks')
end

H.run(test)
