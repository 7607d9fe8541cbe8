// Pictures of the subject portal's main pages for docs/screenshots/: the
// sign-in, my data, consents, linked apps, retention and the deletion
// receipt, at a desktop's and a phone's width, in English and in Chinese.
// One person per language signs in (the browser's language chooses the
// page's), so that each can be erased to show the receipt.
//
// host/cli/tests/portal_browser.rs runs it into a temporary directory and
// checks every picture (a PNG of the right width, not blank, not too big);
// with TESSERA_UPDATE_SCREENSHOTS=1 that test then copies them over
// docs/screenshots/ (docs/portal.md, Screenshots).
//
// Environment: TESSERA_URL, CODES_FILE (the file sender's codes), OUT_DIR,
// PEOPLE (JSON: {"en": "<email>", "zh-CN": "<email>"}), CHROMIUM (default
// /usr/bin/chromium). Prints one JSON line: {"pictures": [{"file", "width"}]}.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.TESSERA_URL;
const codesFile = process.env.CODES_FILE;
const outDir = process.env.OUT_DIR;
const people = JSON.parse(process.env.PEOPLE || '{}');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Widths in CSS pixels, pictures at one device pixel per CSS pixel.
const WIDTHS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const LANGUAGES = { en: 'en', 'zh-CN': 'zh' };
// A picture taller than this is cut: the top of a long page shows what it is.
const MAX_HEIGHT = 2400;

for (const [name, value] of Object.entries({ TESSERA_URL: url, CODES_FILE: codesFile, OUT_DIR: outDir })) {
  if (!value) throw new Error(`${name} is not set`);
}
for (const lang of Object.keys(LANGUAGES)) {
  if (!people[lang]) throw new Error(`PEOPLE has no email address for ${lang}`);
}

function check(condition, what) {
  if (!condition) throw new Error('the page is wrong: ' + what);
}

/** The newest code sent to `address`, waiting for it (up to 20 s). */
async function codeFor(address, after) {
  for (let i = 0; i < 400; i += 1) {
    let lines = [];
    try {
      lines = readFileSync(codesFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    } catch {
      lines = [];
    }
    const sent = lines.filter((m) => m.to === address && m.at_ms >= after);
    if (sent.length > 0) return sent[sent.length - 1].code;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no code for ${address} in ${codesFile}`);
}

const pictures = [];
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    '--font-render-hinting=none',
  ],
  timeout: 60_000,
});
try {
  for (const [lang, suffix] of Object.entries(LANGUAGES)) {
    const context = await browser.newContext({
      locale: lang,
      viewport: WIDTHS.desktop,
      deviceScaleFactor: 1,
      reducedMotion: 'reduce',
    });
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(String(error)));
    let signedIn = false;
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      if (!signedIn && message.text().includes('status of 401')) return;
      problems.push(message.text());
    });

    // Both widths of what is on the screen now, as `<name>-<width>-<lang>.png`.
    const shoot = async (name) => {
      for (const [kind, size] of Object.entries(WIDTHS)) {
        await page.setViewportSize(size);
        const height = await page.evaluate(() => document.documentElement.scrollHeight);
        const file = `${name}-${kind}-${suffix}.png`;
        await page.screenshot({
          path: join(outDir, file),
          fullPage: true,
          clip: { x: 0, y: 0, width: size.width, height: Math.min(height, MAX_HEIGHT) },
          animations: 'disabled',
          caret: 'hide',
          scale: 'css',
        });
        pictures.push({ file, width: size.width });
      }
      await page.setViewportSize(WIDTHS.desktop);
    };
    const open = async (section) => {
      await page.locator(`nav.tabs a[href="#${section}"]`).click();
      await page.locator(`#${section}`).waitFor({ state: 'visible' });
      // The focus ring on the section opened is for keyboards, not pictures.
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
    };

    await page.goto(`${url}/portal/?tenant=acme`);
    check((await page.locator('html').getAttribute('lang')) === lang, `the page is in ${lang}`);
    await page.locator('#address').fill(people[lang]);
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await shoot('sign-in');
    const asked = Date.now() - 1000;
    await page.locator('#ask-form button[type=submit]').click();
    await page.locator('#code').fill(await codeFor(people[lang], asked));
    await page.locator('#code-form button[type=submit]').click();
    await page.locator('#data').waitFor({ state: 'visible' });
    signedIn = true;
    await page.locator('#traits li').first().waitFor();
    const text = await page.locator('#main').innerText();
    if (suffix === 'zh') check(/[\u4e00-\u9fff]/.test(text), 'the page shows Chinese');
    else check(!/[\u4e00-\u9fff]/.test(text), 'the page shows no Chinese');
    await page.locator('#notice').evaluate((n) => { n.textContent = ''; });
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await shoot('data');

    await open('consents');
    await page.locator('#consent-list [role=switch]').first().waitFor();
    await shoot('consents');
    await open('apps');
    await page.locator('#app-list li').first().waitFor();
    await shoot('apps');
    await open('retention');
    await page.locator('#retention-days').waitFor();
    await shoot('retention');

    await open('delete');
    await page.locator('#delete-confirm').check();
    await page.locator('#delete-form button[type=submit]').click();
    await page.locator('#receipt').waitFor({ timeout: 60_000 });
    await page.locator('#notice').evaluate((n) => { n.textContent = ''; });
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await shoot('receipt');

    check(problems.length === 0, `script errors or blocked content (${lang}):\n` + problems.join('\n'));
    await context.close();
  }
  console.log(JSON.stringify({ pictures }));
} finally {
  await browser.close();
}
