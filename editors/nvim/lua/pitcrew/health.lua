-- :checkhealth pitcrew: the binary, the configuration and the models (`pitcrew doctor
-- --json`), and the running clients.
local compat = require('pitcrew.compat')
local config = require('pitcrew.config')
local lsp = require('pitcrew.lsp')

local health = compat.health
local M = {}

-- `pitcrew doctor` asks each model for a short answer; a slow model takes a while.
local DOCTOR_TIMEOUT_MS = 60000

--- Runs `argv` in `cwd`; returns exit code (-1 on timeout), stdout, stderr.
local function run(argv, cwd, timeout)
  local out, err = {}, {}
  local ok, job = pcall(vim.fn.jobstart, argv, {
    cwd = cwd,
    env = config.options.cmd_env,
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, data)
      out = data
    end,
    on_stderr = function(_, data)
      err = data
    end,
  })
  if not ok or job <= 0 then
    return nil, '', 'cannot run ' .. argv[1]
  end
  local code = vim.fn.jobwait({ job }, timeout)[1]
  if code == -1 then
    vim.fn.jobstop(job)
  end
  return code, table.concat(out, '\n'), table.concat(err, '\n')
end

local function check_binary()
  health.start('pitcrew: server')
  local cmd = config.options.cmd
  if not compat.has('0.7') then
    health.error('Neovim ' .. tostring(vim.version()) .. ' is too old', 'pitcrew needs Neovim 0.7 or later')
  end
  local exe = vim.fn.exepath(cmd[1])
  if exe == '' then
    health.error(
      string.format('`%s` is not executable', cmd[1]),
      { 'install pitcrew (cargo install --path server) or set `cmd` in setup()' }
    )
    return nil
  end
  health.ok(string.format('cmd: %s (%s)', table.concat(cmd, ' '), exe))
  local code, out, err = run({ exe, '--version' }, nil, 10000)
  if code == 0 then
    health.ok(vim.trim(out))
  else
    health.error(string.format('`%s --version` failed: %s', exe, vim.trim(err ~= '' and err or out)))
  end
  return exe
end

local function check_config(exe, root)
  health.start('pitcrew: configuration and models (pitcrew doctor, in ' .. root .. ')')
  local code, out, err = run({ exe, 'doctor', '--json' }, root, DOCTOR_TIMEOUT_MS)
  if code == -1 then
    return health.error(string.format('`pitcrew doctor` did not finish within %d s', DOCTOR_TIMEOUT_MS / 1000))
  end
  local ok, report = pcall(vim.json.decode, out)
  if not ok or type(report) ~= 'table' then
    return health.error('`pitcrew doctor --json` did not print a report: ' .. vim.trim(err ~= '' and err or out))
  end
  for _, source in ipairs(report.sources or {}) do
    local text = string.format('%s: %s (%s)', source.kind, source.location, source.status)
    if source.status == 'loaded' then
      health.ok(text)
    elseif source.status == 'invalid' then
      health.error(text)
    else
      health.info(text)
    end
  end
  for _, model in ipairs(report.models or {}) do
    local key = model.key_env ~= vim.NIL and model.key_env
    health.info(string.format(
      'model %s: %s %s at %s%s',
      model.name,
      model.provider,
      model.model,
      model.base_url ~= vim.NIL and model.base_url or 'the default URL',
      key and string.format(', key from $%s (%s)', key, model.key_set and 'set' or 'NOT set') or ''
    ))
  end
  local roles, missing = {}, {}
  for role, model in pairs(report.roles or {}) do
    if model == vim.NIL or model == nil then
      table.insert(missing, role)
    else
      table.insert(roles, role .. ' → ' .. model)
    end
  end
  table.sort(roles)
  table.sort(missing)
  if #roles > 0 then
    health.info('roles: ' .. table.concat(roles, ', '))
  end
  if #missing > 0 then
    health.warn('no model for: ' .. table.concat(missing, ', '), { 'add [models.default] to pitcrew.toml' })
  end
  -- One line of facts per model that answered; what is wrong comes once, from the report's
  -- problems (errors) and warnings, worded as `pitcrew doctor` words them.
  for _, check in ipairs(report.checks or {}) do
    if check.error == nil or check.error == vim.NIL then
      local window = tostring(check.context_window or '?') .. ' tokens'
      if check.server_window and check.server_window ~= vim.NIL and check.server_window ~= check.context_window then
        window = window .. ' (the server gives ' .. tostring(check.server_window) .. ')'
      end
      local line = string.format(
        'model %s answered in %d ms; tool calls: %s; context window %s; caching %s',
        check.model,
        check.latency_ms or 0,
        check.tool_calls ~= vim.NIL and check.tool_calls or '-',
        window,
        check.caching_reported and 'reported' or 'not reported'
      )
      if check.ok then
        health.ok(line)
      else
        health.info(line)
      end
    end
  end
  for _, warning in ipairs(report.warnings or {}) do
    health.warn(warning)
  end
  for _, problem in ipairs(report.problems or {}) do
    health.error(problem, { 'see `pitcrew doctor` and README.md, "Configure a model"' })
  end
  if report.ok then
    health.ok('configuration and models OK')
  end
end

local function check_clients()
  health.start('pitcrew: clients')
  local any = false
  for root, client in pairs(lsp.all()) do
    any = true
    local buffers = vim.tbl_count(client.attached_buffers or {})
    health.ok(string.format(
      '%s: client %d, %s positions, %d buffer%s',
      root,
      client.id,
      client.offset_encoding or '?',
      buffers,
      buffers == 1 and '' or 's'
    ))
  end
  if not any then
    health.info('no pitcrew client runs (open a file in a git repository)')
  end
end

--- The repositories to check: those with a running client, else the file or the working
--- directory the health check was run from (:checkhealth opens its own buffer first).
local function roots()
  local list = vim.tbl_keys(lsp.all())
  table.sort(list)
  if #list == 0 then
    local alternate = vim.fn.bufnr('#')
    local root = (alternate > 0 and lsp.buffer_root(alternate)) or lsp.find_root(vim.fn.getcwd())
    table.insert(list, root)
  end
  return list
end

function M.check()
  local exe = check_binary()
  if exe then
    local list = roots()
    if #list == 0 then
      health.start('pitcrew: configuration and models')
      health.warn('not in a git repository: open a file of one to check its configuration')
    end
    for _, root in ipairs(list) do
      check_config(exe, root)
    end
  end
  check_clients()
end

return M
