// The console in a real browser (Debian's chromium): sign up, create a workspace, invite someone
// with a one-time link, and the invitee joins from a separate browser session.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { launchChromium } from './helpers/chromium.ts';
import { freePort } from './helpers/listening-app.ts';

const PASSWORD = 'correct horse battery staple';

async function newPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.setDefaultNavigationTimeout(15_000);
  return page;
}

async function signUp(page: Page, person: { name: string; email: string }) {
  await page.getByLabel('Name', { exact: true }).fill(person.name);
  await page.getByLabel('Email', { exact: true }).fill(person.email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
}

async function heading(page: Page): Promise<string> {
  return (await page.getByRole('heading', { level: 1 }).textContent())?.trim() ?? '';
}

/** The Role cell of the members-table row that mentions `email`. */
async function memberRole(page: Page, email: string): Promise<string> {
  const members = page.getByRole('region', { name: 'Members' }).getByRole('table');
  const row = members.getByRole('row').filter({ hasText: email });
  await row.waitFor();
  return ((await row.getByRole('cell').nth(1).textContent()) ?? '').trim();
}

describe('the console in a browser', () => {
  let store: Store | undefined;
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;
  let baseUrl = '';
  let screenshots = '';
  let ownScreenshotDir = false;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    app = await buildTestApp(store, { publicUrl: baseUrl });
    await app.listen({ port, host: '127.0.0.1' });
    ownScreenshotDir = !process.env.SCREENSHOT_DIR;
    screenshots = process.env.SCREENSHOT_DIR ?? (await mkdtemp(join(tmpdir(), 'edgegate-shots-')));
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await store?.close();
    if (ownScreenshotDir && screenshots) await rm(screenshots, { recursive: true, force: true });
  });

  it('an admin invites someone with a one-time link and they join the workspace', async () => {
    const ada = { name: 'Ada Admin', email: 'ada@example.com' };
    const bob = { name: 'Bob Member', email: 'bob@example.com' };

    browser = await launchChromium();
    const adminContext = await browser.newContext({ baseURL: baseUrl });
    const admin = await newPage(adminContext);
    await admin.goto('/signup');
    await signUp(admin, ada);
    await admin.waitForURL(/\/w\/[a-z0-9-]+$/);
    expect(await heading(admin)).toBe("Ada Admin's workspace");

    await admin.getByRole('link', { name: 'Workspaces', exact: true }).click();
    await admin.waitForURL(/\/workspaces$/);
    await admin.getByLabel('Workspace name').fill('Acme Analytics');
    await admin.getByRole('button', { name: 'Create workspace' }).click();
    await admin.waitForURL(/\/w\/acme-analytics$/);
    expect(await heading(admin)).toBe('Acme Analytics');

    await admin.getByLabel('Role', { exact: true }).selectOption('member');
    await admin.getByRole('button', { name: 'Create invitation link' }).click();
    const secret = admin.getByTestId('secret');
    const link = ((await secret.textContent()) ?? '').trim();
    expect(new URL(link).origin).toBe(baseUrl);
    expect(new URL(link).pathname).toMatch(/^\/invite\/egi_[\w-]+$/);
    await expect(admin.getByRole('status').textContent()).resolves.toContain(
      'Invitation link for a new member created',
    );

    const inviteeContext = await browser.newContext({ baseURL: baseUrl });
    const invitee = await newPage(inviteeContext);
    await invitee.goto(link);
    expect(await heading(invitee)).toBe('Join Acme Analytics');
    await invitee.getByRole('link', { name: 'create an account' }).click();
    await invitee.waitForURL(/\/signup\?next=/);
    await signUp(invitee, bob);
    await invitee.waitForURL(link);
    await invitee.getByRole('button', { name: 'Accept invitation' }).click();
    await invitee.waitForURL(/\/w\/acme-analytics$/);
    expect(await heading(invitee)).toBe('Acme Analytics');
    expect(await memberRole(invitee, ada.email)).toBe('admin');
    expect(await memberRole(invitee, bob.email)).toBe('member');

    await admin.reload();
    expect(await memberRole(admin, bob.email)).toBe('member');
    const screenshot = join(screenshots, 'workspace.png');
    await admin.screenshot({ path: screenshot, fullPage: true });
    expect((await stat(screenshot)).size).toBeGreaterThan(10_000);

    const reused = await invitee.goto(link);
    expect(reused?.status()).toBe(410);
    await expect(invitee.locator('main').textContent()).resolves.toContain('already been used');

    await inviteeContext.close();
    await adminContext.close();
  }, 60_000);
});
