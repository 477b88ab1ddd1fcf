-- pitcrew: the :Pitcrew* commands are always there (they start the client when used);
-- require('pitcrew').setup() (or setting vim.g.pitcrew) starts it for every file in a git
-- repository. See :help pitcrew.
if vim.g.loaded_pitcrew then
  return
end
vim.g.loaded_pitcrew = 1

if vim.fn.has('nvim-0.7') == 0 then
  vim.api.nvim_echo({ { 'pitcrew needs Neovim 0.7 or later', 'ErrorMsg' } }, true, {})
  return
end

require('pitcrew.commands').create()
-- Unless setup() ran already (from init.lua, with its options, which a second setup() would
-- drop).
local pitcrew = package.loaded['pitcrew']
if vim.g.pitcrew ~= nil and not (pitcrew and pitcrew.configured) then
  require('pitcrew').setup()
end
