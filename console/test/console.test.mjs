// Browser tests of the web console: Debian's chromium driven by
// playwright-core against a real `connlog serve` with real ingested lines.
// cmd/connlog/console_e2e_test.go starts the server, publishes the lines and
// runs this file with node's test runner; the environment says where:
//
//	CONNLOG_URL            http://127.0.0.1:PORT (the API's listener)
//	CONNLOG_ADMIN_TOKEN    a token with role admin
//	CONNLOG_ANALYST_TOKEN  a token with role analyst
//	CONNLOG_ROWS           rows stored in 10.0.0.0/8
//	CONNLOG_XSS_IP         the client of the lines carrying HTML/JS payloads
//	CONNLOG_SITE           the site of the lines
//	CONNLOG_OIDC_ISSUER    the identity provider's URL (api/oidctest), which
//	                       signs in olivia@example.org of group soc (analyst)
//	CONNLOG_SCREENSHOTS    if set, a directory for console-*.png
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.CONNLOG_URL;
const admin = process.env.CONNLOG_ADMIN_TOKEN;
const analyst = process.env.CONNLOG_ANALYST_TOKEN;
const rows = Number(process.env.CONNLOG_ROWS);
const xssIP = process.env.CONNLOG_XSS_IP;
const site = process.env.CONNLOG_SITE;
const shots = process.env.CONNLOG_SCREENSHOTS;
const issuer = process.env.CONNLOG_OIDC_ISSUER;
const purpose = 'INC-4242 console e2e';
assert.ok(base && admin && analyst && rows && xssIP && site, 'run through go test ./cmd/connlog -run TestConsole');

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CONNLOG_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});
after(async () => { await browser?.close(); });

/** open gives a fresh page that records what must never happen. */
async function open(opts = {}) {
  const context = await browser.newContext({ acceptDownloads: true, locale: 'en-GB', timezoneId: 'Europe/Paris', viewport: { width: 1280, height: 900 }, ...opts });
  const page = await context.newPage();
  const bad = { console: [], dialogs: [], foreign: [], pageErrors: [], issuer: [] };
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') bad.console.push(m.text()); });
  page.on('pageerror', (e) => bad.pageErrors.push(String(e)));
  page.on('dialog', (d) => { bad.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('request', (r) => {
    const origin = new URL(r.url()).origin;
    if (issuer && origin === issuer) bad.issuer.push(r.url()); // the sign-in's round trip: checked by clean
    else if (origin !== base && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) bad.foreign.push(r.url());
  });
  return { context, page, bad };
}

/**
 * clean asserts that nothing bad happened. allow lists the HTTP statuses of
 * refusals the test provoked on purpose: Chromium logs each as a console
 * error ("Failed to load resource"), which is the browser's, not the page's.
 */
function clean(bad, allow = [], { viaIssuer = false } = {}) {
  assert.deepEqual(bad.pageErrors, [], 'page errors');
  const re = /^Failed to load resource: the server responded with a status of (\d+)/;
  assert.deepEqual(bad.console.filter((m) => !allow.includes(Number(re.exec(m)?.[1]))), [], 'console errors or warnings');
  assert.deepEqual(bad.dialogs, [], 'dialogs opened (an XSS payload ran?)');
  assert.deepEqual(bad.foreign, [], 'requests to another origin');
  // The identity provider's origin is reached only by a provider sign-in,
  // and then only at its authorization endpoint, as a navigation.
  if (viaIssuer) assert.ok(bad.issuer.length > 0 && bad.issuer.every((u) => u.startsWith(issuer + '/authorize?')), `requests to the provider: ${bad.issuer}`);
  else assert.deepEqual(bad.issuer, [], 'requests to the identity provider');
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

async function shot(page, name, opts = {}) {
  if (shots) await page.screenshot({ path: join(shots, `console-${name}.png`), fullPage: false, ...opts });
}

async function signIn(page, token) {
  await page.goto(base + '/ui/');
  await tid(page, 'token').fill(token);
  await tid(page, 'login').click();
  await tid(page, 'purpose').waitFor();
}

async function setPurpose(page, p = purpose) {
  await tid(page, 'purpose').fill(p);
  await tid(page, 'purpose-set').click();
  await tid(page, 'purpose-shown').waitFor();
}

async function search(page, ip, limit) {
  await tid(page, 'search-ip').fill(ip);
  if (limit) await page.locator('select[name=limit]').selectOption(String(limit));
  // The answer replaces the whole view: drop the old count, wait for a new one.
  await page.evaluate(() => document.querySelector('[data-testid="count"]')?.remove());
  await tid(page, 'search').click();
  await tid(page, 'count').waitFor();
}

test('sign-in refusals show the API\'s words; the purpose comes before any data', async () => {
  const { context, page, bad } = await open();
  await page.goto(base + '/ui/');
  await shot(page, 'login');
  await tid(page, 'token').fill('cl_not-a-token');
  await tid(page, 'login').click();
  await assert.doesNotReject(tid(page, 'error').filter({ hasText: 'unknown or revoked token' }).waitFor());
  // Keyboard only: Enter signs in.
  await tid(page, 'token').fill(admin);
  await tid(page, 'token').press('Enter');
  await tid(page, 'purpose').waitFor();
  // No purpose, no data: no view, even when asked for by address.
  await page.evaluate(() => { location.hash = '#/search'; });
  await tid(page, 'purpose').waitFor();
  assert.equal(await tid(page, 'search-ip').count(), 0);
  assert.equal(await tid(page, 'nav-audit').count(), 0);
  await tid(page, 'purpose').fill('x');
  await tid(page, 'purpose-set').click();
  await tid(page, 'error').filter({ hasText: '3 to 200' }).waitFor();
  assert.equal(await tid(page, 'search-ip').count(), 0);
  await shot(page, 'purpose');
  await setPurpose(page);
  await tid(page, 'search-ip').waitFor();
  assert.equal(await tid(page, 'purpose-shown').textContent(), purpose);
  // Changing the purpose is one click away, and every later request carries it.
  await tid(page, 'purpose-change').click();
  await setPurpose(page, 'INC-4243 second case');
  assert.equal(await tid(page, 'purpose-shown').textContent(), 'INC-4243 second case');
  // The token is nowhere but in page memory.
  const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(stored, [0, 0, '']);
  assert.deepEqual(await context.cookies(), []);
  await tid(page, 'logout').click();
  await tid(page, 'token').waitFor();
  assert.equal(await tid(page, 'search-ip').count(), 0);
  clean(bad, [401]);
  await context.close();
});

test('search pages through every row, draws the histogram, summarises an IP, exports every row', async () => {
  const { context, page, bad } = await open();
  await signIn(page, admin);
  await setPurpose(page);
  await search(page, '10.0.0.0/8', 20);
  const seen = new Set();
  for (;;) {
    for (const ip of await tid(page, 'result-row').locator('td:nth-child(2)').allTextContents()) seen.add(ip.replace(/\s*Summary$/, ''));
    const next = tid(page, 'next-page');
    if (await next.isDisabled()) break;
    const first = await tid(page, 'result-row').first().textContent();
    await next.click();
    await page.waitForFunction((f) => document.querySelector('[data-testid="result-row"]')?.textContent !== f, first);
  }
  assert.equal(seen.size, rows, 'distinct clients over all pages');
  // The histogram of the last page: a canvas with bars drawn on it.
  await search(page, '10.0.0.0/8', 1000);
  assert.equal(await tid(page, 'result-row').count(), rows);
  const drawn = await tid(page, 'histogram').locator('canvas').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert.ok(drawn > 500, `histogram canvas has ${drawn} painted pixels`);
  await shot(page, 'search');
  // The time zone is shown and UTC is one click away.
  assert.match(await tid(page, 'tz').textContent(), /Europe\/Paris/);
  const local = await tid(page, 'result-row').first().locator('td').first().textContent();
  await tid(page, 'tz-toggle').click();
  assert.match(await tid(page, 'tz').textContent(), /UTC/);
  const utcTime = await tid(page, 'result-row').first().locator('td').first().textContent();
  assert.notEqual(utcTime, local, 'times are shown in UTC after the toggle');
  // Export: a plain download of the whole search, every row.
  const [download] = await Promise.all([page.waitForEvent('download'), tid(page, 'export-csv').click()]);
  assert.match(download.suggestedFilename(), /^connlog-access-.*\.csv$/);
  const csv = (await readFile(await download.path(), 'utf8')).trim().split('\n');
  assert.equal(csv.length, rows + 1, 'header and every row');
  const col = csv[0].split(',').indexOf('client_ip');
  assert.ok(col >= 0, 'a client_ip column');
  assert.deepEqual(new Set(csv.slice(1).map((l) => l.split(',')[col])), seen, 'the export holds the rows the pages showed');
  // The per-IP summary of one address.
  await search(page, '10.0.0.7');
  await tid(page, 'ip-summary').waitFor();
  assert.match(await tid(page, 'ip-summary').textContent(), /Requests\s*1/);
  await shot(page, 'summary');
  clean(bad);
  await context.close();
});

test('HTML and script in user agents, paths and referers stay text', async () => {
  const { context, page, bad } = await open();
  await signIn(page, admin);
  await setPurpose(page);
  await search(page, xssIP);
  await tid(page, 'result-row').first().waitFor();
  const text = await page.locator('main table').textContent();
  assert.match(text, /<script>/, 'the payload is shown as text');
  assert.match(text, /onerror=/);
  await page.waitForTimeout(500); // an injected image's onerror would fire by now
  const found = await page.evaluate(() => ({
    xss: window.__xss,
    injected: document.querySelectorAll('main script, main img, main svg, main iframe, main [onerror], main [onload]').length,
    scripts: [...document.scripts].map((s) => s.src),
  }));
  assert.equal(found.xss, undefined);
  assert.equal(found.injected, 0);
  assert.deepEqual(found.scripts, [base + '/ui/vendor/uPlot.iife.min.js', base + '/ui/app.js']);
  await tid(page, 'ip-summary').waitFor();
  await shot(page, 'xss');
  clean(bad);
  await context.close();
});

test('the audit view shows the search with its purpose; subject view; retention; requisitions; audience; French', async () => {
  const { context, page, bad } = await open();
  await signIn(page, admin);
  await setPurpose(page);
  await search(page, '10.0.0.0/8');
  await tid(page, 'nav-audit').click();
  await tid(page, 'audit-row').first().waitFor();
  const row = tid(page, 'audit-row').filter({ hasText: '/v1/access' }).filter({ hasText: purpose }).first();
  await row.waitFor();
  assert.match(await row.textContent(), /10\.0\.0\.0\/8/);
  await shot(page, 'audit');
  await page.getByLabel('Data subject\'s IP address').fill('10.0.0.7');
  await tid(page, 'subject-search').click();
  await tid(page, 'subject-row').first().waitFor();
  assert.match(await tid(page, 'subject-row').first().textContent(), new RegExp(purpose));

  await tid(page, 'nav-connections').click();
  await search(page, '10.0.0.0/8', 1000);
  assert.equal(await tid(page, 'result-row').count(), rows, 'connection records');
  await shot(page, 'connections');

  await tid(page, 'nav-retention').click();
  await tid(page, 'retention-row').first().waitFor();
  const head = tid(page, 'chain-head-row').first();
  await head.waitFor();
  assert.match(await head.locator('code.hash').textContent(), /^[0-9a-f]{64}$/, 'the report names the head of each integrity chain');
  await shot(page, 'retention');
  await page.emulateMedia({ media: 'print' });
  assert.equal(await tid(page, 'print').isVisible(), false, 'controls are not printed');
  await shot(page, 'retention-print');
  await page.emulateMedia({ media: 'screen' });

  await tid(page, 'nav-requisitions').click();
  await page.getByText('Record a requisition').click();
  await page.getByLabel('Authority').fill('TJ Paris');
  await page.getByLabel('Officer', { exact: true }).fill('OPJ Martin');
  await page.getByLabel('Service', { exact: true }).fill('OCLCTIC');
  await page.getByLabel('Procedure reference').fill('PV 2026/123');
  // Received ten days ago, due three days ago: the register shows it overdue.
  const day = (n) => new Date(Date.now() - n * 86400e3).toISOString().slice(0, 10);
  await page.getByLabel('Date received').fill(day(10));
  await page.getByLabel('Answer due by').fill(day(3));
  await page.locator('details').first().getByLabel('IP address or CIDR network').fill('10.0.0.7');
  await tid(page, 'requisition-create').click();
  const reqRow = tid(page, 'requisition-row').filter({ hasText: 'TJ Paris' });
  await reqRow.waitFor();
  const dueText = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(day(3) + 'T00:00:00Z'));
  const dueCell = await reqRow.getByTestId('requisition-overdue').innerText();
  assert.ok(dueCell.includes(dueText) && dueCell.includes('overdue'), `due date cell ${JSON.stringify(dueCell)}, want ${dueText} and the word overdue`);
  assert.equal(await page.getByRole('columnheader', { name: 'Due', exact: true }).count(), 1, 'the register has a due date column');
  await page.getByRole('button', { name: 'Run', exact: true }).first().click();
  await tid(page, 'notice').filter({ hasText: 'Run done' }).waitFor();
  // Download the signed package.
  const [pkg] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download package' }).first().click()]);
  assert.match(pkg.suggestedFilename(), /^requisition-.*\.zip$/);
  assert.equal((await readFile(await pkg.path())).subarray(0, 2).toString(), 'PK');
  await page.getByRole('button', { name: 'Mark answered' }).first().click();
  await tid(page, 'notice').filter({ hasText: 'Answer recorded' }).waitFor();
  // A legal hold: create, then release.
  await page.getByText('Create a hold').click();
  const holdForm = page.locator('details').nth(1);
  await holdForm.getByLabel('Reference').fill('GEL-2026-1');
  await holdForm.getByLabel('IP address or CIDR network').fill('10.0.0.7');
  await tid(page, 'hold-create').click();
  await tid(page, 'hold-row').filter({ hasText: 'GEL-2026-1' }).waitFor();
  await shot(page, 'requisitions');
  await tid(page, 'hold-row').filter({ hasText: 'GEL-2026-1' }).getByRole('button', { name: 'Release' }).click();
  await tid(page, 'notice').filter({ hasText: 'Released' }).waitFor();

  await tid(page, 'nav-audience').click();
  await tid(page, 'audience-site').fill(site);
  await tid(page, 'audience-show').click();
  await tid(page, 'audience-chart').locator('canvas').waitFor();
  await shot(page, 'audience');

  await page.locator('#lang').selectOption('fr');
  await tid(page, 'nav-audit').filter({ hasText: 'Audit' }).waitFor();
  assert.equal(await tid(page, 'nav-search').textContent(), 'Recherche d\'accès');
  assert.equal(await tid(page, 'logout').textContent(), 'Se déconnecter');
  clean(bad);
  await context.close();
});

test('a role without rights neither sees nor reaches a view', async () => {
  const { context, page, bad } = await open();
  await signIn(page, analyst);
  await setPurpose(page);
  await tid(page, 'nav-search').waitFor();
  for (const nav of ['nav-audit', 'nav-requisitions', 'nav-retention', 'nav-audience']) {
    assert.equal(await tid(page, nav).count(), 0, `${nav} shown to an analyst`);
  }
  // A refused action shows the API's own words.
  await tid(page, 'search-ip').fill('not-an-address');
  await tid(page, 'search').click();
  await tid(page, 'error').filter({ hasText: 'ip must be an address or a CIDR network' }).waitFor();
  await page.evaluate(() => { location.hash = '#/audit'; });
  await tid(page, 'error').filter({ hasText: 'analyst' }).waitFor();
  assert.equal(await tid(page, 'audit-row').count(), 0);
  assert.equal(await tid(page, 'audit-search').count(), 0);
  // The API refuses too: an analyst's export of connection records.
  const refusal = await page.evaluate(async (tok) => {
    const r = await fetch('/v1/downloads', { method: 'POST', headers: { Authorization: 'Bearer ' + tok, 'X-Purpose': 'probe', 'Content-Type': 'application/json' }, body: '{"path":"/v1/connections","query":"","format":"csv"}' });
    return [r.status, (await r.json()).error.message];
  }, analyst);
  assert.deepEqual(refusal, [403, 'this export needs the officer role']);
  await shot(page, 'forbidden');
  clean(bad, [400, 403]);
  await context.close();
});

test('15 minutes without activity forget the token', async () => {
  const { context, page, bad } = await open();
  await context.clock.install();
  await signIn(page, admin);
  await setPurpose(page);
  await tid(page, 'search-ip').waitFor();
  await context.clock.fastForward('16:00');
  await tid(page, 'token').waitFor();
  await tid(page, 'error').filter({ hasText: '15 minutes' }).waitFor();
  assert.equal(await tid(page, 'search-ip').count(), 0);
  clean(bad);
  await context.close();
});

test('French from the browser\'s language, and readable at 200% zoom (half the width)', async () => {
  const { context, page, bad } = await open({ locale: 'fr-FR', viewport: { width: 640, height: 900 } });
  await page.goto(base + '/ui/');
  assert.equal(await tid(page, 'login').textContent(), 'Se connecter');
  await tid(page, 'token').fill(admin);
  await tid(page, 'login').click();
  await setPurpose(page, 'Réquisition n° 2026-17'); // not ASCII: sent as the purpose parameter
  await search(page, '10.0.0.0/8', 1000);
  assert.equal(await tid(page, 'count').textContent(), `${rows} lignes`);
  assert.match(await tid(page, 'tz').textContent(), /Fuseau horaire/);
  // Nothing but the tables (which scroll in their own box) is wider than the window.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
  await tid(page, 'nav-audit').click();
  await tid(page, 'audit-row').filter({ hasText: 'Réquisition n° 2026-17' }).first().waitFor();
  clean(bad);
  await context.close();
});

test('signs in with the identity provider (code flow with PKCE), searches with a purpose, signs out', async () => {
  const { context, page, bad } = await open();
  await page.goto(base + '/ui/');
  const button = tid(page, 'oidc-login');
  await button.waitFor();
  assert.equal(await button.textContent(), 'Sign in with Example SSO');
  // Keyboard only: the button has the focus; Enter goes to the provider,
  // which signs the person in and sends the browser back.
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'oidc-login');
  await page.keyboard.press('Enter');
  await tid(page, 'purpose').waitFor();
  assert.equal(await tid(page, 'whoami').textContent(), 'olivia@example.org (analyst)');
  // The provider's answer has left the address bar.
  assert.equal(page.url(), base + '/ui/');
  // The session is a cookie that page script cannot read; nothing in web storage.
  const cookies = await context.cookies(base);
  const sc = cookies.find((c) => c.name === 'connlog-session');
  assert.ok(sc && sc.httpOnly && sc.sameSite === 'Strict' && sc.path === '/', `session cookie ${JSON.stringify(cookies)}`);
  assert.ok(!cookies.some((c) => c.name === 'connlog-oidc-login'), 'the login cookie outlives the sign-in');
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, '']);
  // No purpose, no data; then the analyst's view works, and only it.
  assert.equal(await tid(page, 'search-ip').count(), 0);
  await setPurpose(page, 'INC-5151 console oidc e2e');
  await search(page, '10.0.0.0/8', 1000);
  assert.equal(await tid(page, 'result-row').count(), rows);
  assert.equal(await tid(page, 'nav-audit').count(), 0);
  // The export streams under the session too (its ticket carries it).
  const [download] = await Promise.all([page.waitForEvent('download'), tid(page, 'export-csv').click()]);
  const csv = (await readFile(await download.path(), 'utf8')).trim().split('\n');
  assert.equal(csv.length, rows + 1, 'header and every row');
  // A reload keeps the session (and asks for the purpose again).
  await page.reload();
  await tid(page, 'purpose').waitFor();
  assert.equal(await tid(page, 'whoami').textContent(), 'olivia@example.org (analyst)');
  // Sign out ends the session on the server: the cookie goes.
  await tid(page, 'logout').click();
  await tid(page, 'oidc-login').waitFor();
  for (let i = 0; i < 50 && (await context.cookies(base)).some((c) => c.name === 'connlog-session'); i++) await page.waitForTimeout(100);
  assert.ok(!(await context.cookies(base)).some((c) => c.name === 'connlog-session'), 'the session cookie outlives sign out');
  clean(bad, [], { viaIssuer: true });
  await context.close();
});

test('a provider answer this browser did not ask for shows the API\'s refusal; French button', async () => {
  const { context, page, bad } = await open({ locale: 'fr-FR' });
  // A forged callback (a code and state from elsewhere): refused, nobody signed in.
  await page.goto(base + '/ui/oidc/callback?code=forged&state=forged');
  await tid(page, 'error').filter({ hasText: 'this browser started no sign-in here' }).waitFor();
  assert.equal(await tid(page, 'oidc-login').textContent(), 'Se connecter avec Example SSO');
  assert.equal(await tid(page, 'purpose').count(), 0);
  assert.equal(page.url(), base + '/ui/');
  clean(bad, [401]);
  await context.close();
});
