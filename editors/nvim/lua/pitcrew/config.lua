-- pitcrew's options: defaults, merging (`vim.g.pitcrew`, then `setup()`), and validation.
local compat = require('pitcrew.compat')

local M = {}

M.defaults = {
  -- The server command, started in the repository's root.
  cmd = { 'pitcrew', 'lsp' },
  -- Extra environment for the server (`PITCREW_LOG = 'debug'`). API keys come from
  -- Neovim's environment, never from settings.
  cmd_env = nil,
  -- Start or attach the client for every file buffer in a git repository.
  autostart = true,
  -- Only buffers of these filetypes (nil: every file).
  filetypes = nil,
  -- `:PitcrewDelegate` without an instruction asks for one; an empty answer offers the
  -- presets.
  presets = true,
  -- Milliseconds between a change and its didChange (0: at once, so the team always works on
  -- what you see and edits computed against an older text are refused and computed again).
  debounce_text_changes = 0,
  -- Show what each agent is doing in the message area (Neovim 0.10+, from the server's
  -- $/progress; older versions: :PitcrewPlanView). false leaves progress to your statusline.
  progress = true,
  -- Merged into Neovim's client capabilities.
  capabilities = nil,
  -- Called as on_attach(client, bufnr).
  on_attach = nil,
  plan_view = {
    -- 'right', 'left', 'below', 'above' (a split) or 'float'.
    layout = 'right',
    -- Columns (right, left), lines (below, above) or the fraction of the editor (float).
    size = 64,
    -- How many finished plans to show below the unfinished ones.
    max_plans = 10,
  },
}

M.options = vim.deepcopy(M.defaults)

local presets = { 'implement', 'fix', 'tests', 'document', 'simplify' }
M.presets = presets

-- The options whose default is nil.
local nil_by_default = { cmd_env = true, filetypes = true, capabilities = true, on_attach = true }

--- Merges `override` into `base`: tables that are lists (cmd, filetypes) replace, others merge.
local function merge(base, override, path)
  for key, value in pairs(override) do
    local name = path and (path .. '.' .. key) or key
    if M.defaults_at(name) == nil and not nil_by_default[name] then
      error(string.format('pitcrew: unknown option %q (see :help pitcrew-options)', name), 0)
    end
    if type(value) == 'table' and type(base[key]) == 'table' and not compat.islist(value) and not compat.islist(base[key]) then
      merge(base[key], value, name)
    else
      base[key] = value
    end
  end
  return base
end

--- The default at a dotted path, or nil.
function M.defaults_at(path)
  local node = M.defaults
  for part in string.gmatch(path, '[^.]+') do
    if type(node) ~= 'table' then
      return nil
    end
    node = node[part]
  end
  return node
end

local function list_of_strings(value)
  if type(value) ~= 'table' or #value == 0 or not compat.islist(value) then
    return false
  end
  for _, item in ipairs(value) do
    if type(item) ~= 'string' or item == '' then
      return false
    end
  end
  return true
end

local function validate(o)
  local v = compat.validate
  v('cmd', o.cmd, list_of_strings, false, 'a non-empty list of strings, like { "pitcrew", "lsp" }')
  v('cmd_env', o.cmd_env, 'table', true)
  v('autostart', o.autostart, 'boolean')
  v('filetypes', o.filetypes, function(x)
    return x == nil or list_of_strings(x)
  end, true, 'nil or a list of filetypes')
  v('presets', o.presets, 'boolean')
  v('progress', o.progress, 'boolean')
  v('debounce_text_changes', o.debounce_text_changes, function(x)
    return type(x) == 'number' and x >= 0
  end, false, 'a number of milliseconds >= 0')
  v('capabilities', o.capabilities, 'table', true)
  v('on_attach', o.on_attach, 'function', true)
  v('plan_view', o.plan_view, 'table')
  v('plan_view.layout', o.plan_view.layout, function(x)
    return vim.tbl_contains({ 'right', 'left', 'below', 'above', 'float' }, x)
  end, false, "one of 'right', 'left', 'below', 'above', 'float'")
  v('plan_view.size', o.plan_view.size, function(x)
    return type(x) == 'number' and x > 0
  end, false, 'a positive number')
  v('plan_view.max_plans', o.plan_view.max_plans, function(x)
    return type(x) == 'number' and x >= 0
  end, false, 'a number >= 0')
end

--- Sets the options from the defaults, `vim.g.pitcrew` and `opts`; raises on a bad option.
function M.set(opts)
  compat.validate('opts', opts, 'table', true)
  local global = vim.g.pitcrew
  compat.validate('vim.g.pitcrew', global, 'table', true)
  local options = vim.deepcopy(M.defaults)
  merge(options, global or {})
  merge(options, opts or {})
  local ok, err = pcall(validate, options)
  if not ok then
    -- vim.validate's message, without the place in this file it was raised from.
    error('pitcrew: bad option ' .. tostring(err):gsub('^[^\n]-:%d+: ', '') .. ' (see :help pitcrew-options)', 0)
  end
  M.options = options
  return options
end

return M
