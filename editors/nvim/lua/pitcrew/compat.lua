-- Differences between the Neovim versions pitcrew supports (0.7 to the current release),
-- in one place, so the rest of the plugin reads the same on all of them.
local M = {}

M.uv = vim.uv or vim.loop

--- Whether Neovim is at least `version` ("0.10").
function M.has(version)
  return vim.fn.has('nvim-' .. version) == 1
end

--- `vim.validate` for one value: the positional form where it exists (0.11 deprecates the
--- table form), the table form before.
function M.validate(name, value, validator, optional, message)
  if M.has('0.11') then
    vim.validate(name, value, validator, optional, message)
  elseif type(validator) == 'function' then
    vim.validate({ [name] = { value, validator, message } })
  else
    vim.validate({ [name] = { value, validator, optional } })
  end
end

function M.islist(t)
  if vim.islist then
    return vim.islist(t)
  end
  return vim.tbl_islist(t)
end

--- `client:request` (0.11 deprecates `client.request`).
function M.request(client, method, params, handler, bufnr)
  if M.has('0.11') then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if M.has('0.11') then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.is_stopped(client)
  if M.has('0.11') then
    return client:is_stopped()
  end
  return client.is_stopped()
end

--- Starts a client for `config` and attaches `bufnr`: `vim.lsp.start` where it exists (one
--- client per name and root), `vim.lsp.start_client` and `vim.lsp.buf_attach_client` on 0.7.
--- Returns the client id.
function M.start_client(config, bufnr, existing)
  if vim.lsp.start then
    return vim.lsp.start(config, {
      bufnr = bufnr,
      reuse_client = function(client, conf)
        return client.name == conf.name and client.config.root_dir == conf.root_dir
      end,
    })
  end
  local id = existing or vim.lsp.start_client(config)
  if id and not vim.lsp.buf_is_attached(bufnr, id) then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

--- How many code units of `encoding` ('utf-8', 'utf-16', 'utf-32') the first `byte` bytes of
--- `line` are.
function M.utf_index(line, byte, encoding)
  byte = math.max(0, math.min(byte, #line))
  if encoding == 'utf-8' then
    return byte
  end
  if M.has('0.11') then
    return vim.str_utfindex(line, encoding, byte, false)
  end
  local utf32, utf16 = vim.str_utfindex(line, byte)
  return encoding == 'utf-32' and utf32 or utf16
end

--- The byte offset in `line` of code unit `index` of `encoding` (the end of the line past it).
function M.byte_index(line, index, encoding)
  if encoding == 'utf-8' then
    return math.max(0, math.min(index, #line))
  end
  if M.has('0.11') then
    return vim.str_byteindex(line, encoding, index, false)
  end
  local ok, byte = pcall(vim.str_byteindex, line, index, encoding == 'utf-16')
  return ok and byte or #line
end

--- The health report functions: `vim.health.*` (0.10+), `vim.health.report_*` (0.8, 0.9),
--- or the `health#report_*` Vimscript functions (0.7).
M.health = {}
for _, kind in ipairs({ 'start', 'ok', 'info', 'warn', 'error' }) do
  M.health[kind] = function(message, advice)
    local health = vim.health
    if health and health[kind] and health.ok then
      return health[kind](message, advice)
    elseif health and health['report_' .. kind] then
      return health['report_' .. kind](message, advice)
    end
    local fn = vim.fn['health#report_' .. kind]
    if (kind == 'warn' or kind == 'error') and advice then
      return fn(message, type(advice) == 'table' and advice or { advice })
    end
    return fn(message)
  end
end

return M
