-- What the Neovim test scripts share: their data from PITCREW_TEST_* variables, waiting with
-- a deadline, assertions with readable failures, and the pass/fail exit.
-- Loaded with dofile() by the scripts next to it.
local H = {}

function H.env(name)
  local value = os.getenv(name)
  if value == nil then
    error(name .. ' is not set (run this through tests/tests/editor_nvim.rs)')
  end
  return value
end

function H.log(message)
  io.stderr:write('[nvim test] ' .. message .. '\n')
end

function H.read_file(path)
  local file = assert(io.open(path, 'rb'))
  local text = file:read('*a')
  file:close()
  return text
end

function H.buffer_text(bufnr)
  return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n') .. '\n'
end

function H.check(condition, message)
  if not condition then
    error(message, 2)
  end
end

function H.equal(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    error(string.format('%s:\n--- expected\n%s\n--- actual\n%s', what, vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

--- Waits (processing events) until `condition()` returns a truthy value, and returns it.
function H.wait_for(what, condition, timeout)
  local result
  local ok = vim.wait(timeout or 20000, function()
    result = condition()
    return result ~= nil and result ~= false
  end, 20)
  if not ok then
    error('timed out waiting for ' .. what, 2)
  end
  return result
end

function H.lines_of(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

function H.find_line(lines, ...)
  local needles = { ... }
  for _, line in ipairs(lines) do
    local all = true
    for _, needle in ipairs(needles) do
      if not line:find(needle, 1, true) then
        all = false
      end
    end
    if all then
      return line
    end
  end
end

function H.pitcrew_diagnostics(bufnr)
  return vim.tbl_filter(function(d)
    return d.source == 'pitcrew'
  end, vim.diagnostic.get(bufnr))
end

H.messages = {}
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(H.messages, message)
  H.log('notify: ' .. tostring(message))
  return notify(message, level, opts)
end


--- Runs `test`, then exits Neovim: `qall!` when it passed, `cquit 1` when it raised.
function H.run(test)
  local ok, err = xpcall(test, debug.traceback)
  if ok then
    H.log('PASS')
    vim.cmd('qall!')
  else
    H.log('FAIL: ' .. tostring(err))
    vim.cmd('cquit 1')
  end
end

return H
