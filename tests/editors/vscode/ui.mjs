// What the VS Code drivers (drive.mjs, trust.mjs) share: their environment, and the palette
// and context-menu gestures of a user, on a playwright-core page.

/** The environment variable `name`, which must be set. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
};

/** The gestures on `page`. */
export function gestures(page) {
  /** Runs a command from the palette by its title, as a user types it. */
  async function runCommand(title) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
    await page.keyboard.press('Enter');
  }

  /** Chooses an item of the open context menu (which can ignore a click as it opens). */
  async function chooseFromMenu(name) {
    const item = page.getByRole('menuitem', { name, exact: true });
    await item.waitFor();
    const deadline = Date.now() + 10_000;
    while (await item.isVisible()) {
      if (Date.now() > deadline) {
        throw new Error(`the context menu ignored clicks on ${name}`);
      }
      await item.click().catch(() => {});
      await item.waitFor({ state: 'hidden', timeout: 1000 }).catch(() => {});
    }
  }

  return { runCommand, chooseFromMenu };
}
