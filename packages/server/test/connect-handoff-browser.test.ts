// The connect result page's hand-off in a real browser (docs/connect.md, "The hand-off"): a popup
// posts its result to the opener, addressed to the partner's origin, and waits before it goes on to
// the redirect URL, so the opener gets the message with the popup as its source even when it does
// not close the popup; without an opener the page goes on at once. The page is served as the
// connect route renders it, from a partner origin and an Edgegate origin on two ports.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAND_OVER_DELAY_MS, resultPage } from '../src/views/connect.ts';
import { launchChromium } from './helpers/chromium.ts';

const NONCE = 'bm9uY2Utb2YtdGhlLXRlc3Q=';

async function serve(handler: http.RequestListener): Promise<{ url: string; close(): void }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}

describe('the connect result page in a browser', () => {
  let browser: Browser;
  let partner: Awaited<ReturnType<typeof serve>>;
  let edgegate: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    browser = await launchChromium();
    // The partner: a page that opens the popup and records each message (and whether it came from
    // the popup), and the landing page the popup goes on to. It never closes the popup.
    partner = await serve((request, response) => {
      response.setHeader('content-type', 'text/html; charset=utf-8');
      if (request.url?.startsWith('/landed')) return void response.end('<h1>landed</h1>');
      response.end(`<script>
        window.received = [];
        window.addEventListener('message', function (event) {
          window.received.push({ data: event.data, fromPopup: event.source === window.popup });
        });
        window.openPopup = function (url) { window.popup = window.open(url, 'connect'); };
      </script>`);
    });
    edgegate = await serve((_request, response) => {
      response.setHeader('content-type', 'text/html; charset=utf-8');
      response.setHeader('content-security-policy', `script-src 'nonce-${NONCE}'`);
      response.end(
        resultPage({
          theme: 'light',
          partner: null,
          nonce: NONCE,
          targetOrigin: partner.url,
          message: { type: 'edgegate:connect', code: 'c0de' },
          redirectTo: `${partner.url}/landed?code=c0de`,
          success: true,
        }),
      );
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    partner?.close();
    edgegate?.close();
  });

  // The browser's clock is the test's: paused, a page's timer runs only when the test moves it.
  async function pausedContext(): Promise<BrowserContext> {
    const context = await browser.newContext();
    await context.clock.install({ time: 0 });
    await context.clock.pauseAt(1000);
    return context;
  }
  const resultUrl = () => `${edgegate.url}/connect/egct_handoff/cancel`;

  it('a popup posts its result to the opener and stays until the opener had time to close it', async () => {
    const context = await pausedContext();
    const page = await context.newPage();
    try {
      await page.goto(partner.url);
      const popupOpened = page.waitForEvent('popup');
      await page.evaluate(
        (url) => (window as unknown as { openPopup(u: string): void }).openPopup(url),
        resultUrl(),
      );
      const popup = await popupOpened;
      await expect
        .poll(() => page.evaluate(() => (window as unknown as { received: unknown[] }).received))
        .toEqual([
          {
            data: { type: 'edgegate:connect', code: 'c0de', connect: 'egct_handoff' },
            fromPopup: true,
          },
        ]);
      // Still on the result page until the wait is over: an opener that closes it on the message
      // has it to close.
      await context.clock.runFor(HAND_OVER_DELAY_MS - 100);
      await popup.waitForTimeout(300);
      expect(popup.url()).toBe(resultUrl());
      // Not closed, it goes on to the partner's redirect URL by itself.
      await context.clock.runFor(100);
      await popup.waitForURL(`${partner.url}/landed?code=c0de`, { timeout: 10_000 });
    } finally {
      await context.close();
    }
  });

  it('a page with no opener and no parent goes on to the redirect URL at once', async () => {
    // With the clock paused, only a navigation that waits for no timer can happen.
    const context = await pausedContext();
    const page = await context.newPage();
    try {
      await page.goto(resultUrl());
      await page.waitForURL(`${partner.url}/landed?code=c0de`, { timeout: 10_000 });
    } finally {
      await context.close();
    }
  });
});
