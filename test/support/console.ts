/**
 * The operations console's tests: a test archive with some corpus files, Atrium's HTTP server, headless
 * Chromium at 1280x800, pages signed in as a given role, and screenshots kept as test artifacts in
 * .test-work/artifacts/ui (ATRIUM_TEST_ARTIFACTS overrides): docs/ui.md shows them.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { authHeaders } from './archive.ts';
import { startBrowserFixture, type BrowserFixtureOptions } from './browser.ts';

export const ARTIFACTS = process.env.ATRIUM_TEST_ARTIFACTS ?? new URL('../../.test-work/artifacts/ui/', import.meta.url).pathname;

export interface ConsolePage {
  page: Page;
  /** Uncaught errors of the page's scripts: a test ends by asserting there were none. */
  errors: string[];
  /** Saves a screenshot as `<name>.png` among the artifacts. */
  shot(name: string): Promise<void>;
}

/** `options.dicom`: Atrium talks DICOM to peers too (echo, sends and retrieves run): see startBrowserFixture. */
export async function startConsoleFixture(corpusFiles: string[] = [], options: BrowserFixtureOptions = {}) {
  const fixture = await startBrowserFixture(corpusFiles, options);
  mkdirSync(ARTIFACTS, { recursive: true });
  const wrap = (page: Page): ConsolePage => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    return { page, errors, shot: async (name) => { await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }); } };
  };
  let users = 0;
  return {
    ...fixture,
    /** A page authenticated by the test administrator's API key. */
    async asAdministrator(viewport = { width: 1280, height: 800 }): Promise<ConsolePage> {
      const context = await fixture.browser.newContext({ extraHTTPHeaders: authHeaders(), viewport });
      return wrap(await context.newPage());
    },
    /** A page signed in through the sign-in form as a new user with `roles`. */
    async as(roles: string[], viewport = { width: 1280, height: 800 }): Promise<ConsolePage> {
      const username = `${roles.join('-') || 'norole'}-${++users}`;
      const password = 'correct horse battery staple';
      const res = await fetch(`${fixture.base}/api/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password, roles }) });
      assert.equal(res.status, 201, await res.text());
      const context = await fixture.browser.newContext({ viewport });
      const page = await context.newPage();
      await page.goto(`${fixture.base}/login?next=/admin`);
      const form = page.locator('form#login');
      await form.getByLabel('User name').fill(username);
      await form.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      // The path, not the whole URL: /login?next=/admin matches /\/admin/ before the sign-in is done, and a
      // page.goto then would race the login request and land, without a session, on the sign-in page.
      await page.waitForURL((url) => url.pathname.startsWith('/admin'));
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      return wrap(page);
    },
  };
}

/**
 * Checks the page as it is now with axe-core (WCAG 2.1 A and AA rules: labels, names, contrast, ARIA)
 * and fails naming each violation and the elements concerned. Evaluated through the DevTools protocol,
 * so the page's strict CSP stays on.
 */
export async function assertAccessible(page: Page, what: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const { createRequire } = await import('node:module');
  const source = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const violations = await page.evaluate(async (axeSource) => {
    (0, eval)(axeSource);
    const axe = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: { id: string; help: string; nodes: { target: unknown[] }[] }[] }> } }).axe;
    const result = await axe.run((globalThis as unknown as { document: unknown }).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join('; ')}`);
  }, source);
  assert.deepEqual(violations, [], `accessibility of ${what}`);
}
