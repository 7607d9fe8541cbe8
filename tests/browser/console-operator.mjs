// The console in headless Chromium, driven as an operator would: a wrong
// token shows its error; the right one signs in; the pending approvals
// show the upgrade's permission diff; approving makes the new version
// active on the plugin's page; the audit search finds the approval; the
// navigation collapses at a phone's width; signing out returns to the
// sign-in. Every step asserts what the page shows; the Rust side
// (host/cli/tests/console_browser.rs) then checks the API.
//
// Environment: TESSERA_URL, OPERATOR_TOKEN, PLUGIN (the plugin with a
// pending upgrade), FROM_VERSION, TO_VERSION, ADDED (JSON: {"traits":
// [...], "pii": [...]}, what the upgrade adds), CHROMIUM (default
// /usr/bin/chromium), optionally SCREENSHOT_DIR. Prints one JSON line:
// {"approved": "<version>"}.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.TESSERA_URL;
const token = process.env.OPERATOR_TOKEN;
const plugin = process.env.PLUGIN;
const fromVersion = process.env.FROM_VERSION;
const toVersion = process.env.TO_VERSION;
const added = JSON.parse(process.env.ADDED || '{}');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.SCREENSHOT_DIR;

for (const [name, value] of Object.entries({
  TESSERA_URL: url,
  OPERATOR_TOKEN: token,
  PLUGIN: plugin,
  FROM_VERSION: fromVersion,
  TO_VERSION: toVersion,
})) {
  if (!value) throw new Error(`${name} is not set`);
}

function check(condition, what) {
  if (!condition) throw new Error('the page is wrong: ' + what);
}

const profile = mkdtempSync(join(tmpdir(), 'tessera-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  locale: 'en-US',
  viewport: { width: 1280, height: 900 },
  timeout: 60_000,
});
context.setDefaultTimeout(20_000);
const problems = [];
try {
  const page = await context.newPage();
  // Script errors and CSP violations (reported as console errors) fail the test.
  page.on('pageerror', (error) => problems.push(String(error)));
  // Before signing in, the page's look for a session and the wrong token
  // are answered 401, which Chromium logs; those are expected.
  let signedIn = false;
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (!signedIn && message.text().includes('status of 401')) return;
    problems.push(message.text());
  });
  // The page confirms approvals with the browser's dialog: accept it, and
  // remember what it asked.
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.accept();
  });
  const picture = async (name) => {
    if (screenshots) await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };
  const heading = (name) => page.getByRole('heading', { level: 2, name });
  const focusedText = () => page.evaluate(() => (document.activeElement ? document.activeElement.textContent : ''));

  await page.goto(`${url}/console`);
  check(page.url().endsWith('/console/'), `redirected to /console/: ${page.url()}`);
  await heading('Sign in to the console').waitFor();
  const field = page.getByLabel('API token');
  check((await field.getAttribute('autocomplete')) === 'off', 'the token field is not remembered');

  // A wrong token: the error says so, and nothing is signed in.
  await field.fill('tsk_not_a_real_token');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const alert = page.locator('#alert');
  await alert.waitFor({ state: 'visible' });
  const refused = await alert.innerText();
  check(/not a Tessera API token/.test(refused), `the error names the problem: ${refused}`);
  check(await page.locator('#nav').isHidden(), 'no navigation before signing in');
  await picture('wrong-token');

  // The right one.
  await field.fill(token);
  signedIn = true;
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await heading('Welcome').waitFor();
  check(await alert.isHidden(), 'the earlier error is gone');
  check((await field.inputValue()) === '', 'the token is not kept on the page');
  const who = await page.locator('#who').innerText();
  check(who.includes('acme') && who.includes('operator'), `the header names tenant and role: ${who}`);
  const nav = await page.locator('#nav-list').innerText();
  for (const entry of ['Tenant', 'API tokens', 'Plugins', 'Pending approvals', 'Quarantine', 'Audit trail', 'Deletion requests']) {
    check(nav.includes(entry), `the navigation has ${entry}: ${nav}`);
  }

  // The pending upgrade with its diff.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Pending approvals', exact: true }).click();
  await heading('Pending approvals').waitFor();
  check((await focusedText()).includes('Pending approvals'), 'focus moved to the page heading');
  const card = page.locator(`article[data-plugin="${plugin}"]`);
  await card.waitFor();
  const title = await card.locator('h3').innerText();
  check(title.includes(fromVersion) && title.includes(toVersion), `the card names both versions: ${title}`);
  for (const [category, items] of Object.entries(added)) {
    for (const item of items) {
      const row = card.locator(`ul[data-permission="${category}"] li[data-change="added"]`, { hasText: item });
      check((await row.count()) === 1, `${category} ${item} is marked added`);
      check((await row.innerText()).includes('+ Added'), `the mark is in words, not colour alone`);
    }
  }
  const unchanged = card.locator('li[data-change="same"]');
  check((await unchanged.count()) > 0, 'what stays the same is listed too');
  check((await unchanged.first().innerText()).includes('= Unchanged'), 'unchanged items are marked');
  await picture('approvals');

  await card.getByRole('button', { name: `Approve ${plugin} ${toVersion}` }).click();
  await page.locator('#notice', { hasText: `${plugin} ${toVersion} approved` }).waitFor();
  check(dialogs.some((d) => d.includes(toVersion)), 'the approval was confirmed first');
  await page.getByText('Nothing is waiting for approval.').waitFor();

  // The plugin's page shows the new version active, with the new grant.
  await page.goto(`${url}/console/#/plugins/${encodeURIComponent(plugin)}`);
  await heading(`Plugin ${plugin}`).waitFor();
  const details = await page.locator('#page').innerText();
  check(details.includes(toVersion), `the plugin page shows ${toVersion}`);
  check(/Active/.test(details), 'the plugin is active');
  for (const items of Object.values(added)) {
    for (const item of items) check(details.includes(item), `the grant shows ${item}`);
  }
  const versions = page.locator('table').last();
  const running = versions.locator('tr', { hasText: 'Running' });
  check((await running.innerText()).includes(toVersion), `the running version is ${toVersion}`);
  await picture('plugin');

  // The approval in the audit search.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Audit trail', exact: true }).click();
  await heading('Audit trail').waitFor();
  await page.getByLabel('Action', { exact: true }).fill('plugin.approve');
  await page.getByRole('button', { name: 'Search' }).click();
  const results = page.locator('#audit-results');
  await results.locator('tbody tr', { hasText: toVersion }).first().waitFor();
  const rows = await results.locator('tbody tr').allInnerTexts();
  check(rows.every((r) => r.includes('plugin.approve')), `only approvals are listed: ${rows}`);
  check(rows.some((r) => r.includes(plugin) && r.includes(toVersion)), `the approval of ${toVersion}: ${rows}`);
  await picture('audit');

  // A phone's width: the navigation collapses behind the menu button.
  await page.setViewportSize({ width: 390, height: 844 });
  const menu = page.getByRole('button', { name: 'Menu' });
  check(await menu.isVisible(), 'a menu button on a phone');
  check(!(await page.locator('#nav').isVisible()), 'the navigation is collapsed');
  await menu.click();
  check((await menu.getAttribute('aria-expanded')) === 'true', 'the menu says it is open');
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Deletion requests', exact: true }).click();
  await heading('Deletion requests').waitFor();
  check(!(await page.locator('#nav').isVisible()), 'the navigation closes after choosing');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await picture('deletions-phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  // An overdue request stands out, in words as well as colour. The server
  // cannot be made to miss a deadline in a test, so the page is given the
  // list as the API would answer it, with one request past its deadline.
  const now = Date.now();
  const day = 24 * 60 * 60 * 1000;
  const request = (id, requested, deadline) => ({
    id, tenant: 'acme', subject: 's-' + id, subjects: ['s-' + id], requested_at_ms: requested,
    deadline_ms: deadline, keys_destroyed_at_ms: null, status: 'pending', reason: 'subject_request',
    actor: { role: 'subject', id: 'subject-token:x' }, identities_suppressed: 0, identities_unlinked: 0, receipt: null,
  });
  await page.route('**/v1/deletions?*', (route) =>
    route.fulfill({
      json: { deletions: [request('late0001', now - 40 * day, now - 10 * day), request('soon0002', now - day, now + 29 * day)], next: null },
    }),
  );
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Tenant', exact: true }).click();
  await heading(/^Tenant/).waitFor();
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Deletion requests', exact: true }).click();
  const late = page.locator('#deletion-results tr.overdue');
  await late.waitFor();
  check((await late.count()) === 1, 'one request is marked overdue');
  const lateText = await late.innerText();
  check(lateText.includes('late0001') && lateText.includes('Overdue') && /10 days/.test(lateText), `the overdue row: ${lateText}`);
  const soon = await page.locator('#deletion-results tr', { hasText: 'soon0002' }).innerText();
  check(!soon.includes('Overdue') && /Due in 29 days/.test(soon), `the request still in time: ${soon}`);
  check((await page.locator('#page').innerText()).includes('1 request is overdue.'), 'the count of overdue requests');
  await picture('deletions-overdue');
  await page.unroute('**/v1/deletions?*');

  // Chinese, then signing out.
  await page.getByLabel('Language').selectOption('zh-CN');
  await page.getByRole('heading', { level: 2, name: '删除请求' }).waitFor();
  await page.getByLabel('语言').selectOption('en');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in to the console').waitFor();
  await page.locator('#notice', { hasText: 'You are signed out.' }).waitFor();
  // The old session is gone: a reload does not sign back in.
  signedIn = false;
  await page.reload();
  await heading('Sign in to the console').waitFor();

  check(problems.length === 0, 'script errors or blocked content:\n' + problems.join('\n'));
  console.log(JSON.stringify({ approved: toVersion }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
