-- pitcrew for Neovim: a team of coding agents behind the editor, through the `pitcrew lsp`
-- language server. See :help pitcrew.
local actions = require('pitcrew.actions')
local config = require('pitcrew.config')
local lsp = require('pitcrew.lsp')
local plans = require('pitcrew.plans')

local M = {}

local function maybe_attach(bufnr)
  if lsp.wants(bufnr) then
    local _, why = lsp.attach(bufnr)
    if why and not M._warned then
      M._warned = true
      lsp.notify(why, vim.log.levels.WARN)
    end
  end
end

--- Configures pitcrew (options: :help pitcrew-options; `vim.g.pitcrew` gives defaults) and
--- starts the client for file buffers in git repositories. Raises on a bad option.
function M.setup(opts)
  config.set(opts)
  M.configured = true
  require('pitcrew.commands').create()
  local group = vim.api.nvim_create_augroup('pitcrew', { clear = true })
  -- Progress by default: each agent's step, echoed without filling :messages.
  if config.options.progress and vim.fn.exists('##LspProgress') == 1 then
    vim.api.nvim_create_autocmd('LspProgress', {
      group = group,
      callback = function(args)
        local data = args.data or {}
        local client = vim.lsp.get_client_by_id(data.client_id)
        local value = data.params and data.params.value
        if not client or client.name ~= 'pitcrew' or type(value) ~= 'table' then
          return
        end
        -- Only `begin` carries the title: keep it for the reports that follow.
        local token = tostring(data.params.token)
        M._titles = M._titles or {}
        if value.title then
          M._titles[token] = value.title
        end
        local text = M._titles[token] or ''
        if value.kind == 'end' then
          M._titles[token] = nil
        end
        if not text:find('^pitcrew') then
          text = 'pitcrew: ' .. text
        end
        if value.message and value.message ~= '' then
          text = text .. ': ' .. value.message
        end
        if value.kind == 'end' then
          text = text .. ' (done)'
        end
        M.last_progress = text
        -- While the team waits on a question, its notification stays in view.
        for _, root in ipairs(plans.roots()) do
          if plans.has_question(root) then
            return
          end
        end
        -- One line that fits: a longer one would stop at a hit-enter prompt.
        vim.api.nvim_echo({ { plans.fit(text) } }, false, {})
      end,
      desc = "pitcrew: show the agents' progress",
    })
  end
  if config.options.autostart then
    vim.api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile', 'FileType' }, {
      group = group,
      callback = function(args)
        maybe_attach(args.buf)
      end,
      desc = 'pitcrew: start or attach the language client',
    })
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) then
        maybe_attach(bufnr)
      end
    end
  end
end

M.delegate = actions.delegate
M.review = actions.review
M.plan = actions.plan
M.diff = actions.diff

--- Applies a plan or task (`id`), or the most recent one that is ready.
function M.apply(id)
  actions.act('apply', id)
end

function M.discard(id)
  actions.act('discard', id)
end

function M.cancel(id)
  actions.act('cancel', id)
end

function M.retry(id)
  actions.act('retry', id)
end

--- Opens the plan view of the current buffer's repository.
function M.open_plan_view()
  local bufnr = vim.api.nvim_get_current_buf()
  local root = lsp.root_for(bufnr)
  if not root then
    return lsp.notify('this buffer is not in a git repository, and neither is the working directory', vim.log.levels.ERROR)
  end
  local view = require('pitcrew.view').open(root)
  lsp.with_client(bufnr, function(client)
    lsp.refresh_plans(client, root)
  end)
  return view
end

--- The pitcrew client of a buffer's repository, if it runs.
function M.get_client(bufnr)
  return lsp.get(lsp.root_for(bufnr or vim.api.nvim_get_current_buf()))
end

--- A short summary for a statusline: "pitcrew: 2 running, 1 ready", or "".
function M.status(bufnr)
  local root = lsp.root_for(bufnr or vim.api.nvim_get_current_buf())
  if not root then
    return ''
  end
  local running, ready, asking = 0, 0, 0
  for _, plan in ipairs(plans.list(root)) do
    if plans.is_unfinished(plan) then
      running = running + 1
    elseif plan.status == 'ready' then
      ready = ready + 1
    end
    if plan.question and plan.question ~= vim.NIL then
      asking = asking + 1
    end
  end
  local parts = {}
  if running > 0 then
    table.insert(parts, running .. ' running')
  end
  if ready > 0 then
    table.insert(parts, ready .. ' ready')
  end
  if asking > 0 then
    table.insert(parts, asking .. ' asking')
  end
  return #parts > 0 and ('pitcrew: ' .. table.concat(parts, ', ')) or ''
end

return M
