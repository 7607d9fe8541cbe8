// The subject portal in headless Chromium, driven as a person would: sign
// in with the code from the development file sender, see the data, edit a
// trait, grant then revoke a consent, choose a retention period, download
// the export, switch to Chinese, check the phone width, request deletion
// and wait for the receipt. Every step asserts what the page shows; the
// Rust side (host/cli/tests/portal_browser.rs) then checks the API.
//
// Environment: TESSERA_URL, CODES_FILE, SUBJECT_EMAIL, SUBJECT_FIRST_NAME
// (markup, shown as text), CHROMIUM (default
// /usr/bin/chromium), and optionally SCREENSHOT_DIR (where to save a
// picture of each section, to look at the page). Prints one JSON line:
// {"deletion": "<request id>"}.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.TESSERA_URL;
const codesFile = process.env.CODES_FILE;
const email = process.env.SUBJECT_EMAIL;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.SCREENSHOT_DIR;

function check(condition, what) {
  if (!condition) throw new Error('the page is wrong: ' + what);
}

async function nthCode(n) {
  for (let i = 0; i < 400; i += 1) {
    let lines = [];
    try {
      lines = readFileSync(codesFile, 'utf8').split('\n').filter(Boolean);
    } catch {
      lines = [];
    }
    if (lines.length >= n) return JSON.parse(lines[n - 1]).code;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no code number ${n} in ${codesFile}`);
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
  acceptDownloads: true,
  timeout: 60_000,
});
context.setDefaultTimeout(20_000);
const problems = [];
try {
  const page = await context.newPage();
  // Script errors and CSP violations (reported as console errors) fail the test.
  page.on('pageerror', (error) => problems.push(String(error)));
  // Before signing in, the page's look for a session is answered 401,
  // which Chromium logs; that one is expected.
  let signedIn = false;
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (!signedIn && message.text().includes('status of 401')) return;
    problems.push(message.text());
  });
  const notice = (text) => page.locator('#notice', { hasText: text }).waitFor();
  const picture = async (name) => {
    if (screenshots) await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };

  // Sign in.
  await page.goto(`${url}/portal/?tenant=acme`);
  await page.getByLabel('Email address').fill(email);
  await picture('sign-in');
  await page.getByRole('button', { name: 'Send me a code' }).click();
  const codeField = page.getByLabel('Six-digit code');
  await codeField.waitFor();
  await codeField.fill(await nthCode(1));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'My data', level: 2 }).waitFor();
  await notice('You are signed in until');
  signedIn = true;
  check(!(await page.evaluate(() => document.cookie)).includes('tessera_session'),
    'the session cookie is not readable by scripts');

  // My data.
  const traits = page.locator('#traits');
  check((await traits.innerText()).includes('Porto'), 'the city is shown');
  const purchases = await page.locator('#purchases').innerText();
  check(purchases.includes('42.5') && purchases.includes('EUR'), `the purchase is shown: ${purchases}`);
  // A stored value that is markup stays text: nothing of it runs.
  check((await traits.innerText()).includes(process.env.SUBJECT_FIRST_NAME), 'the markup is shown as text');
  check(await page.evaluate(() => window.pwned === undefined), 'the stored markup did not run');
  const identities = await page.locator('#identities').innerText();
  check(identities.includes(email), `the email is shown: ${identities}`);

  // Edit a trait.
  const city = page.locator('li.trait', { has: page.locator('.name', { hasText: /^City$/ }) });
  await city.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('New value for City').fill('Lyon');
  await page.getByRole('button', { name: 'Save' }).click();
  await notice('Saved.');
  check((await city.innerText()).includes('Lyon'), 'the new city is shown');
  await picture('data');

  // Grant, then revoke a consent.
  await page.getByRole('link', { name: 'Consents', exact: true }).click();
  const analytics = page.getByRole('switch', { name: /Analytics/ });
  check(!(await analytics.isChecked()), 'analytics starts off');
  await analytics.check();
  await notice('You allowed');
  await analytics.uncheck();
  await notice('You withdrew');
  check(!(await analytics.isChecked()), 'analytics is off again');
  const history = await page.locator('#consent-history').innerText();
  check(history.includes('Allowed') && history.includes('Not allowed'), `the history shows both: ${history}`);
  await picture('consents');

  // Retention.
  await page.getByRole('link', { name: 'Retention', exact: true }).click();
  await page.getByLabel('Keep my data for (days)').fill('90');
  await page.getByRole('button', { name: 'Save' }).click();
  await notice('We now keep your data for 90 days.');

  // Export.
  await page.getByRole('link', { name: 'Download', exact: true }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Everything (JSON)' }).click(),
  ]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  check(exported.traits.city[0] === 'Lyon', 'the export holds the new city');

  // Chinese, and back.
  await page.getByRole('combobox', { name: 'Language' }).selectOption('zh-CN');
  await page.getByRole('heading', { name: '下载', level: 2 }).waitFor();
  await picture('download-zh');
  check((await page.locator('html').getAttribute('lang')) === 'zh-CN', 'the page says it is Chinese');
  await page.getByRole('combobox', { name: '语言' }).selectOption('en');
  await page.getByRole('heading', { name: 'Download', level: 2 }).waitFor();

  // A phone's width: nothing wider than the screen.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole('link', { name: 'My data', exact: true }).click();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await picture('data-phone');

  // Delete my data: confirmation, status with deadline, then the receipt.
  await page.getByRole('link', { name: 'Delete my data', exact: true }).click();
  await page.getByRole('button', { name: 'Delete my data', exact: true }).click();
  await page.locator('#alert', { hasText: 'Tick the box' }).waitFor();
  await page.getByLabel('I understand that my data will be erased').check();
  await page.getByRole('button', { name: 'Delete my data', exact: true }).click();
  await page.getByRole('heading', { name: 'Your data is being deleted' }).waitFor();
  // The heading shows at once; the status is filled when the request's
  // record has been fetched.
  const status = page.locator('#erased-status');
  await status.locator('dt', { hasText: 'Deadline' }).waitFor({ timeout: 30_000 });
  check((await status.innerText()).includes('Deadline'), 'the deadline is shown');
  const deletion = (await status.locator('dd').first().innerText()).trim();
  check(/^[0-9a-f]{8,}$/.test(deletion), `a request id: ${deletion}`);
  await page.locator('#receipt').waitFor({ timeout: 60_000 });
  const receipt = await page.locator('#receipt').innerText();
  check(receipt.includes('Digest') && receipt.includes('yes'), `the receipt: ${receipt}`);
  // Once the receipt exists, the heading no longer says "being deleted".
  await page.getByRole('heading', { name: 'Your data has been deleted' }).waitFor();
  await picture('receipt-phone');

  check(problems.length === 0, 'script errors or blocked content:\n' + problems.join('\n'));
  console.log(JSON.stringify({ deletion }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
