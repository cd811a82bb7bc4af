// The dashboard in a real headless Chromium against a real `jobsmith serve`.
//
//   node dashboard.test.mjs --jobsmith build/apps/jobsmith --out build/tests/apps/dashboard
//   node dashboard.test.mjs --url http://127.0.0.1:7878 --out /tmp/x   (a server already running)
//
// The test starts the server on a free loopback port with a fresh data
// directory (no tokens: every caller is `local`), submits jobs and plays the
// worker itself over the HTTP API, and drives the page the way a person
// would: by roles and names. Nothing reloads the page after the first load,
// so every change it waits for arrived through the live event stream.
// On failure it writes a screenshot and the server's log to --out.
//
// Needs Debian's chromium and playwright-core in ./node_modules: both come
// from scripts/install-deps. Missing either is a failure, not a skip.

import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {parseArgs} from 'node:util';

const {values: opts} = parseArgs({
  options: {
    jobsmith: {type: 'string'},
    url: {type: 'string'},
    out: {type: 'string', default: process.cwd()},
    chromium: {type: 'string', default: process.env.JOBSMITH_CHROMIUM || '/usr/bin/chromium'},
    headed: {type: 'boolean', default: false},
  },
});

const WAIT_MS = 10_000;
const outDir = path.resolve(opts.out);
fs.mkdirSync(outDir, {recursive: true});
const screenshotPath = path.join(outDir, 'dashboard-failure.png');
const serverLogPath = path.join(outDir, 'dashboard-server.log');

let server = null;      // {child, dataDir, port, exited}
let serverDataDir = null;
let browser = null;
let page = null;
let passed = 0;
let failed = 0;
const pageErrors = [];

function log(...args) { console.log(...args); }

let bailing = false;
async function bail(message) {
  if (bailing) return;
  bailing = true;
  console.error(`FAIL: ${message}`);
  failed += 1;
  await cleanup();
  log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}

// Whatever ends the test early still ends the server it started: a signal
// (CTest's time-out sends SIGTERM first), an error outside a step, or the
// test's own deadline, which comes before CTest's (TIMEOUT 240).
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => bail(`stopped by ${sig}`));
process.on('unhandledRejection', (e) => bail(`unexpected error: ${e && e.stack ? e.stack : e}`));
setTimeout(() => bail('the whole test took longer than 200 s'), 200_000).unref();

// -- preconditions: say how to get them, never skip -------------------------------

if (!opts.jobsmith && !opts.url) await bail('pass --jobsmith <path of the jobsmith binary> (or --url of a running server)');
if (opts.jobsmith && !fs.existsSync(opts.jobsmith)) await bail(`no jobsmith binary at ${opts.jobsmith}: build the jobsmith target first`);
if (!fs.existsSync(opts.chromium))
  await bail(`no Chromium at ${opts.chromium}: run scripts/install-deps (it installs Debian's chromium and this test's node_modules)`);
let chromium;
try {
  ({chromium} = await import('playwright-core'));
} catch (e) {
  await bail(`cannot load playwright-core from ${path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules')} ` +
    `(${e.code || e.message}): run scripts/install-deps`);
}

// -- the server ------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

let base = opts.url ? opts.url.replace(/\/$/, '') : '';

async function startServer(dataDir, port, extraArgs = []) {
  const logFd = fs.openSync(serverLogPath, 'a');
  const child = spawn(opts.jobsmith, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, ...extraArgs],
    {stdio: ['ignore', logFd, logFd]});
  fs.closeSync(logFd);
  let exited = null;
  child.on('exit', (code, signal) => { exited = {code, signal}; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`jobsmith serve exited (${exited.signal || `code ${exited.code}`}) before it was ready; ` +
      `its log:\n${tail(serverLogPath)}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`jobsmith serve was not ready within 30 s; its log:\n${tail(serverLogPath)}`);
    await sleep(100);
  }
  return {child, dataDir, port, exited: () => exited};
}

/** Ends the server this test started (by its own PID, nothing else). */
async function stopServer() {
  if (!server) return;
  const {child} = server;
  const s = server;
  server = null;
  if (s.exited()) return;
  const done = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const t = setTimeout(() => { if (!s.exited()) child.kill('SIGKILL'); }, 10_000);
  await done;
  clearTimeout(t);
}

function tail(file, lines = 30) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- the API, as a producer and a worker ----------------------------------------------

let apiToken = '';  // the Bearer token of the test's own calls, once the server has tokens

async function call(method, p, body) {
  const headers = body === undefined ? {} : {'Content-Type': 'application/json'};
  if (apiToken) headers.Authorization = `Bearer ${apiToken}`;
  const res = await fetch(`${base}${p}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  if (!res.ok) throw new Error(`${method} ${p} answered ${res.status}: ${text}`);
  return data;
}

const submit = async (spec) => (await call('POST', '/v1/jobs', spec)).id;
const getJob = async (id) => (await call('GET', `/v1/jobs/${id}`)).job;

/** Leases exactly the job `id` from its own queue, as worker "dash-test". */
async function lease(queue, id) {
  const {jobs} = await call('POST', '/v1/workers/lease', {worker: 'dash-test', queues: [queue], max_jobs: 1, wait_ms: 5000});
  if (!jobs || jobs.length !== 1 || jobs[0].id !== id)
    throw new Error(`leasing from queue ${queue} gave ${JSON.stringify(jobs && jobs.map((j) => j.id))}, expected job ${id}`);
  return jobs[0];
}

// -- waiting for the page -----------------------------------------------------------

/**
 * Polls `probe` until it returns true. On time-out the error names what did
 * not happen and what `seen` (if given) shows at that moment.
 */
async function until(what, probe, {timeout = WAIT_MS, seen} = {}) {
  const deadline = Date.now() + timeout;
  let lastError = '';
  for (;;) {
    try {
      if ((await probe()) === true) return;
      lastError = '';
    } catch (e) { lastError = e.message; }
    if (Date.now() > deadline) {
      let detail = lastError;
      if (seen) { try { detail = await seen(); } catch (e) { detail = e.message; } }
      throw new Error(`${what} (waited ${timeout / 1000} s${detail ? `; seen: ${JSON.stringify(detail)}` : ''})`);
    }
    await sleep(100);
  }
}

async function textOf(locator) {
  return (await locator.count()) ? (await locator.first().innerText()).replace(/\s+/g, ' ').trim() : '';
}

const jobRow = (id) => page.locator(`#jobs tbody tr[data-job="${id}"]`);

async function rowState(id) {
  const row = jobRow(id);
  return (await row.count()) ? row.getAttribute('data-state') : null;
}

async function expectRowState(id, state) {
  await until(`job ${id} shows as ${state} in the jobs table`, async () => (await rowState(id)) === state,
    {seen: async () => `row state ${await rowState(id)}`});
}

async function expectJobPageState(id, state) {
  const want = `Job ${id} ${state.replace('_', ' ')}`;
  await until(`the page of job ${id} shows state "${state}"`, async () => (await textOf(page.locator('#job-heading'))) === want,
    {seen: () => textOf(page.locator('#job-heading'))});
}

async function expectApiState(id, state) {
  const job = await getJob(id);
  if (job.state !== state) throw new Error(`the API says job ${id} is ${job.state}, expected ${state}`);
  return job;
}

async function openJobFromTable(id) {
  if (await page.locator('#job-view').isVisible()) await page.getByRole('link', {name: '← All jobs'}).click();
  await page.getByRole('link', {name: `Job ${id}`, exact: true}).click();
  await until(`the page of job ${id} opens`, async () => (await textOf(page.locator('#job-heading'))).startsWith(`Job ${id} `),
    {seen: () => textOf(page.locator('#job-heading'))});
}

// -- the steps -------------------------------------------------------------------

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('; ')}`);
    passed += 1;
    log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    console.error(`FAIL ${name}: ${e.message}`);
    if (page) {
      try {
        await page.screenshot({path: screenshotPath, fullPage: true});
        console.error(`     screenshot: ${screenshotPath}`);
      } catch (se) { console.error(`     (no screenshot: ${se.message})`); }
    }
    if (server) console.error(`     server log: ${serverLogPath}`);
    await cleanup();
    log(`${passed} passed, ${failed} failed`);
    process.exit(1);
  }
}

async function cleanup() {
  if (browser) { await browser.close().catch(() => {}); browser = null; }
  await stopServer().catch(() => {});
  if (serverDataDir) fs.rmSync(serverDataDir, {recursive: true, force: true});
}

await step('jobsmith serve starts on a free loopback port', async () => {
  if (opts.url) return;
  fs.writeFileSync(serverLogPath, '');
  serverDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobsmith-dash-'));
  const port = await freePort();
  server = await startServer(serverDataDir, port);
  base = `http://127.0.0.1:${port}`;
});

await step('the page and its files are served with their content types', async () => {
  for (const [p, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/format.js', 'text/javascript'], ['/ui/api.js', 'text/javascript'], ['/ui/style.css', 'text/css']]) {
    const res = await fetch(`${base}${p}`);
    const got = res.headers.get('content-type') || '';
    if (res.status !== 200 || !got.startsWith(type)) throw new Error(`GET ${p}: ${res.status} ${got}, expected 200 ${type}`);
  }
  const missing = await fetch(`${base}/ui/nothing-here.js`);
  if (missing.status !== 404) throw new Error(`GET /ui/nothing-here.js answered ${missing.status}, expected 404`);
});

await step('the dashboard opens in Chromium and its event stream goes live', async () => {
  browser = await chromium.launch({executablePath: opts.chromium, headless: !opts.headed});
  const context = await browser.newContext({viewport: {width: 1400, height: 1000}});
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${base}/`);
  await page.getByRole('heading', {name: 'Queues', exact: true}).waitFor({timeout: WAIT_MS});
  await page.getByRole('heading', {name: 'Jobs', exact: true}).waitFor({timeout: WAIT_MS});
  const status = page.getByRole('status', {name: 'Live updates'});
  await until('the stream status says "live"', async () => (await textOf(status)) === 'live');
  // Set once; a reload would lose it, so its presence later proves the
  // page changed by itself.
  await page.evaluate(() => { window.__notReloaded = true; });
});

let liveId;
await step('a submitted job appears and goes to succeeded live, without a reload', async () => {
  liveId = await submit({kind: 'dash.report', queue: 'dash-live', payload: {n: 1}});
  await expectRowState(liveId, 'queued');
  const leased = await lease('dash-live', liveId);
  await expectRowState(liveId, 'running');
  await call('POST', `/v1/jobs/${liveId}/complete`, {lease_token: leased.lease_token, result: {rows: 3}});
  await expectRowState(liveId, 'succeeded');
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error('the page was reloaded');
});

await step('the queue shows its counts and a finished-per-minute rate from the stream', async () => {
  const row = page.locator('#queues tbody tr[data-queue="dash-live"]');
  await until('queue dash-live shows 1 succeeded', async () => (await textOf(row.locator('td[data-state="succeeded"]'))) === '1',
    {seen: () => textOf(row)});
  await until('queue dash-live shows 1 finished per minute', async () => (await textOf(row.locator('td.rate').first())) === '1',
    {seen: () => textOf(row)});
});

let reviewId;
await step('a job that needs review reaches pending_review; Review → Accept accepts it', async () => {
  reviewId = await submit({kind: 'dash.chart', queue: 'dash-review', review_required: true, payload: {chart: 'sales'}});
  await expectRowState(reviewId, 'queued');
  const leased = await lease('dash-review', reviewId);
  await call('POST', `/v1/jobs/${reviewId}/heartbeat`, {
    lease_token: leased.lease_token, detail: 'rendering', percent: 50,
    lines: [{level: 'info', text: 'rendered 3 charts'}, {level: 'warn', text: 'one axis clipped'}],
  });
  await call('POST', `/v1/jobs/${reviewId}/complete`, {lease_token: leased.lease_token, result: {charts: 3}});
  await expectRowState(reviewId, 'pending_review');

  await openJobFromTable(reviewId);
  await expectJobPageState(reviewId, 'pending_review');
  await page.getByRole('button', {name: 'Review', exact: true}).click();
  const dialog = page.getByRole('dialog', {name: `Review job ${reviewId}`});
  await dialog.waitFor({timeout: WAIT_MS});
  await dialog.getByRole('textbox', {name: 'Comment'}).fill('charts look right');
  await dialog.getByRole('button', {name: 'Accept'}).click();
  await expectJobPageState(reviewId, 'accepted');
  const job = await expectApiState(reviewId, 'accepted');
  if (job.review_comment !== 'charts look right') throw new Error(`review_comment is ${JSON.stringify(job.review_comment)}`);
});

await step('the job page shows the timeline, the log lines and the result', async () => {
  const types = async () => (await page.locator('#job-timeline tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.type)))
    .filter((t) => want.includes(t));
  const want = ['job.submitted', 'job.started', 'job.progress', 'job.succeeded', 'job.reviewed'];
  await until(`the timeline lists ${want.join(', ')} in order`, async () => JSON.stringify(await types()) === JSON.stringify(want),
    {seen: types});
  const reviewed = page.locator('#job-timeline tbody tr[data-type="job.reviewed"]');
  const reviewedText = await textOf(reviewed);
  if (!/local/.test(reviewedText) || !/accepted: charts look right/.test(reviewedText))
    throw new Error(`the job.reviewed row reads "${reviewedText}", expected principal local and "accepted: charts look right"`);
  const started = await textOf(page.locator('#job-timeline tbody tr[data-type="job.started"]'));
  if (!/attempt 1 by dash-test/.test(started)) throw new Error(`the job.started row reads "${started}"`);
  const logText = await textOf(page.getByRole('table', {name: 'Log'}));
  if (!logText.includes('rendered 3 charts') || !logText.includes('one axis clipped'))
    throw new Error(`the log reads "${logText}", expected both heartbeat lines`);
  const result = JSON.parse(await page.locator('#job-result').innerText());
  if (result.charts !== 3) throw new Error(`the result reads ${JSON.stringify(result)}`);
});

let cancelId;
await step('Cancel on a queued job cancels it; Retry brings it back', async () => {
  cancelId = await submit({kind: 'dash.idle', queue: 'dash-idle'});
  await openJobFromTable(cancelId);
  await expectJobPageState(cancelId, 'queued');
  await page.getByRole('button', {name: 'Cancel', exact: true}).click();
  const dialog = page.getByRole('dialog', {name: `Cancel job ${cancelId}`});
  await dialog.waitFor({timeout: WAIT_MS});
  await dialog.getByRole('textbox', {name: /Reason/}).fill('not needed');
  await dialog.getByRole('button', {name: 'Cancel job'}).click();
  await expectJobPageState(cancelId, 'cancelled');
  await expectApiState(cancelId, 'cancelled');
  const cancelled = await textOf(page.locator('#job-timeline tbody tr[data-type="job.cancelled"]'));
  if (!cancelled.includes('not needed')) throw new Error(`the job.cancelled row reads "${cancelled}"`);

  await page.getByRole('button', {name: 'Retry', exact: true}).click();
  await expectJobPageState(cancelId, 'queued');
  await expectApiState(cancelId, 'queued');
});

await step('Run now makes a delayed job due', async () => {
  const id = await submit({kind: 'dash.later', queue: 'dash-idle', delay: 3_600_000});
  await openJobFromTable(id);
  await expectJobPageState(id, 'scheduled');
  await page.getByRole('button', {name: 'Run now', exact: true}).click();
  await expectJobPageState(id, 'queued');
  await expectApiState(id, 'queued');
});

await step('a job waiting for a lock says which job holds it', async () => {
  const holder = await submit({kind: 'dash.lock', queue: 'dash-locks', resources: ['db:charts']});
  await lease('dash-locks', holder);
  const waiter = await submit({kind: 'dash.lock', queue: 'dash-locks', resources: ['db:charts']});
  // The engine tries the lock when a worker asks for the job; until then the
  // job is only "ready". A lease that gets nothing moves it to "locking".
  const {jobs} = await call('POST', '/v1/workers/lease', {worker: 'dash-test', queues: ['dash-locks'], max_jobs: 1, wait_ms: 300});
  if (jobs.length) throw new Error(`job ${jobs[0].id} was leased while job ${holder} holds db:charts`);
  await openJobFromTable(waiter);
  const waits = page.getByRole('list', {name: 'Lock waits'});
  await until(`job ${waiter}'s page says it waits for db:charts held by job ${holder}`, async () => {
    const text = await textOf(waits);
    return text.includes('waiting for db:charts') && text.includes(`held by job ${holder}`);
  }, {seen: async () => `${await textOf(page.locator('#job-explanation'))} | ${await textOf(waits)}`});
  await page.getByRole('link', {name: `job ${holder}`, exact: true}).click();
  await expectJobPageState(holder, 'running');
});

await step('the jobs table filters by state, kind and queue, and pages', async () => {
  await page.evaluate(() => { location.hash = '#/'; });
  await page.getByRole('combobox', {name: 'State', exact: true}).selectOption('accepted');
  await until('only accepted jobs are listed', async () => {
    const states = await page.locator('#jobs tbody tr[data-job]').evaluateAll((rows) => rows.map((r) => r.dataset.state));
    return states.length === 1 && states[0] === 'accepted' && (await rowState(reviewId)) === 'accepted';
  }, {seen: () => page.locator('#jobs tbody tr[data-job]').evaluateAll((rows) => rows.map((r) => `${r.dataset.job}:${r.dataset.state}`))});
  await page.getByRole('button', {name: 'Clear filters'}).click();
  await page.getByRole('textbox', {name: 'Kind', exact: true}).fill('dash.chart');
  await page.getByRole('button', {name: 'Apply filters'}).click();
  await until('only the dash.chart job is listed', async () => {
    const ids = await page.locator('#jobs tbody tr[data-job]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.job)));
    return ids.length === 1 && ids[0] === reviewId;
  }, {seen: () => page.locator('#jobs tbody tr[data-job]').evaluateAll((rows) => rows.map((r) => r.dataset.job))});
  await page.getByRole('button', {name: 'Clear filters'}).click();
  await until('the kind filter is cleared', async () => (await page.getByRole('textbox', {name: 'Kind', exact: true}).inputValue()) === '');
  const {ids} = await call('POST', '/v1/jobs', {jobs: Array.from({length: 30}, (_, i) => ({kind: 'dash.many', queue: 'dash-page', payload: {i}}))});
  await page.getByRole('combobox', {name: 'Queue', exact: true}).fill('dash-page');
  await page.getByRole('combobox', {name: 'Per page', exact: true}).selectOption('25');
  await until('the first page lists 25 jobs of queue dash-page',
    async () => (await page.locator('#jobs tbody tr[data-job]').count()) === 25 && (await rowState(ids[0])) === 'queued');
  await page.getByRole('button', {name: 'Next page'}).click();
  await until('the second page lists the last 5', async () => (await page.locator('#jobs tbody tr[data-job]').count()) === 5 &&
    (await rowState(ids[29])) === 'queued');
  if (!(await page.getByRole('button', {name: 'Next page'}).isDisabled())) throw new Error('Next page is enabled on the last page');
  await page.getByRole('button', {name: 'Previous page'}).click();
  await until('back on the first page', async () => (await rowState(ids[0])) === 'queued');
});

await step('an API error is shown with its message', async () => {
  await page.evaluate(() => { location.hash = '#/jobs/987654321'; });
  const alert = page.getByRole('alert');
  await until('an alert says job 987654321 was not found', async () => /404/.test(await textOf(alert)) && /987654321/.test(await textOf(alert)),
    {seen: () => textOf(alert)});
  await page.getByRole('button', {name: 'Dismiss error'}).click();
  await until('the alert is dismissed', async () => !(await alert.isVisible()));
});

await step('a page from another loopback origin cannot write through the server', async () => {
  // Without tokens every caller is admin: only the browser checks (Origin,
  // Sec-Fetch-Site, Content-Type) keep another page's requests out.
  const victim = await submit({kind: 'dash.csrf', queue: 'dash-csrf', run_at: Date.now() + 3_600_000});
  const {createServer} = await import('node:http');
  const otherPort = await freePort();
  const other = createServer((req, res) => {
    res.writeHead(200, {'Content-Type': 'text/html'});
    res.end('<!doctype html><title>elsewhere</title><p>another site</p>');
  });
  await new Promise((resolve) => other.listen(otherPort, '127.0.0.1', resolve));
  try {
    const headBefore = (await call('GET', '/readyz')).head;
    const evil = await browser.newPage();
    await evil.goto(`http://127.0.0.1:${otherPort}/`);
    const writes = [
      ['/v1/jobs', '{"kind":"x"}'],
      [`/v1/jobs/${victim}/cancel`, '{}'],
      [`/v1/jobs/${victim}/run-now`, ''],
      ['/v1/queues/dash-csrf/pause', ''],
      ['/v1/admin/backup', `{"to":"${path.join(os.tmpdir(), `jobsmith-csrf-${otherPort}`)}"}`],
    ];
    const outcomes = await evil.evaluate(async ({target, writes}) => {
      const out = [];
      for (const [p, body] of writes) {
        // A "simple" request: sent without a preflight, answer unreadable.
        try {
          await fetch(target + p, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body});
          out.push(`${p}: sent (no-cors)`);
        } catch (e) { out.push(`${p}: ${e.message}`); }
        // Typed as JSON: the browser asks first and the server never agrees.
        try {
          await fetch(target + p, {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
          out.push(`${p}: sent (cors)`);
        } catch (e) { out.push(`${p}: refused by the browser (cors)`); }
      }
      return out;
    }, {target: base, writes});
    await evil.close();
    const headAfter = (await call('GET', '/readyz')).head;
    if (headAfter !== headBefore)
      throw new Error(`the log moved from ${headBefore} to ${headAfter} after the other page's requests: ${outcomes.join('; ')}`);
    const job = await getJob(victim);
    if (job.state !== 'scheduled') throw new Error(`job ${victim} is ${job.state}, expected scheduled`);
    if (fs.existsSync(path.join(os.tmpdir(), `jobsmith-csrf-${otherPort}`))) throw new Error('the other page made a backup');
  } finally {
    other.close();
  }
});

await step('the stream reconnects after a server restart and the page keeps updating', async () => {
  if (opts.url) return;  // not our server to restart
  await page.evaluate(() => { location.hash = '#/'; });
  const {dataDir, port} = server;
  await stopServer();
  const status = page.getByRole('status', {name: 'Live updates'});
  await until('the stream status leaves "live"', async () => (await textOf(status)) !== 'live');
  server = await startServer(dataDir, port);
  await until('the stream status is "live" again', async () => (await textOf(status)) === 'live',
    {timeout: 40_000, seen: () => textOf(status)});
  const id = await submit({kind: 'dash.after-restart', queue: 'dash-live'});
  await expectRowState(id, 'queued');
  const leased = await lease('dash-live', id);
  await call('POST', `/v1/jobs/${id}/complete`, {lease_token: leased.lease_token, result: null});
  await expectRowState(id, 'succeeded');
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error('the page was reloaded');
});

await step('with tokens: a 401 is shown; the pasted token is kept, streams and acts as its principal', async () => {
  if (opts.url) return;
  const {dataDir, port} = server;
  const tokensFile = path.join(dataDir, '..', `${path.basename(dataDir)}-tokens.json`);
  fs.writeFileSync(tokensFile, JSON.stringify({tokens: [
    {name: 'alice', token: 'alice-s3cret', role: 'admin'},
    {name: 'robot', token: 'robot-w0rk', role: 'worker'},
  ]}));
  try {
    await stopServer();
    server = await startServer(dataDir, port, ['--tokens', tokensFile]);
  } finally {
    fs.rmSync(tokensFile, {force: true});
  }
  const alert = page.getByRole('alert');
  await until('the page says the server wants a token (401)', async () => /401/.test(await textOf(alert)),
    {timeout: 40_000, seen: () => textOf(alert)});
  const status = page.getByRole('status', {name: 'Live updates'});
  if ((await textOf(status)) === 'live') throw new Error('the stream claims to be live without a token');

  await page.getByLabel('API token').fill('alice-s3cret');
  await page.getByRole('button', {name: 'Save token'}).click();
  await until('the stream is live with the token', async () => (await textOf(status)) === 'live', {seen: () => textOf(status)});
  await until('the error is gone', async () => !(await alert.isVisible()), {seen: () => textOf(alert)});
  if ((await page.evaluate(() => localStorage.getItem('jobsmith.token'))) !== 'alice-s3cret')
    throw new Error('the token is not in local storage');

  apiToken = 'robot-w0rk';  // the worker's calls; the submit is alice's
  const id = (await (await fetch(`${base}/v1/jobs`, {
    method: 'POST', headers: {'Content-Type': 'application/json', Authorization: 'Bearer alice-s3cret'},
    body: JSON.stringify({kind: 'dash.secure', queue: 'dash-secure', review_required: true}),
  })).json()).id;
  await expectRowState(id, 'queued');
  const leased = await lease('dash-secure', id);
  await call('POST', `/v1/jobs/${id}/complete`, {lease_token: leased.lease_token, result: {ok: true}});
  await expectRowState(id, 'pending_review');
  await openJobFromTable(id);
  await page.getByRole('button', {name: 'Review', exact: true}).click();
  const dialog = page.getByRole('dialog', {name: `Review job ${id}`});
  await dialog.getByRole('textbox', {name: 'Comment'}).fill('no');
  await dialog.getByRole('button', {name: 'Decline'}).click();
  await expectJobPageState(id, 'declined');
  const reviewed = await textOf(page.locator('#job-timeline tbody tr[data-type="job.reviewed"]'));
  if (!/alice/.test(reviewed) || !/declined: no/.test(reviewed))
    throw new Error(`the job.reviewed row reads "${reviewed}", expected principal alice and "declined: no"`);
  await page.screenshot({path: path.join(outDir, 'dashboard.png'), fullPage: true});
});

await cleanup();
log(`${passed} passed, ${failed} failed`);
