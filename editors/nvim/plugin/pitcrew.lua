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
if vim.g.pitcrew ~= nil then
  require('pitcrew').setup()
end
