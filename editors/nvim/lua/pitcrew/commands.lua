-- The :Pitcrew* commands.
local M = {}

local function complete_ids(arg_lead)
  local lsp = require('pitcrew.lsp')
  local plans = require('pitcrew.plans')
  local root = lsp.root_for(vim.api.nvim_get_current_buf())
  local matches = {}
  for _, id in ipairs(root and plans.ids(root) or {}) do
    if id:sub(1, #arg_lead) == arg_lead then
      table.insert(matches, id)
    end
  end
  return matches
end

local function complete_task_ids(arg_lead)
  return vim.tbl_filter(function(id)
    return id:find('/', 1, true) ~= nil
  end, complete_ids(arg_lead))
end

function M.create()
  local create = vim.api.nvim_create_user_command
  local actions = require('pitcrew.actions')
  local function with_range(fn)
    return function(args)
      local bufnr = vim.api.nvim_get_current_buf()
      fn(args, bufnr, actions.capture_range(bufnr, args))
    end
  end
  create('PitcrewDelegate', with_range(function(args, bufnr, range)
    actions.delegate({ instruction = args.args, bufnr = bufnr, range = range })
  end), { nargs = '*', range = true, desc = 'pitcrew: delegate the selection (or file) to an implementer' })
  create('PitcrewReview', with_range(function(args, bufnr, range)
    actions.review({ instruction = args.args, bufnr = bufnr, range = range })
  end), { nargs = '*', range = true, desc = 'pitcrew: review the selection (or file)' })
  create('PitcrewPlan', with_range(function(args, bufnr, range)
    actions.plan({ goal = args.args, bufnr = bufnr, range = range })
  end), { nargs = '*', range = true, desc = 'pitcrew: plan a goal with the whole team' })
  create('PitcrewPlanView', function()
    require('pitcrew').open_plan_view()
  end, { nargs = 0, desc = 'pitcrew: show the plans and their tasks' })
  for _, action in ipairs({ 'Apply', 'Discard', 'Cancel', 'Retry' }) do
    create('Pitcrew' .. action, function(args)
      actions.act(action:lower(), args.args)
    end, { nargs = '?', complete = complete_ids, desc = 'pitcrew: ' .. action:lower() .. ' a plan or task' })
  end
  create('PitcrewAnswer', function(args)
    local bufnr = vim.api.nvim_get_current_buf()
    local plan_id = args.args
    if plan_id == '' then
      local root = require('pitcrew.lsp').root_for(bufnr)
      local plan = root and require('pitcrew.plans').latest_question(root)
      if not plan then
        return vim.notify('pitcrew: no question is waiting', vim.log.levels.INFO)
      end
      plan_id = plan.planId
    end
    actions.answer(plan_id, bufnr)
  end, { nargs = '?', complete = complete_ids, desc = "pitcrew: answer the team's question" })
  create('PitcrewDiff', function(args)
    actions.diff(args.args)
  end, { nargs = 1, complete = complete_task_ids, desc = "pitcrew: show a task's diff" })
end

return M
