// Pictures of the console's main operator pages for
// docs/screenshots/console/: the sign-in, the tenant, API tokens, a plugin,
// pending approvals with the permission diff, the audit trail and deletion
// requests, at a desktop's and a phone's width, in English and in Chinese
// (the browser's language chooses the page's). The same mechanism as the
// portal's screenshots.mjs.
//
// host/cli/tests/console_browser.rs runs it into a temporary directory and
// checks every picture (a PNG of the right width, not blank, not too big);
// with TESSERA_UPDATE_SCREENSHOTS=1 that test then copies them over
// docs/screenshots/console/ (docs/console.md, Screenshots).
//
// Environment: TESSERA_URL, OPERATOR_TOKEN, PLUGIN (one with a pending
// upgrade), OUT_DIR, CHROMIUM (default /usr/bin/chromium). Prints one JSON
// line: {"pictures": [{"file", "width"}]}.

import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.TESSERA_URL;
const token = process.env.OPERATOR_TOKEN;
const plugin = process.env.PLUGIN;
const outDir = process.env.OUT_DIR;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Widths in CSS pixels, pictures at one device pixel per CSS pixel.
const WIDTHS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const LANGUAGES = { en: 'en', 'zh-CN': 'zh' };
// A picture taller than this is cut: the top of a long page shows what it is.
const MAX_HEIGHT = 1600;

for (const [name, value] of Object.entries({ TESSERA_URL: url, OPERATOR_TOKEN: token, PLUGIN: plugin, OUT_DIR: outDir })) {
  if (!value) throw new Error(`${name} is not set`);
}

function check(condition, what) {
  if (!condition) throw new Error('the page is wrong: ' + what);
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

    // A quiet page: no message, no focus ring (they are for people, not pictures).
    const settle = async () => {
      await page.locator('#notice').evaluate((n) => { n.textContent = ''; });
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
    };
    // Both widths of what is on the screen now, as `<name>-<width>-<lang>.png`.
    const shoot = async (name) => {
      for (const [kind, size] of Object.entries(WIDTHS)) {
        await page.setViewportSize(size);
        await settle();
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
    // Opens a page of the console by its route and waits for the new page
    // (not the one it replaces) to show `ready`.
    const open = async (route, ready) => {
      await page.evaluate((hash) => {
        for (const old of document.querySelectorAll('#page > *')) old.setAttribute('data-old', '');
        window.location.hash = hash;
      }, route);
      await page.locator(`#page > section:not([data-old]) ${ready}`).first().waitFor();
    };

    await page.goto(`${url}/console/`);
    check((await page.locator('html').getAttribute('lang')) === lang, `the page is in ${lang}`);
    await page.locator('#sign-in-title').waitFor();
    await shoot('sign-in');
    await page.locator('#token').fill(token);
    signedIn = true;
    await page.locator('#sign-in-form button[type=submit]').click();
    await page.locator('#page h2').waitFor();
    const text = await page.locator('#main').innerText();
    if (suffix === 'zh') check(/[\u4e00-\u9fff]/.test(text), 'the page shows Chinese');
    else check(!/[\u4e00-\u9fff]/.test(text), 'the page shows no Chinese');

    await open('#/tenant', 'dl.facts');
    await shoot('tenant');
    await open('#/tokens', 'table');
    await shoot('tokens');
    await open('#/plugins/' + encodeURIComponent(plugin), 'dl.facts');
    await shoot('plugin');
    await open('#/approvals', `article[data-plugin="${plugin}"]`);
    await shoot('approvals');
    await open('#/audit', '#audit-results table');
    await shoot('audit');
    await open('#/deletions', '#deletion-results table');
    await shoot('deletions');

    check(problems.length === 0, `script errors or blocked content (${lang}):\n` + problems.join('\n'));
    await context.close();
  }
  console.log(JSON.stringify({ pictures }));
} finally {
  await browser.close();
}
