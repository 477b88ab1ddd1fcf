-- The pitcrew language client: one per repository root, started or attached for file
-- buffers; its handlers for pitcrew's notifications; requests that wait for the team.
local compat = require('pitcrew.compat')
local config = require('pitcrew.config')
local plans = require('pitcrew.plans')

local M = {}

-- root -> client id
local clients = {}
-- client id -> functions waiting for the client to be initialized
local waiting = {}

-- How long a request waits for the team to start (the server loads its configuration).
local STARTING_TIMEOUT_MS = 30000

local function notify(message, level)
  vim.notify('pitcrew: ' .. message, level or vim.log.levels.INFO)
end
M.notify = notify

--- The repository root of a path: the nearest directory with `.git` (a directory, or a file
--- in worktrees and submodules).
function M.find_root(path)
  local dir = vim.fn.fnamemodify(path, ':p')
  if vim.fn.isdirectory(dir) == 0 then
    dir = vim.fn.fnamemodify(dir, ':h')
  end
  dir = dir:gsub('/+$', '')
  if dir == '' then
    dir = '/'
  end
  while true do
    if compat.uv.fs_stat(dir .. '/.git') then
      return dir
    end
    local parent = vim.fn.fnamemodify(dir, ':h')
    if parent == dir then
      return nil
    end
    dir = parent
  end
end

--- The root of a file buffer, or nil (no file, a special buffer, not in a repository).
function M.buffer_root(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' or name:match('^%a[%w+.-]*://') then
    return nil
  end
  return M.find_root(name)
end

--- The root a command in `bufnr` is about: the plan view's, the file's, or the working
--- directory's.
function M.root_for(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local ok, root = pcall(vim.api.nvim_buf_get_var, bufnr, 'pitcrew_root')
  if ok and type(root) == 'string' then
    return root
  end
  return M.buffer_root(bufnr) or M.find_root(vim.fn.getcwd())
end

function M.get(root)
  local id = root and clients[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if client and not compat.is_stopped(client) then
    return client
  end
end

--- Every running pitcrew client, by root.
function M.all()
  local all = {}
  for root in pairs(clients) do
    local client = M.get(root)
    if client then
      all[root] = client
    end
  end
  return all
end

--- The loaded buffer of a file, if any.
local function loaded_buffer(fname)
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.api.nvim_buf_get_name(bufnr) == fname then
      return bufnr
    end
  end
end

--- Rewrites the edits of `bufnr` that start past its last line (an insertion at the end of a
--- text that ends with a newline) as insertions at the end of the last line: Neovim 0.10 and
--- later add those lines with their trailing newline as one more, empty line.
local function edits_at_end(bufnr, edits, encoding)
  local count = vim.api.nvim_buf_line_count(bufnr)
  local last = vim.api.nvim_buf_get_lines(bufnr, count - 1, count, false)[1] or ''
  local finish = { line = count - 1, character = compat.utf_index(last, #last, encoding) }
  for _, edit in ipairs(edits or {}) do
    local range = edit.range
    if range and range.start.line >= count and type(edit.newText) == 'string' then
      edit.range = { start = finish, ['end'] = finish }
      edit.newText = '\n' .. (edit.newText:gsub('\r?\n$', ''))
    end
  end
end

-- workspace/applyEdit: Neovim's handler applies the edit, but skips a versioned edit whose
-- buffer has changed since and still answers `applied: true`. Refuse such an edit instead,
-- so the server computes it again against the new text (it has the change: didChange goes
-- out before this answer).
local function apply_edit(err, params, ctx, handler_config)
  local edit = params and params.edit or {}
  for _, change in ipairs(edit.documentChanges or {}) do
    local document = change.textDocument
    if document and type(document.version) == 'number' then
      local bufnr = loaded_buffer(vim.uri_to_fname(document.uri))
      local version = bufnr and vim.lsp.util.buf_versions[bufnr]
      if version and version ~= document.version then
        return {
          applied = false,
          failureReason = string.format(
            '%s changed (version %d, the edit is for %d)',
            vim.uri_to_fname(document.uri),
            version,
            document.version
          ),
        }
      end
    end
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  local function fix(uri, edits)
    local bufnr = vim.uri_to_bufnr(uri)
    vim.fn.bufload(bufnr)
    edits_at_end(bufnr, edits, encoding)
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.textDocument and change.edits then
      fix(change.textDocument.uri, change.edits)
    end
  end
  for uri, edits in pairs(edit.changes or {}) do
    fix(uri, edits)
  end
  return vim.lsp.handlers['workspace/applyEdit'](err, params, ctx, handler_config)
end

-- window/showMessageRequest: the team's questions, when the user asked for them as prompts
-- (`capabilities = { experimental = { pitcrew = { questions = 'prompt' } } }`). Neovim's
-- handler asks with inputlist (or vim.ui.select), which waits for keys no headless Neovim
-- gets; there, leave the question in the plan, where the plan view answers it.
local function show_message_request(err, params, ctx, handler_config)
  if #vim.api.nvim_list_uis() == 0 then
    return vim.NIL
  end
  return vim.lsp.handlers['window/showMessageRequest'](err, params, ctx, handler_config)
end

-- window/showDocument, for Neovim versions without a handler (0.7 advertises the capability
-- but has none): the server opens PLAN.md and diffs with it.
local function show_document(_, params, ctx)
  if params.external then
    return { success = false }
  end
  local bufnr = vim.fn.bufadd(vim.uri_to_fname(params.uri))
  vim.fn.bufload(bufnr)
  vim.bo[bufnr].buflisted = true
  -- In the current window; in a split when the buffer there cannot be left (modified, and
  -- neither 'hidden' nor 'bufhidden' lets it hide).
  if not pcall(vim.api.nvim_win_set_buf, 0, bufnr) then
    vim.cmd('split')
    vim.api.nvim_win_set_buf(0, bufnr)
  end
  if params.selection then
    local start = params.selection.start
    local line = vim.api.nvim_buf_get_lines(bufnr, start.line, start.line + 1, false)[1] or ''
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    local encoding = client and client.offset_encoding or 'utf-16'
    pcall(vim.api.nvim_win_set_cursor, 0, { start.line + 1, compat.byte_index(line, start.character, encoding) })
  end
  return { success = true }
end

local function handlers(root)
  local h = {
    ['pitcrew/planChanged'] = function(_, params)
      if params and params.plan then
        plans.update(root, params.plan)
      end
    end,
    ['workspace/applyEdit'] = apply_edit,
    ['window/showMessageRequest'] = show_message_request,
  }
  if not vim.lsp.handlers['window/showDocument'] then
    h['window/showDocument'] = show_document
  end
  return h
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  -- Neovim applies documentChanges (versioned edits, file creation) on every version, but
  -- 0.7 does not say so.
  caps.workspace = caps.workspace or {}
  caps.workspace.workspaceEdit = caps.workspace.workspaceEdit or {}
  caps.workspace.workspaceEdit.documentChanges = true
  -- The team's questions and the end of plans come in plan snapshots; the plugin tells them
  -- (plans.lua) with the commands that act on them, so the server sends no message of its
  -- own. No prompt takes the keyboard.
  caps.experimental = { pitcrew = { plugin = true } }
  if config.options.capabilities then
    caps = vim.tbl_deep_extend('force', caps, config.options.capabilities)
  end
  return caps
end

local function initialized(client)
  return client and client.initialized and not compat.is_stopped(client)
end

local function client_config(root)
  local options = config.options
  return {
    name = 'pitcrew',
    cmd = options.cmd,
    cmd_cwd = root,
    cmd_env = options.cmd_env,
    root_dir = root,
    capabilities = capabilities(),
    handlers = handlers(root),
    flags = { debounce_text_changes = options.debounce_text_changes },
    on_init = function(client)
      vim.schedule(function()
        -- The files of this root loaded before the client started.
        for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
          if
            vim.api.nvim_buf_is_loaded(bufnr)
            and M.buffer_root(bufnr) == root
            and M.wants(bufnr)
            and not vim.lsp.buf_is_attached(bufnr, client.id)
          then
            vim.lsp.buf_attach_client(bufnr, client.id)
          end
        end
        local queue = waiting[client.id] or {}
        waiting[client.id] = nil
        for _, fn in ipairs(queue) do
          fn(client)
        end
        M.refresh_plans(client, root)
      end)
    end,
    on_attach = options.on_attach,
    on_exit = function(code, signal, client_id)
      vim.schedule(function()
        if clients[root] == client_id then
          clients[root] = nil
        end
        local queue = waiting[client_id]
        waiting[client_id] = nil
        if code ~= 0 or queue then
          notify(
            string.format(
              'the server for %s exited (code %d, signal %d); see :LspLog and :checkhealth pitcrew',
              root,
              code or -1,
              signal or 0
            ),
            vim.log.levels.ERROR
          )
        end
      end)
    end,
  }
end

--- Starts or attaches the client of `bufnr`'s repository; returns the client id, or nil
--- and why not.
function M.attach(bufnr)
  local root = M.buffer_root(bufnr)
  if not root then
    return nil, 'not a file in a git repository'
  end
  if vim.fn.executable(config.options.cmd[1]) == 0 then
    return nil, string.format('cannot run %q (set `cmd` in setup(); see :checkhealth pitcrew)', config.options.cmd[1])
  end
  local existing = M.get(root)
  local id = compat.start_client(client_config(root), bufnr, existing and existing.id)
  if id then
    clients[root] = id
  end
  return id
end

--- Whether the options let the client attach `bufnr` on its own.
function M.wants(bufnr)
  local options = config.options
  if not options.autostart or not M.buffer_root(bufnr) then
    return false
  end
  return options.filetypes == nil or vim.tbl_contains(options.filetypes, vim.bo[bufnr].filetype)
end

--- Calls `fn(client, root)` once the client for `bufnr` (or its root) is initialized,
--- starting it if needed.
function M.with_client(bufnr, fn)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local root = M.root_for(bufnr)
  if not root then
    notify('this buffer is not in a git repository, and neither is the working directory', vim.log.levels.ERROR)
    return
  end
  local client = M.get(root)
  if not client then
    if M.buffer_root(bufnr) ~= root then
      notify('no pitcrew server runs for ' .. root .. '; open a file of it first', vim.log.levels.ERROR)
      return
    end
    local id, why = M.attach(bufnr)
    if not id then
      notify(why, vim.log.levels.ERROR)
      return
    end
    client = vim.lsp.get_client_by_id(id)
  end
  -- A file of this root the client has not opened (another filetype than `filetypes`,
  -- `autostart` off, loaded before the client started): open it now, so the server works
  -- on the buffer's text (unsaved changes included), not on the file on disk. For an
  -- initialized client, didOpen goes out here, before the request; otherwise on initialize.
  if M.buffer_root(bufnr) == root and not vim.lsp.buf_is_attached(bufnr, client.id) then
    vim.lsp.buf_attach_client(bufnr, client.id)
  end
  if initialized(client) then
    fn(client, root)
  else
    waiting[client.id] = waiting[client.id] or {}
    table.insert(waiting[client.id], function(c)
      fn(c, root)
    end)
  end
end

--- Sends a request; while the team is still starting, asks again (up to 30 s).
function M.request(client, method, params, callback, bufnr)
  local deadline = compat.uv.now() + STARTING_TIMEOUT_MS
  local function send()
    local ok = compat.request(client, method, params, function(err, result, ctx)
      if err and tostring(err.message):find('still starting', 1, true) and compat.uv.now() < deadline then
        vim.defer_fn(send, 100)
        return
      end
      callback(err, result, ctx)
    end, bufnr)
    if not ok then
      callback({ message = 'the server is not running' }, nil, {})
    end
  end
  send()
end

--- Runs a `pitcrew.*` command with one argument object; `callback(result)` on success, a
--- message on failure.
function M.execute(client, command, arguments, callback, bufnr)
  M.request(client, 'workspace/executeCommand', { command = command, arguments = { arguments } }, function(err, result)
    if err then
      notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
      return
    end
    if callback then
      callback(result)
    end
  end, bufnr)
end

--- Asks the server for every plan of `root` and records them.
function M.refresh_plans(client, root, callback)
  M.request(client, 'pitcrew/plans', vim.NIL, function(err, result)
    if err then
      if callback then
        notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
      end
      return
    end
    plans.replace(root, result and result.plans or {})
    if callback then
      callback()
    end
  end)
end

return M
