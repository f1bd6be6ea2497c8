// The web console in a real browser: Debian's chromium, driven by playwright-core,
// against a running instance (scripts/console-test.sh starts an embedded one and sets
// BASE_URL and API_KEY). A person's session, step by step: use a key, see errors next
// to their fields, shorten, copy, follow the short link, list, open, edit, see the
// clicks in the chart, delete; on a desktop's width and a phone's. Screenshots go to
// SCREENSHOTS (the README's come from here).
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.BASE_URL;
const key = process.env.API_KEY;
const shots = process.env.SCREENSHOTS || 'target/console-screenshots';
assert.ok(base && key, 'BASE_URL and API_KEY must be set');
mkdirSync(shots, { recursive: true });

// Everything is bounded: the whole run stops itself.
const watchdog = setTimeout(() => {
  console.error('console test: timed out after 180 s');
  process.exit(1);
}, 180_000);

// The targets the short links point to: a small site on loopback.
const site = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>target ${req.url}</title><h1>You arrived at ${req.url}</h1>`);
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
// `localhost`, not 127.0.0.1: the service refuses targets on its own host name.
const target = `http://localhost:${site.address().port}`;

/** The API's own answer to a request, to compare the page with. */
async function apiDirect(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    redirect: 'manual',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
const page = await context.newPage();
page.setDefaultTimeout(10_000);

// Any script error or policy violation on the page fails the test.
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
});

let failed = false;
async function step(name, work) {
  process.stdout.write(`console test: ${name} … `);
  try {
    await work();
    console.log('ok');
  } catch (e) {
    failed = true;
    console.log('FAILED');
    console.error(e);
    await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  }
}

const today = new Date().toISOString().slice(0, 10);
// The console's page size (PAGE_SIZE in console.js).
const PAGE = 20;
// The short links are followed as people's browsers would: headless Chromium says so in
// its User-Agent, and the service would count it as a bot.
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 ' +
  '(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const DESKTOP = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
async function visit(userAgent) {
  const visitor = await browser.newContext({ userAgent });
  const tab = await visitor.newPage();
  await tab.goto(shortUrl);
  const url = tab.url();
  await visitor.close();
  return url;
}
let shortUrl;
let code;

try {
  await step('the page opens with no key, every control labelled', async () => {
    const res = await page.goto(`${base}/`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
    assert.equal(await page.title(), 'shortener');
    await page.getByText('No key: links are made anonymously').waitFor();
    const unlabelled = await page.$$eval('input, select', (els) =>
      els.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id));
    assert.deepEqual(unlabelled, []);
  });

  await step('a wrong key is refused next to the key field', async () => {
    await page.getByLabel('API key').fill('shk_nope_nope');
    await page.getByRole('button', { name: 'Use key' }).click();
    const error = page.locator('#key-error');
    await error.waitFor();
    assert.match(await error.textContent(), /not valid/);
  });

  await step('the key is taken and remembered', async () => {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Use key' }).click();
    await page.getByText(/Using key shk_/).waitFor();
    await page.reload();
    await page.getByText(/Using key shk_/).waitFor();
    await page.getByText('No links yet').waitFor();
  });

  await step('API errors show next to the field they concern', async () => {
    // A bad URL: the message the API sends, under the URL field.
    await page.getByLabel('Long URL').fill('not a url');
    await page.getByRole('button', { name: 'Shorten' }).click();
    const urlError = page.locator('#shorten-url-error');
    await urlError.waitFor();
    const direct = await apiDirect('POST', '/api/v1/links', { url: 'not a url', redirect: 302 });
    assert.equal(direct.status, 422);
    assert.equal(await urlError.textContent(), direct.body.error.message);
    assert.equal(await page.getByLabel('Long URL').getAttribute('aria-invalid'), 'true');

    // A reserved alias: under the alias field, the options opened to show it.
    await page.getByLabel('Long URL').fill(`${target}/first`);
    await page.getByText('Options: alias, expiry, redirect').click();
    await page.getByLabel(/Alias/).fill('assets');
    await page.getByRole('button', { name: 'Shorten' }).click();
    const aliasError = page.locator('#shorten-alias-error');
    await aliasError.waitFor();
    assert.match(await aliasError.textContent(), /reserved/);
    assert.ok(await urlError.isHidden(), 'the old error is gone');
  });

  await step('shorten: the short URL, a copy button and its QR code', async () => {
    await page.getByLabel(/Alias/).fill('');
    await page.locator('#shorten-form').getByLabel('Redirect').selectOption('302');
    await page.getByRole('button', { name: 'Shorten' }).click();
    const link = page.locator('#result-link');
    await link.waitFor();
    shortUrl = await link.textContent();
    assert.ok(shortUrl.startsWith(`${base}/`), shortUrl);
    code = shortUrl.slice(base.length + 1);
    assert.match(code, /^[0-9A-Za-z]{10,11}$/);
    await page.waitForFunction(() => document.getElementById('result-qr').naturalWidth > 0);
    assert.match(await page.locator('#result-qr').getAttribute('alt'), new RegExp(code));
    await page.locator('#result .copy').click();
    await page.locator('#result .copy', { hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), shortUrl);
  });

  await step('the short URL leads to the target', async () => {
    assert.equal(await visit(PHONE), `${target}/first`);
  });

  await step('the list shows the link', async () => {
    const row = page.locator('#links-table tbody tr', { hasText: code });
    await row.waitFor();
    assert.match(await row.textContent(), /\/first/);
    await page.screenshot({ path: join(shots, 'console.png'), fullPage: true });
  });

  await step('open the link; an edit error shows by its field', async () => {
    await page.getByRole('link', { name: code, exact: true }).click();
    await page.locator('#link-heading', { hasText: code }).waitFor();
    // The heading shows at once, the link's details when its answer arrives.
    await page.locator('#link-target', { hasText: '/first' }).waitFor();
    assert.equal(await page.locator('#link-target').textContent(), `${target}/first`);
    await page.getByLabel('Expires (empty: never)').fill('2001-01-01T10:00');
    await page.getByRole('button', { name: 'Save changes' }).click();
    const error = page.locator('#edit-expires-error');
    await error.waitFor();
    assert.match(await error.textContent(), /future/);
    await page.getByLabel('Expires (empty: never)').fill('');
  });

  await step('edit the target; the short URL follows it', async () => {
    await page.getByLabel('Target URL').fill(`${target}/second`);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#edit-done').waitFor();
    assert.equal(await page.locator('#link-target').textContent(), `${target}/second`);
    assert.equal(await visit(DESKTOP), `${target}/second`);
  });

  await step('the clicks appear in the stats and the chart', async () => {
    // Counts lag clicks by the worker's flush interval: ask again until both are in.
    const deadline = Date.now() + 20_000;
    for (;;) {
      await page.getByRole('button', { name: 'Show' }).click();
      await page.waitForTimeout(300);
      if ((await page.locator('#stats-total').textContent()) === '2') break;
      assert.ok(Date.now() < deadline, 'the two clicks never showed');
    }
    const bar = page.locator(`#chart g[data-day="${today}"]`);
    assert.equal(await bar.getAttribute('data-total'), '2');
    assert.match(await bar.locator('title').textContent(), /2 clicks/);
    assert.equal(await page.locator('#chart g').count(), 30, 'thirty days by default');
    assert.equal(await page.locator('#stats-humans').textContent(), '2');
    const browsers = await page.locator('#top-browsers li').allTextContents();
    assert.equal(browsers.length, 2, `${browsers}`);
    for (const b of browsers) assert.match(b, / 1$/, 'one click each');
    const devices = await page.locator('#top-devices li').allTextContents();
    assert.equal(devices.length, 2, `a phone and a pc: ${devices}`);
    await page.locator('#stats').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'stats.png'), fullPage: true });
  });

  await step('countries with share bars, cities, campaigns and visitors', async () => {
    // Three more clicks through the trusted proxy (127.0.0.1 in this run), placed by a
    // CDN's headers: two in France (one with a campaign), one in Japan.
    for (const [from, country, query] of [
      ['203.0.113.7', 'FR', '?utm_source=newsletter&utm_medium=email'],
      ['203.0.113.8', 'FR', ''],
      ['198.51.100.9', 'JP', ''],
    ]) {
      const res = await fetch(`${base}/${code}${query}`, {
        redirect: 'manual',
        headers: {
          'user-agent': DESKTOP,
          'x-forwarded-for': from,
          'cf-ipcountry': country,
          'x-vercel-ip-city': country === 'FR' ? 'Paris' : 'Osaka',
        },
      });
      assert.equal(res.status, 302);
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      await page.getByRole('button', { name: 'Show' }).click();
      await page.waitForTimeout(300);
      if ((await page.locator('#stats-total').textContent()) === '5') break;
      assert.ok(Date.now() < deadline, 'the three clicks never showed');
    }
    const rows = await page.locator('#countries tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.cells].slice(0, 2).map((td) => td.textContent).join(' ')));
    assert.deepEqual(rows, ['(unknown) 2', 'FR 2', 'JP 1']);
    const fr = page.locator('#countries tbody tr', { hasText: 'FR' }).locator('meter');
    assert.equal(await fr.getAttribute('value'), '0.4', 'two clicks of five');
    assert.equal(await fr.getAttribute('title'), '40%');
    const cities = await page.locator('#cities tbody tr td:first-child').allTextContents();
    assert.deepEqual(cities, ['Paris, FR', 'Osaka, JP']);
    assert.deepEqual(await page.locator('#top-utm-sources li').allTextContents(), ['newsletter 1']);
    assert.deepEqual(await page.locator('#top-utm-mediums li').allTextContents(), ['email 1']);
    // Two browsers from the proxy's own address, three forwarded addresses.
    assert.equal(await page.locator('#stats-visitors').textContent(), '5');
    const bar = page.locator(`#chart g[data-day="${today}"]`);
    assert.equal(await bar.getAttribute('data-visitors'), '5');
    assert.equal(await bar.locator('circle.visitors').count(), 1);
    await page.locator('#stats').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'stats.png'), fullPage: true });
  });

  await step('a bad range is refused next to the range', async () => {
    await page.getByLabel('From', { exact: true }).fill('2026-01-10');
    await page.getByLabel('To', { exact: true }).fill('2026-01-01');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.locator('#stats-error').waitFor();
    assert.match(await page.locator('#stats-error').textContent(), /.+/);
  });

  await step("usable at a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/`);
    await page.locator('#links-table tbody tr').first().waitFor();
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await page.screenshot({ path: join(shots, 'phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  await step('keyboard only: the form is reachable and submits', async () => {
    await page.goto(`${base}/`);
    await page.keyboard.press('Tab'); // the skip link
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement.id);
    assert.equal(focused, 'shorten-url');
  });

  await step('delete: the link leaves the list and answers 410', async () => {
    await page.goto(`${base}/#link/${code}`);
    await page.locator('#link-heading', { hasText: code }).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete link' }).click();
    await page.locator('#links').waitFor();
    await page.getByText('No links yet').waitFor();
    const gone = await fetch(shortUrl, { redirect: 'manual' });
    assert.equal(gone.status, 410);
  });

  // Links of their own for the steps below (the first one was deleted above).
  const made = [];
  for (let i = 0; i < PAGE + 5; i += 1) {
    const r = await apiDirect('POST', '/api/v1/links', { url: `${target}/many/${i}` });
    assert.equal(r.status, 201);
    made.push(r.body.code);
  }
  const [older, newer] = [made[0], made.at(-1)];

  await step('"Load older links" clicked twice adds each link once', async () => {
    await page.goto(`${base}/`);
    await page.locator('#links-table tbody tr').nth(PAGE - 1).waitFor();
    // The second page answers slowly, so that the second click comes while it loads.
    await page.route(/\/api\/v1\/links\?.*cursor=/, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 700));
      await route.continue();
    });
    const more = page.getByRole('button', { name: 'Load older links' });
    await more.click();
    await more.click({ force: true, timeout: 1_000 }).catch(() => {});
    await page.evaluate(() => document.getElementById('links-more').click());
    await more.waitFor({ state: 'hidden' });
    await page.waitForTimeout(1_000);
    const codes = await page.locator('#links-table tbody tr td:first-child').allTextContents();
    assert.equal(codes.length, made.length, `${codes.length} rows for ${made.length} links`);
    assert.equal(new Set(codes).size, codes.length, 'no row twice');
    await page.unroute(/\/api\/v1\/links\?.*cursor=/);
  });

  await step("a slow answer for one link never shows under another's heading", async () => {
    await page.route(`**/api/v1/links/${older}`, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await route.continue();
    });
    await page.goto(`${base}/#link/${older}`);
    await page.evaluate((c) => { location.hash = `#link/${c}`; }, newer);
    await page.locator('#link-target', { hasText: `/many/${PAGE + 4}` }).waitFor();
    await page.waitForTimeout(1_500); // the slow answer for the first has arrived by now
    assert.equal(await page.locator('#link-heading').textContent(), `Link ${newer}`);
    assert.equal(await page.locator('#link-target').textContent(), `${target}/many/${PAGE + 4}`);
    assert.equal(await page.locator('#edit-url').inputValue(), `${target}/many/${PAGE + 4}`);
    await page.unroute(`**/api/v1/links/${older}`);
  });

  await step('a link that fails to open shows none of the previous one', async () => {
    await page.locator('#link-target', { hasText: '/many/' }).waitFor();
    await page.evaluate(() => { location.hash = '#link/no-such-link'; });
    await page.locator('#link-error').waitFor();
    assert.match(await page.locator('#link-error').textContent(), /no link/);
    assert.ok(await page.locator('#link-body').isHidden(), "the previous link's details are hidden");
    assert.equal(await page.locator('#link-heading').textContent(), 'Link no-such-link');
  });

  await step('a malformed address says so instead of throwing', async () => {
    await page.goto(`${base}/#link/%E0%A4%A`);
    await page.locator('#link-error').waitFor();
    assert.match(await page.locator('#link-error').textContent(), /not a link/i);
    assert.ok(await page.locator('#link-body').isHidden());
  });

  await step('saving with nothing changed says so without asking the service', async () => {
    await page.goto(`${base}/#link/${newer}`);
    await page.locator('#link-target', { hasText: '/many/' }).waitFor();
    let patches = 0;
    page.on('request', (r) => { if (r.method() === 'PATCH') patches += 1; });
    await page.getByRole('button', { name: 'Save changes' }).click();
    const error = page.locator('#edit-form [data-error-for=""]');
    await error.waitFor();
    assert.match(await error.textContent(), /Nothing to save/);
    assert.equal(patches, 0);
  });

  await step('form-level failures are announced and take the focus', async () => {
    const before = problems.length;
    const error = page.locator('#edit-form [data-error-for=""]');
    assert.equal(await error.getAttribute('role'), 'alert');
    for (const [fail, expected] of [
      [(route) => route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'shard_unavailable', message: 'storage shard s0 is unavailable; retry shortly' } }),
      }), /unavailable/],
      [(route) => route.abort('connectionrefused'), /could not be reached/],
    ]) {
      await page.route(`**/api/v1/links/${newer}`, (route) =>
        (route.request().method() === 'PATCH' ? fail(route) : route.continue()));
      await page.getByLabel('Target URL').fill(`${target}/changed`);
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.locator('#edit-form [data-error-for=""]', { hasText: expected }).waitFor();
      const focused = await page.evaluate(() => document.activeElement.getAttribute('data-error-for'));
      assert.equal(focused, '', 'the focus moved to the message');
      await page.unroute(`**/api/v1/links/${newer}`);
    }
    // The browser logs the two failures this step made on purpose: only those go.
    const made = problems.splice(before);
    const other = made.filter((p) => !/status of 503|ERR_CONNECTION_REFUSED|ERR_FAILED/.test(p));
    problems.push(...other);
  });

  await step('no script error and no policy violation on the way', async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await browser.close();
  site.close();
  clearTimeout(watchdog);
}
if (failed) process.exit(1);
console.log(`console test: passed; screenshots in ${shots}`);
