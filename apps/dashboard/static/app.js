// The jobsmith dashboard: queues, jobs and one job's story, kept current by
// the server's event stream. Plain DOM, no framework; the API is
// docs/api.md. Every value from the server goes into the page as text
// (textContent), never as markup.

import {$, h, fmtTime, timeCell, stateBadge, progressText, fact, details, finishKind,
  filterLink, filtersHash, coalesce} from './format.js';
import {api, showError, clearError, getToken, setToken} from './api.js';

const STATES = ['scheduled', 'queued', 'running', 'pending_review', 'succeeded',
  'accepted', 'declined', 'discarded', 'cancelled', 'expired'];
const LIVE_STATES = new Set(['scheduled', 'queued', 'running', 'pending_review']);
const RETRYABLE_STATES = new Set(['discarded', 'expired', 'declined', 'cancelled']);
// Every event type the engine writes (events/event.hpp). The stream names
// each event by its type, and EventSource only hands named events to
// listeners registered for that name.
const EVENT_TYPES = ['job.submitted', 'job.started', 'job.progress', 'job.succeeded',
  'job.failed', 'job.reclaimed', 'job.discarded', 'job.cancelled', 'job.reviewed',
  'job.requested', 'job.expired', 'queue.paused', 'queue.resumed', 'queue.configured',
  'schedule.created', 'schedule.deleted', 'engine.started', 'kind.configured',
  'job.cancel_requested'];
const RATE_WINDOW_MS = 60_000;

$('#error-close').addEventListener('click', clearError);

// -- what the page knows ---------------------------------------------------------

const jobQueue = new Map();   // job id -> queue name, for per-queue rates
const finished = [];          // {at, job, failed}: finishing events seen live
const lookups = new Set();    // job ids whose queue is being fetched
let queues = [];
let lastSeq = 0;              // the last event the stream delivered

function learnQueue(job) {
  if (job && job.id && job.spec) jobQueue.set(job.id, job.spec.queue || 'default');
}

async function lookUpQueue(id) {
  if (jobQueue.has(id) || lookups.has(id)) return;
  lookups.add(id);
  try {
    const data = await api('GET', `/v1/jobs/${id}`);
    learnQueue(data.job);
    renderQueues();
  } catch { /* the rate stays unattributed; not worth an error banner */ } finally {
    lookups.delete(id);
  }
}

function rates(now = Date.now()) {
  while (finished.length && finished[0].at < now - RATE_WINDOW_MS) finished.shift();
  const byQueue = new Map();
  for (const f of finished) {
    const q = jobQueue.get(f.job);
    if (q === undefined) continue;
    const r = byQueue.get(q) || {done: 0, failed: 0};
    r.done += 1;
    if (f.failed) r.failed += 1;
    byQueue.set(q, r);
  }
  return byQueue;
}

// -- routing -------------------------------------------------------------------

/** #/ (with ?state=&queue=&kind=&limit=) or #/jobs/<id>. */
function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const m = path.match(/^\/jobs\/(\d+)$/);
  if (m) return {view: 'job', id: Number(m[1])};
  return {view: 'overview', params: new URLSearchParams(query)};
}

let route = parseRoute();

function onRoute() {
  route = parseRoute();
  $('#overview-view').hidden = route.view !== 'overview';
  $('#job-view').hidden = route.view !== 'job';
  if (route.view === 'job') {
    openJob(route.id);
  } else {
    closeJob();
    readFilters(route.params);
    pageStack = [];
    cursor = null;
    loadJobs.now();
    loadQueues.now();
  }
}

// -- queues ------------------------------------------------------------------------

const loadQueues = coalesce(async () => {
  try {
    const data = await api('GET', '/v1/queues');
    queues = data.queues || [];
    renderQueues();
  } catch (e) { showError(e, 'loading queues'); }
}, 400);

function renderQueues() {
  const table = $('#queues');
  const head = table.tHead.rows[0];
  if (!head.cells.length) {
    head.append(h('th', {scope: 'col'}, 'Queue'), h('th', {scope: 'col'}, 'Status'),
      h('th', {scope: 'col', title: 'concurrency limit, 0 = unlimited'}, 'Limit'),
      h('th', {scope: 'col', title: 'queued jobs waiting for a resource lock'}, 'Locking'),
      ...STATES.map((s) => h('th', {scope: 'col'}, s.replace('_', ' '))),
      h('th', {scope: 'col'}, 'Finished / min'), h('th', {scope: 'col'}, 'Failed / min'),
      h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Actions')));
  }
  const r = rates();
  const body = h('tbody');
  if (!queues.length) body.append(h('tr', {}, h('td', {colspan: 7 + STATES.length, class: 'empty'}, 'No queues yet.')));
  for (const q of queues) {
    const counts = q.counts || {};
    const rate = r.get(q.name) || {done: 0, failed: 0};
    body.append(h('tr', {'data-queue': q.name},
      h('th', {scope: 'row'}, filterLink({queue: q.name}, q.name, `Jobs in queue ${q.name}`)),
      h('td', {}, q.paused ? h('span', {class: 'paused'}, 'paused') : 'active'),
      h('td', {class: 'num'}, q.concurrency ? q.concurrency : '∞'),
      h('td', {class: 'num'}, q.locking ?? ''),
      ...STATES.map((s) => h('td', {class: 'num', 'data-state': s},
        counts[s] ? filterLink({queue: q.name, state: s}, counts[s], `${counts[s]} ${s} jobs in queue ${q.name}`) : '0')),
      h('td', {class: 'num rate'}, String(rate.done)),
      h('td', {class: 'num rate'}, String(rate.failed)),
      h('td', {}, h('button', {type: 'button', class: 'small', 'aria-label': `${q.paused ? 'Resume' : 'Pause'} queue ${q.name}`,
        onclick: () => queueAction(q.name, q.paused ? 'resume' : 'pause')},
      q.paused ? 'Resume' : 'Pause'))));
  }
  table.tBodies[0].replaceWith(body);
  const names = $('#queue-names');
  names.replaceChildren(...queues.map((q) => h('option', {value: q.name})));
}

async function queueAction(name, what) {
  clearError();
  try {
    await api('POST', `/v1/queues/${encodeURIComponent(name)}/${what}`);
    loadQueues.now();
  } catch (e) { showError(e, `${what} queue ${name}`); }
}

// -- the jobs table ------------------------------------------------------------------

let filters = {state: '', queue: '', kind: '', limit: '50'};
let cursor = null;       // `after` of the page shown (null: first page)
let pageStack = [];      // cursors of the pages before it
let nextCursor = null;
let shownJobs = [];

function readFilters(params) {
  filters = {
    state: params.get('state') || '',
    queue: params.get('queue') || '',
    kind: params.get('kind') || '',
    limit: params.get('limit') || '50',
  };
  $('#filter-state').value = filters.state;
  $('#filter-queue').value = filters.queue;
  $('#filter-kind').value = filters.kind;
  if (![...$('#filter-limit').options].some((o) => o.value === filters.limit))
    $('#filter-limit').append(h('option', {}, filters.limit));
  $('#filter-limit').value = filters.limit;
}

const loadJobs = coalesce(async () => {
  if (route.view !== 'overview') return;
  const q = new URLSearchParams();
  if (filters.state) q.set('state', filters.state);
  if (filters.queue) q.set('queue', filters.queue);
  if (filters.kind) q.set('kind', filters.kind);
  q.set('limit', filters.limit);
  if (cursor !== null) q.set('after', cursor);
  try {
    const data = await api('GET', `/v1/jobs?${q}`);
    shownJobs = data.jobs || [];
    nextCursor = data.next ?? null;
    shownJobs.forEach(learnQueue);
    renderJobs();
    wakeAtNextDue(shownJobs);
  } catch (e) { showError(e, 'loading jobs'); }
}, 250);

function renderJobs() {
  const body = h('tbody');
  if (!shownJobs.length)
    body.append(h('tr', {}, h('td', {colspan: 10, class: 'empty'}, 'No jobs match.')));
  for (const job of shownJobs) {
    body.append(h('tr', {'data-job': job.id, 'data-state': job.state},
      h('th', {scope: 'row'}, h('a', {href: `#/jobs/${job.id}`}, `Job ${job.id}`)),
      h('td', {}, job.spec.queue),
      h('td', {}, job.spec.kind),
      h('td', {}, stateBadge(job.state)),
      h('td', {class: 'num'}, `${job.attempts}/${job.max_attempts}`),
      h('td', {}, progressText(job)),
      timeCell(job.submitted_at),
      timeCell(job.finished_at),
      h('td', {class: 'error-text'}, job.last_error || '')));
  }
  $('#jobs').tBodies[0].replaceWith(body);
  const page = pageStack.length + 1;
  $('#page-info').textContent = `Page ${page} · ${shownJobs.length} job${shownJobs.length === 1 ? '' : 's'}`;
  $('#page-prev').disabled = pageStack.length === 0;
  $('#page-first').disabled = pageStack.length === 0;
  $('#page-next').disabled = nextCursor === null;
}

$('#filter-state').append(...STATES.map((s) => h('option', {value: s}, s.replace('_', ' '))));

$('#filters').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = {
    state: $('#filter-state').value,
    queue: $('#filter-queue').value.trim(),
    kind: $('#filter-kind').value.trim(),
    limit: $('#filter-limit').value,
  };
  const target = filtersHash(f);
  if (location.hash === target || (target === '#/' && !location.hash)) onRoute();
  else location.hash = target;
});
$('#filter-state').addEventListener('change', () => $('#filters').requestSubmit());
$('#filter-limit').addEventListener('change', () => $('#filters').requestSubmit());
$('#filters-clear').addEventListener('click', () => { location.hash = '#/'; });

$('#page-next').addEventListener('click', () => {
  if (nextCursor === null) return;
  pageStack.push(cursor);
  cursor = nextCursor;
  loadJobs.now();
});
$('#page-prev').addEventListener('click', () => {
  if (!pageStack.length) return;
  cursor = pageStack.pop();
  loadJobs.now();
});
$('#page-first').addEventListener('click', () => {
  pageStack = [];
  cursor = null;
  loadJobs.now();
});

// A scheduled job becomes queued by time alone, with no event: look again
// when the first shown one is due.
let dueTimer = null;
function wakeAtNextDue(jobs) {
  clearTimeout(dueTimer);
  const now = Date.now();
  const due = jobs.filter((j) => j.state === 'scheduled' && j.due_at > now).map((j) => j.due_at);
  if (!due.length) return;
  const wait = Math.min(Math.min(...due) - now + 50, 2 ** 31 - 1);
  dueTimer = setTimeout(() => { loadQueues(); loadJobs(); loadOpenJob(); }, wait);
}

// -- one job ----------------------------------------------------------------------

let openId = null;
let openJobData = null;   // {job, explanation}
let timeline = [];        // events of the open job, by seq
let timelineSeqs = new Set();

function closeJob() {
  openId = null;
  openJobData = null;
}

function openJob(id) {
  if (openId !== id) {
    openId = id;
    openJobData = null;
    timeline = [];
    timelineSeqs = new Set();
    $('#job-heading').textContent = `Job ${id}`;
    $('#job-facts').replaceChildren();
    $('#job-actions').replaceChildren();
    $('#job-explanation').textContent = 'Loading…';
    $('#job-lock-waits').replaceChildren();
    $('#job-result').textContent = '';
    $('#job-payload').textContent = '';
    renderTimeline();
  }
  loadOpenJob.now();
}

const loadOpenJob = coalesce(async () => {
  if (openId === null) return;
  const id = openId;
  try {
    const data = await api('GET', `/v1/jobs/${id}`);
    if (openId !== id) return;
    for (const ev of data.history || []) addToTimeline(ev);
    showJob(data.job, data.explanation);
  } catch (e) {
    if (openId !== id) return;
    $('#job-explanation').textContent = '';
    showError(e, `loading job ${id}`);
  }
}, 300);

function addToTimeline(ev) {
  if (timelineSeqs.has(ev.seq)) return false;
  timelineSeqs.add(ev.seq);
  timeline.push(ev);
  if (timeline.length > 1 && timeline[timeline.length - 2].seq > ev.seq) timeline.sort((a, b) => a.seq - b.seq);
  return true;
}

function showJob(job, explanation) {
  openJobData = {job, explanation};
  learnQueue(job);
  const spec = job.spec || {};
  $('#job-heading').replaceChildren(`Job ${job.id} `, stateBadge(job.state));
  const resources = (spec.resources || []).map((r) => (typeof r === 'string' ? r : `${r.name} (${r.mode})`)).join(', ');
  $('#job-facts').replaceChildren(
    ...fact('State', job.state),
    ...fact('Queue', spec.queue),
    ...fact('Kind', spec.kind),
    ...fact('Priority', String(spec.priority ?? 0)),
    ...fact('Attempts', `${job.attempts} of ${job.max_attempts}`),
    ...fact('Worker', job.worker),
    ...fact('Progress', progressText(job)),
    ...fact('Submitted', fmtTime(job.submitted_at)),
    ...fact('Due', fmtTime(job.due_at)),
    ...fact('Started', fmtTime(job.started_at)),
    ...fact('Finished', fmtTime(job.finished_at)),
    ...fact('Resources', resources),
    ...fact('Unique key', spec.unique_key),
    ...fact('Review required', spec.review_required ? 'yes' : ''),
    ...fact('Reviewer', job.reviewer),
    ...fact('Review comment', job.review_comment),
    ...fact('Last error', job.last_error),
    ...fact('Events', String(job.event_count ?? timeline.length)),
  );
  $('#job-actions').replaceChildren(...actionButtons(job));

  const ex = explanation || {};
  $('#job-explanation').textContent = ex.text ? `${ex.phase ? `${ex.phase}: ` : ''}${ex.text}` : (ex.phase || '');
  const jobLinks = (ids) => ids.flatMap((hid, i) => [i ? ', ' : '', h('a', {href: `#/jobs/${hid}`}, `job ${hid}`)]);
  $('#job-lock-waits').replaceChildren(...(ex.lock_waits || []).map((w) => h('li', {},
    `waiting for ${w.resource} (${w.mode})`,
    w.holders && w.holders.length ? [' held by ', ...jobLinks(w.holders)] : '',
    w.queued_ahead && w.queued_ahead.length ? ['; queued ahead: ', ...jobLinks(w.queued_ahead)] : '')));

  const hasResult = job.result !== undefined && (job.result !== null || ['succeeded', 'pending_review', 'accepted', 'declined'].includes(job.state));
  $('#job-result').textContent = hasResult ? JSON.stringify(job.result, null, 2) : '(none)';
  $('#job-payload').textContent = JSON.stringify(spec.payload, null, 2) ?? '';
  renderTimeline();
  wakeAtNextDue([job]);
}

function renderTimeline() {
  const body = h('tbody');
  const log = h('tbody');
  for (const ev of timeline) {
    body.append(h('tr', {'data-seq': ev.seq, 'data-type': ev.type},
      h('td', {class: 'num'}, String(ev.seq)),
      timeCell(ev.time, true),
      h('td', {}, h('span', {class: `etype etype-${ev.type.replace('.', '-')}`}, ev.type)),
      h('td', {}, ev.principal || ''),
      h('td', {class: 'details'}, details(ev))));
    if (ev.type === 'job.progress')
      for (const line of (ev.body && ev.body.lines) || [])
        log.append(h('tr', {class: `log-${line.level}`},
          timeCell(line.time || ev.time, true),
          h('td', {class: 'num'}, String(ev.body.attempt ?? '')),
          h('td', {}, line.level || 'info'),
          h('td', {class: 'log-text'}, line.text)));
  }
  if (!timeline.length) body.append(h('tr', {}, h('td', {colspan: 5, class: 'empty'}, 'No events yet.')));
  if (!log.rows.length) log.append(h('tr', {}, h('td', {colspan: 4, class: 'empty'}, 'No log lines.')));
  $('#job-timeline').tBodies[0].replaceWith(body);
  $('#job-log').tBodies[0].replaceWith(log);
}

// -- actions -------------------------------------------------------------------------

function actionButtons(job) {
  const buttons = [];
  const btn = (text, cls, onclick) => h('button', {type: 'button', class: cls, onclick}, text);
  if (job.state === 'pending_review') buttons.push(btn('Review', 'primary', () => openReview(job)));
  if (job.state === 'scheduled') buttons.push(btn('Run now', '', () => act(job, 'run-now')));
  if (RETRYABLE_STATES.has(job.state)) buttons.push(btn('Retry', '', () => act(job, 'retry')));
  if (LIVE_STATES.has(job.state)) buttons.push(btn('Cancel', 'danger', () => openCancel(job)));
  if (!buttons.length) buttons.push(h('span', {class: 'hint'}, `Nothing to do: the job is ${job.state.replace('_', ' ')}.`));
  return buttons;
}

async function act(job, what, body) {
  clearError();
  try {
    const data = await api('POST', `/v1/jobs/${job.id}/${what}`, body);
    if (data.job && openId === data.job.id) {
      // The answer has the new state at once; the explanation and the
      // events come with the reload.
      showJob(data.job, {phase: '', text: '…', lock_waits: []});
      loadOpenJob.now();
    }
    loadJobs();
    loadQueues();
  } catch (e) {
    showError(e, `${what.replace('-', ' ')} job ${job.id}`);
  }
}

function openReview(job) {
  const dialog = $('#review-dialog');
  $('#review-heading').textContent = `Review job ${job.id}`;
  $('#review-comment').value = '';
  dialog.onclose = () => {
    const choice = dialog.returnValue;
    dialog.returnValue = '';
    if (choice === 'accept' || choice === 'decline')
      act(job, 'review', {accept: choice === 'accept', comment: $('#review-comment').value});
  };
  dialog.showModal();
  $('#review-comment').focus();
}

function openCancel(job) {
  const dialog = $('#cancel-dialog');
  $('#cancel-heading').textContent = `Cancel job ${job.id}`;
  $('#cancel-reason').value = '';
  dialog.onclose = () => {
    const choice = dialog.returnValue;
    dialog.returnValue = '';
    if (choice === 'cancel') {
      const reason = $('#cancel-reason').value.trim();
      act(job, 'cancel', reason ? {reason} : {});
    }
  };
  dialog.showModal();
}

// -- the live event stream ---------------------------------------------------------

let source = null;
let retryTimer = null;
let backoff = 1000;
let opened = false;

function setStreamStatus(text, cls) {
  const el = $('#stream-status');
  el.textContent = text;
  el.className = `stream ${cls}`;
}

async function connect() {
  clearTimeout(retryTimer);
  if (source) { source.close(); source = null; }
  const params = new URLSearchParams();
  if (lastSeq === 0) {
    // Start right after the head the page loads at, so nothing between the
    // first load and the stream is missed.
    try {
      const ready = await fetch('/readyz').then((r) => r.json());
      if (typeof ready.head === 'number') lastSeq = ready.head;
    } catch { /* start at the stream's head */ }
  }
  if (lastSeq > 0) params.set('from', String(lastSeq + 1));
  if (getToken()) params.set('access_token', getToken());
  const es = new EventSource(`/v1/events/stream?${params}`);
  source = es;
  setStreamStatus('connecting…', 'connecting');
  es.onopen = () => {
    if (source !== es) return;
    backoff = 1000;
    setStreamStatus('live', 'live');
    if (opened) refreshAll();  // a gap is possible across a failed stream
    opened = true;
  };
  es.onerror = () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused (401, 403, 503...) or went away for good: try
      // again later, and say why if a plain request tells.
      setStreamStatus(`disconnected; retrying in ${Math.round(backoff / 1000)} s`, 'down');
      es.close();
      source = null;
      retryTimer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30_000);
      api('GET', '/v1/queues').catch((e) => showError(e, 'live updates'));
    } else {
      setStreamStatus('reconnecting…', 'connecting');  // EventSource retries by itself
    }
  };
  const handler = (msg) => {
    if (source !== es) return;
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    onEvent(ev);
  };
  for (const type of EVENT_TYPES) es.addEventListener(type, handler);
  es.onmessage = handler;  // an unnamed or future type
}

function onEvent(ev) {
  if (typeof ev.seq === 'number') {
    if (ev.seq <= lastSeq) return;  // seen already (a resumed stream)
    lastSeq = ev.seq;
  }
  if (ev.type === 'job.submitted' && ev.body) jobQueue.set(ev.job, ev.body.queue || 'default');
  const fin = finishKind(ev);
  if (fin) {
    finished.push({at: Date.now(), job: ev.job, failed: fin === 'failed'});
    if (!jobQueue.has(ev.job)) lookUpQueue(ev.job);
  }
  if (route.view === 'overview') {
    loadJobs();
    loadQueues();
  } else if (openId !== null) {
    if (ev.job === openId) {
      if (addToTimeline(ev)) renderTimeline();
      loadOpenJob();
    } else if (ev.type.startsWith('job.') && openJobData && openJobData.explanation &&
               ['locking', 'ready', 'scheduled'].includes(openJobData.explanation.phase)) {
      loadOpenJob();  // another job's end may free this one's locks or slot
    }
  }
}

function refreshAll() {
  if (route.view === 'overview') { loadJobs(); loadQueues(); } else loadOpenJob();
}

// The rates slide with time even when nothing happens.
setInterval(() => { if (route.view === 'overview' && queues.length) renderQueues(); }, 5000);

// -- the token -----------------------------------------------------------------------

$('#token').value = getToken();
$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($('#token').value.trim());
  clearError();
  connect();
  refreshAll();
});

// -- start -----------------------------------------------------------------------------

window.addEventListener('hashchange', onRoute);
onRoute();
connect();
