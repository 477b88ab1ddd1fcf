// A new user's first minutes in VS Code (code-server, in headless Chromium through
// playwright-core): a git repository without pitcrew.toml (the model comes from the user's
// ~/.config/pitcrew/config.toml) opened in a window that asks whether to trust its authors.
// Before trusting, pitcrew's commands are there and say they wait for trust; after clicking
// "Yes, I trust the authors" the server starts and the editor's pitcrew menu delegates a
// selection, without reloading the window. Run by tests/tests/editor_vscode.rs; exits 0 when
// everything was seen.

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';

import { env, gestures } from './ui.mjs';

const url = env('VSCODE_URL');
const workspace = env('WORKSPACE');
const artifacts = env('ARTIFACTS');
const instruction = env('INSTRUCTION');
const { chromium } = createRequire(join(env('PLAYWRIGHT_CORE'), 'package.json'))('playwright-core');

const started = Date.now();
const step = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1360, height: 820 } });
page.setDefaultTimeout(20_000);

const { runCommand, chooseFromMenu } = gestures(page);

try {
  await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor();
  step('workbench loaded');

  // VS Code asks whether to trust the folder: not yet.
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor();
  step(`asked: ${(await dialog.locator('.dialog-message-text').textContent()).trim()}`);
  await dialog.locator('.monaco-button', { hasText: /^No, I don't trust the authors$/ }).click();
  await dialog.waitFor({ state: 'hidden' });
  step('restricted mode');

  // Open src/lib.rs.
  await page.keyboard.press('Control+P');
  await page.locator('.quick-input-widget input').fill('src/lib.rs');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'lib.rs' }).first().waitFor();
  await page.keyboard.press('Enter');
  const editor = page.locator('.editor-instance .monaco-editor[data-uri$="src/lib.rs"]').first();
  await editor.waitFor();
  step('opened src/lib.rs');

  // Restricted: the command is there, and says what it waits for.
  await runCommand('pitcrew: Delegate Selection…');
  const waiting = page.locator('.notification-toast', { hasText: 'pitcrew starts once you trust this workspace' });
  await waiting.waitFor();
  step('in restricted mode, Delegate Selection… says it waits for trust');
  await waiting.locator('.monaco-button', { hasText: 'Manage Workspace Trust' }).waitFor();

  // Trust the folder, from the command palette as a user would after reading that.
  await runCommand('Workspaces: Manage Workspace Trust');
  const trustButton = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust$/ }).first();
  await trustButton.waitFor();
  await trustButton.click();
  step('trusted the folder');
  // Back to the file (the trust editor took the tab).
  await page.keyboard.press('Control+W');
  await editor.waitFor();

  // The server starts without a reload: the status bar shows it.
  const status = page.locator('[id="pitcrew.pitcrew.pitcrew.status"]');
  await status.locator('.codicon-organization').waitFor();
  step(`status bar: ${(await status.textContent()).trim()}`);

  // Select src/lib.rs and delegate from the editor's pitcrew menu.
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+A');
  await editor.locator('.view-lines').click({ button: 'right' });
  await page.getByRole('menuitem', { name: 'pitcrew', exact: true }).hover();
  await chooseFromMenu('Delegate Selection…');
  step('the editor menu has pitcrew › Delegate Selection…');
  // Typing the instruction and pressing Enter delegates with it.
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(instruction);
  // The picker offers what was typed as the instruction.
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'delegate with this instruction' }).waitFor();
  await page.keyboard.press('Enter');
  step(`typed "${instruction}" and pressed Enter`);

  await status.click();
  const view = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Plans' }) });
  const taskRow = view.locator('.monaco-list-row[aria-level="2"]', { hasText: instruction });
  await taskRow.filter({ hasText: 'ready' }).waitFor();
  step(`task ready: ${(await taskRow.textContent()).trim()}`);
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  const failure = join(artifacts, 'vscode-trust-failure.png');
  await page.screenshot({ path: failure }).catch(() => {});
  console.error(`FAILED: ${err.stack ?? err}`);
  const toasts = await page.locator('.notifications-toasts').textContent().catch(() => '');
  if (toasts) {
    console.error(`notifications: ${toasts}`);
  }
  console.error(`screenshot: ${failure}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
