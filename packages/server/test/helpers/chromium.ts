// Debian's chromium for browser tests, launched with the flags this machine needs.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

/** Launched inside the test, so a machine without chromium fails it instead of skipping it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (\`apt-get install -y chromium\`, or run \`bash .ci/run\`)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Clicks `selector` in a connect popup and waits for the popup to close (the hand-off). When the
 * form comes back instead (a failed connection test answers 4xx/5xx), fails with the page's alert,
 * so a slow or failed test names its cause rather than only timing out.
 */
export async function clickAndAwaitClose(popup: Page, selector: string): Promise<void> {
  // The save tests the connection and writes the store first: on a loaded 2-core machine that can
  // take longer than one browser step's usual 25 s, so the hand-off gets 45 s of the test's 90.
  const closed = popup.waitForEvent('close', { timeout: 45_000 });
  const answered = popup
    .waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest(), {
      timeout: 45_000,
    })
    .catch(() => null);
  await popup.click(selector);
  const response = await Promise.race([closed.then(() => null), answered]);
  if (response !== null && response.status() >= 400) {
    const page = await response.text().catch(() => '');
    const alert = /role="alert"[^>]*>([\s\S]*?)<\/(?:div|p)>/.exec(page)?.[1] ?? page.slice(0, 500);
    const words = alert
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    throw new Error(`the connect page answered ${response.status()} instead of closing: ${words}`);
  }
  await closed.catch(async (error: unknown) => {
    const text = await popup
      .locator('body')
      .innerText({ timeout: 1000 })
      .catch(() => '');
    throw new Error(
      `the popup did not close; it shows ${popup.url()}: ${text.replace(/\s+/g, ' ').slice(0, 300)}`,
      { cause: error },
    );
  });
}
