// The console's marketer pages in headless Chromium, driven as a marketer
// would: sign in with an API token, build a segment whose rule has a typo
// and read the error at its line and column, fix it and read the preview
// count, save it, then run a campaign through the wizard (draft →
// simulate → enable with a control group) and, once decisions and
// purchases are in, read the uplift chart; a second campaign's simulation
// then shows the estimate replayed over the first one's decisions. Every step asserts what the
// page shows and compares it with the API, called with the same token as
// a bearer; the Rust side (host/cli/tests/console_marketer_browser.rs)
// then checks the API again.
//
// Environment: TESSERA_URL, MARKETER_TOKEN, CHROMIUM (default
// /usr/bin/chromium), and optionally SCREENSHOT_DIR (a picture of each
// page, to look at). Prints one JSON line: {typo, rule, error, preview,
// expected_treated, uplift, estimate}.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.TESSERA_URL;
const token = process.env.MARKETER_TOKEN;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.SCREENSHOT_DIR;
for (const [name, value] of Object.entries({ TESSERA_URL: url, MARKETER_TOKEN: token })) {
  if (!value) throw new Error(`${name} is not set`);
}

// The marketer pages worth a picture for docs/screenshots/ (the console's
// screenshot script may take this list): route, and the picture's name.
// A picture taller than this is cut: the top of a long page shows what it is.
const MAX_HEIGHT = 1600;
const PICTURES = [
  ['segments', 'mk-segments'],
  ['segments/porto-buyers', 'mk-segment'],
  ['segment-builder/porto-buyers', 'mk-builder'],
  ['catalog', 'mk-catalog'],
  ['campaigns/porto-offers', 'mk-results'],
  ['imports', 'mk-imports'],
];

const TYPO = 'count(purchase, last 30 days) >= 1\n  and trait.cty = "Porto"';
const RULE = 'count(purchase, last 30 days) >= 1\n  and trait.city = "Porto"';
const SEGMENT = 'porto-buyers';
const CAMPAIGN = 'porto-offers';

function check(condition, what) {
  if (!condition) throw new Error('the page is wrong: ' + what);
}

/** The same number, up to the last bits of a float stored and read back. */
function same(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b));
}

/** The same estimate: value and interval. */
function sameEstimate(drawn, api) {
  return same(drawn.value, api.value) && same(drawn.lower, api.lower) && same(drawn.upper, api.upper);
}

/** The API, as the marketer's bearer token (not the page's cookie). */
async function api(method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
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
const result = { typo: TYPO, rule: RULE };
try {
  const page = await context.newPage();
  // Script errors and CSP violations (reported as console errors) fail the test.
  page.on('pageerror', (error) => problems.push(String(error)));
  let signedIn = false;
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Before signing in, the page's look for a session is answered 401.
    if (!signedIn && message.text().includes('status of 401')) return;
    // Checking that a new name is free is answered 404.
    if (message.text().includes('status of 404')) return;
    problems.push(message.text());
  });
  const notice = (text) => page.locator('#notice', { hasText: text }).waitFor();
  // A page by its route, loaded afresh (a new hash alone would keep the
  // page that is shown until the new one replaces it).
  const open = async (route) => {
    await page.goto(`${url}/console/#/${route}`);
    await page.reload();
    await page.locator('.mk-page').waitFor();
    await page.waitForLoadState('networkidle');
  };
  const picture = async (name) => {
    if (screenshots) await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };

  // Sign in with the API token.
  await page.goto(`${url}/console/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const builderLink = page.getByRole('navigation').getByRole('link', { name: 'Segment builder', exact: true });
  await builderLink.waitFor();
  signedIn = true;

  // The segment builder: a typo, shown where it is.
  await builderLink.click();
  await page.getByRole('heading', { name: 'Segment builder', level: 2 }).waitFor();
  const rule = page.getByLabel('Rule', { exact: true });
  await rule.fill(TYPO);
  const problem = page.locator('.mk-problem').first();
  await problem.waitFor();
  const verdict = await api('POST', '/v1/rules/check', { rule: TYPO });
  check(!verdict.valid && verdict.errors.length === 1, `the API finds one problem: ${JSON.stringify(verdict)}`);
  const expected = verdict.errors[0];
  const error = {
    line: Number(await problem.getAttribute('data-line')),
    column: Number(await problem.getAttribute('data-column')),
    marked: await problem.locator('mark').innerText(),
    message: await problem.locator('.mk-message').innerText(),
    where: await problem.locator('.mk-where').innerText(),
  };
  check(error.line === expected.line && error.column === expected.column,
    `the error is at the API's position: ${JSON.stringify(error)} vs ${JSON.stringify(expected)}`);
  check(error.where === `Line ${expected.line}, column ${expected.column}:`, `the position is written out: ${error.where}`);
  check(expected.message.endsWith(error.message) && error.message.includes('cty'), `the message: ${error.message}`);
  check(error.marked === TYPO.slice(expected.start, expected.end), `the offending text is marked: ${error.marked}`);
  check(await rule.getAttribute('aria-invalid') === 'true', 'the rule is marked invalid');
  // "Show in the rule", by keyboard, selects the offending text.
  await problem.getByRole('button', { name: 'Show in the rule' }).focus();
  await page.keyboard.press('Enter');
  const selection = await rule.evaluate((el) => [el.selectionStart, el.selectionEnd, document.activeElement === el]);
  check(selection[0] === expected.start && selection[1] === expected.end && selection[2],
    `the offending text is selected in the rule: ${selection}`);
  result.error = error;
  await picture('builder-error');

  // Chinese before the typo: the API's offsets count UTF-8 bytes, the page
  // marks characters.
  const CJK = 'trait.city = "杭州" or trait.cty = "Porto"';
  await rule.fill(CJK);
  const cjk = (await api('POST', '/v1/rules/check', { rule: CJK })).errors[0];
  const cjkText = Buffer.from(CJK).subarray(cjk.start, cjk.end).toString();
  const cjkMark = page.locator('.mk-problem mark');
  await page.locator(`.mk-problem[data-column="${cjk.column}"]`).waitFor();
  check((await cjkMark.innerText()) === cjkText && cjkText.includes('cty'), `the typo after Chinese text is marked: ${await cjkMark.innerText()} vs ${cjkText}`);

  // Fixed: valid, with the preview count the API gives.
  await rule.fill(RULE);
  const count = page.locator('#mk-preview-count');
  await count.waitFor();
  check((await page.locator('.mk-problem').count()) === 0, 'no problem is left');
  const preview = await api('POST', '/v1/segments/preview', { plugin: 'rules', params: { rule: RULE } });
  const shownCount = Number(await count.getAttribute('data-members'));
  check(shownCount === preview.members, `the preview count ${shownCount} is the API's ${preview.members}`);
  check((await count.innerText()).trim() === String(preview.members), `the count is written: ${await count.innerText()}`);
  check(preview.members > 0 && preview.members < Number(process.env.PEOPLE || Infinity), 'the rule keeps some people, not all');
  result.preview = shownCount;
  await picture('builder-valid');

  // Save it: the segment page follows its first recompute.
  await page.getByLabel('Segment name').fill(SEGMENT);
  await page.getByLabel('Description', { exact: true }).fill('bought in the last 30 days, in Porto');
  await page.getByRole('button', { name: 'Save the segment' }).click();
  await page.getByRole('heading', { name: `Segment: ${SEGMENT}`, level: 2 }).waitFor();
  await notice(`Segment ${SEGMENT} saved`);
  await page.locator(`#mk-segment-members[data-members="${preview.members}"]`).waitFor();
  const saved = await api('GET', `/v1/segments/${SEGMENT}`);
  check(saved.params.rule === RULE && saved.members === preview.members, `the API has the segment: ${JSON.stringify(saved)}`);
  // Its size over time: a chart with one point per recompute.
  const sizes = await api('GET', `/v1/segments/${SEGMENT}/sizes`);
  const dots = page.locator('.mk-line-chart .mk-dot');
  await dots.first().waitFor();
  const drawn = await dots.evaluateAll((els) => els.map((el) => Number(el.getAttribute('data-y'))));
  const apiSizes = [...sizes.sizes].sort((x, y) => x.at_ms - y.at_ms).map((s) => s.members);
  check(drawn.length > 0 && JSON.stringify(drawn) === JSON.stringify(apiSizes),
    `the sizes chart draws the API's sizes: ${drawn} vs ${JSON.stringify(sizes)}`);
  check(await page.locator('.mk-line-chart[role="img"]').getAttribute('aria-label') !== null, 'the chart has a summary');
  await picture('segment');

  // The campaign wizard, from the segment.
  await page.getByRole('button', { name: 'Start a campaign on it' }).click();
  await page.getByRole('heading', { name: 'New campaign', level: 2 }).waitFor();
  check(await page.getByLabel('Segment', { exact: true }).inputValue() === SEGMENT, 'the segment is chosen');
  await page.getByLabel('Campaign name').fill(CAMPAIGN);
  await page.getByLabel('Strategy', { exact: true }).selectOption('epsilon-greedy');
  await page.getByLabel('Control group (%)').fill('50');
  await page.getByLabel('Fallback action').selectOption('no_offer');
  await page.getByRole('button', { name: 'Save as draft' }).click();
  await page.getByRole('heading', { name: `Draft ${CAMPAIGN} saved.`, level: 2 }).waitFor();
  const draft = await api('GET', `/v1/campaigns/${CAMPAIGN}`);
  check(draft.status === 'draft' && draft.holdout === 0.5 && draft.segment === SEGMENT && draft.fallback === 'no_offer',
    `the API has the draft: ${JSON.stringify(draft)}`);
  await page.getByRole('button', { name: 'Simulate', exact: true }).click();
  const forecast = page.locator('#mk-simulation-result .mk-simulation');
  await forecast.waitFor();
  const simulated = await api('GET', `/v1/campaigns/${CAMPAIGN}`);
  check(simulated.status === 'simulated', `the API has it simulated: ${simulated.status}`);
  const treated = Number(await forecast.locator('[data-expected-treated]').getAttribute('data-expected-treated'));
  const control = Number(await forecast.locator('[data-expected-control]').getAttribute('data-expected-control'));
  check(treated === simulated.simulation.expected_treated && control === simulated.simulation.expected_control,
    `the forecast shown is the API's: ${treated}/${control} vs ${JSON.stringify(simulated.simulation)}`);
  check(treated + control === preview.members, `everyone consents, so all are reached or held out: ${treated} + ${control}`);
  result.expected_treated = treated;
  await picture('wizard-simulated');
  await page.getByRole('button', { name: 'Enable, with a 50% control group' }).click();
  await notice(`Campaign ${CAMPAIGN} is running`);
  await page.getByRole('heading', { name: `Campaign: ${CAMPAIGN}`, level: 2 }).waitFor();
  const running = await api('GET', `/v1/campaigns/${CAMPAIGN}`);
  check(running.status === 'running', `the API has it running: ${running.status}`);

  // The campaign decides for everyone in the segment (as a web site would
  // ask), and treated people buy more often than those held out.
  let people = 0;
  const purchases = [];
  for (let i = 0; i < Number(process.env.PEOPLE); i += 1) {
    const decision = await api('POST', '/v1/decide', {
      campaign: CAMPAIGN,
      identity: { kind: 'member_id', value: `m-${i}` },
      channel: 'web',
    });
    if (!decision.arm) continue;
    people += 1;
    const buys = decision.arm === 'treatment' ? i % 7 !== 0 : i % 7 === 0;
    // The site reports the purchases it credits to a treated person's
    // offer (half of them, here): off-policy replays weigh them.
    if (buys && decision.arm === 'treatment' && i % 2 === 0) {
      await api('POST', '/v1/feedback', { decision: decision.decision, kind: 'conversion' });
    }
    if (buys) {
      purchases.push({
        type: 'track',
        userId: `m-${i}`,
        event: 'Purchase',
        messageId: `after-${i}`,
        timestamp: new Date(Date.now() + 1000).toISOString(),
        properties: { amount: 20 + i, currency: 'EUR', order_id: `p-${i}` },
      });
    }
  }
  check(people === preview.members, `every member got a decision: ${people}`);
  await api('POST', '/v1/batch', { batch: purchases });

  // The results: the uplift with its interval, drawn from the evaluation.
  // The page is on the campaign already: load it again for the new figures.
  await page.reload();
  await page.getByRole('heading', { name: `Campaign: ${CAMPAIGN}`, level: 2 }).waitFor();
  const estimate = page.locator('#mk-uplift-chart svg[role="img"] .mk-estimate');
  await estimate.waitFor();
  const evaluation = await api('GET', `/v1/campaigns/${CAMPAIGN}/evaluation`);
  const uplift = {
    value: Number(await estimate.getAttribute('data-value')),
    lower: Number(await estimate.getAttribute('data-lower')),
    upper: Number(await estimate.getAttribute('data-upper')),
  };
  const a = evaluation.report.absolute_uplift;
  check(sameEstimate(uplift, a),
    `the chart draws the API's uplift: ${JSON.stringify(uplift)} vs ${JSON.stringify(a)}`);
  check(await page.locator('#mk-uplift-chart .mk-zero').count() === 1, 'the chart has its zero line');
  const summary = await page.locator('#mk-uplift-chart svg').getAttribute('aria-label');
  check(summary.startsWith('Uplift in conversion rate'), `the chart's summary: ${summary}`);
  const hidden = await page.locator('#mk-uplift-chart table').innerText();
  check(hidden.includes('Conversion uplift'), `the chart's values are in a table: ${hidden}`);
  const arms = await page.locator('.mk-evaluation table.stack').first().innerText();
  check(arms.includes(String(evaluation.report.treatment.subjects)) && arms.includes(String(evaluation.report.control.subjects)),
    `people per arm are shown: ${arms}`);
  // The interval is drawn where its values are: the point between its ends.
  const xs = await estimate.evaluate((g) => {
    const [line] = g.getElementsByClassName('mk-interval');
    const [point] = g.getElementsByClassName('mk-point');
    return [Number(line.getAttribute('x1')), Number(point.getAttribute('cx')), Number(line.getAttribute('x2'))];
  });
  check(xs[0] <= xs[1] && xs[1] <= xs[2], `the point lies within its interval: ${xs}`);
  result.uplift = uplift;
  await picture('campaign-results');

  // A second campaign on the segment: its simulation replays another
  // strategy over the first one's logged decisions, with an interval.
  await page.goto(`${url}/console/#/campaign-wizard/segment/${SEGMENT}/strategy/epsilon-greedy`);
  await page.getByLabel('Campaign name').fill(`${CAMPAIGN}-explore`);
  await page.getByLabel('epsilon', { exact: true }).fill('0.5');
  await page.getByRole('button', { name: 'Save as draft' }).click();
  await page.getByRole('button', { name: 'Simulate', exact: true }).click();
  const snips = page.locator('#mk-simulation-result .mk-interval-chart .mk-estimate').first();
  await snips.waitFor();
  const replayed = (await api('GET', `/v1/campaigns/${CAMPAIGN}-explore`)).simulation.off_policy;
  check(replayed && replayed.logs_from === CAMPAIGN, `the API replayed the first campaign: ${JSON.stringify(replayed)}`);
  const replay = {
    value: Number(await snips.getAttribute('data-value')),
    lower: Number(await snips.getAttribute('data-lower')),
    upper: Number(await snips.getAttribute('data-upper')),
  };
  const e = replayed.estimate.snips;
  check(sameEstimate(replay, e),
    `the forecast draws the API's SNIPS estimate: ${JSON.stringify(replay)} vs ${JSON.stringify(e)}`);
  check((await snips.getAttribute('data-label')) === 'SNIPS', 'the first row is SNIPS');
  result.estimate = replay;
  await picture('wizard-estimate');

  // A phone's width: nothing is wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const route of [`campaigns/${CAMPAIGN}`, 'segment-builder', `segments/${SEGMENT}`]) {
    await open(route);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `#/${route} fits a phone: ${width} px wide`);
  }

  // With SCREENSHOT_DIR: the marketer pages at both widths, for
  // docs/screenshots/console/marketer/ (cut at MAX_HEIGHT, as the
  // operator pages' pictures are).
  if (screenshots) {
    for (const [width, height, kind] of [[1280, 900, 'desktop'], [390, 844, 'phone']]) {
      await page.setViewportSize({ width, height });
      for (const [route, name] of PICTURES) {
        await open(route);
        const full = await page.evaluate(() => document.documentElement.scrollHeight);
        await page.screenshot({
          path: join(screenshots, `${name}-${kind}-en.png`),
          fullPage: true,
          clip: { x: 0, y: 0, width, height: Math.min(full, MAX_HEIGHT) },
          animations: 'disabled',
          caret: 'hide',
          scale: 'css',
        });
      }
    }
  }

  check(problems.length === 0, `no script error or CSP violation: ${problems.join('; ')}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
