// The dashboard's stateless helpers: DOM building ($, h), formatting of times,
// jobs and events, filter links, and coalesce(). None reads or writes the
// page's state (app.js owns that); h() puts every child in as text, never markup.

export const $ = (sel) => document.querySelector(sel);

/** h('td', {class: 'x'}, 'text', node): an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const pad = (n, w = 2) => String(n).padStart(w, '0');

/** "14:03:07" today, "2026-11-21 14:03:07" another day; "" for 0. */
export function fmtTime(ms, withMillis = false) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  let s = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (withMillis) s += `.${pad(d.getMilliseconds(), 3)}`;
  if (d.toDateString() !== now.toDateString())
    s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${s}`;
  return s;
}

export function timeCell(ms, withMillis = false) {
  if (!ms) return h('td');
  return h('td', {}, h('time', {datetime: new Date(ms).toISOString(), title: new Date(ms).toISOString()},
    fmtTime(ms, withMillis)));
}

export function fmtDuration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function stateBadge(state) {
  return h('span', {class: `state state-${state}`}, state.replace('_', ' '));
}

export function shortJson(value, max = 120) {
  const s = JSON.stringify(value);
  if (s === undefined) return '';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Runs fn at most once per `ms`, always after the last call (trailing). */
export function coalesce(fn, ms) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => { if (!timer) timer = setTimeout(run, ms); };
  schedule.now = () => { clearTimeout(timer); timer = null; return run(); };
  return schedule;
}

/** Whether an event ends a job's run for good (for the finished rate). */
export function finishKind(ev) {
  switch (ev.type) {
    case 'job.succeeded': return 'ok';
    case 'job.failed':
    case 'job.reclaimed': return ev.body && ev.body.next_run_at ? null : 'failed';
    case 'job.cancelled':
    case 'job.discarded':
    case 'job.expired': return 'failed';
    default: return null;
  }
}

export function filterLink(params, text, label) {
  const q = new URLSearchParams(params);
  return h('a', {href: `#/?${q}`, 'aria-label': label}, text);
}

export function filtersHash(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v && !(k === 'limit' && v === '50')) q.set(k, v);
  const s = q.toString();
  return s ? `#/?${s}` : '#/';
}

export function progressText(job) {
  const parts = [];
  if (job.percent !== undefined && job.percent >= 0) parts.push(`${job.percent}%`);
  if (job.detail) parts.push(job.detail);
  return parts.join(' ');
}

export function fact(name, value) {
  if (value === undefined || value === null || value === '') return [];
  return [h('div', {}, h('dt', {}, name), h('dd', {}, value))];
}

/** The timeline's one-line summary of an event's body. */
export function details(ev) {
  const b = ev.body || {};
  const retryText = (at) => (at ? `; next attempt at ${fmtTime(at)}` : '; no attempt left: discarded');
  switch (ev.type) {
    case 'job.submitted': {
      const parts = [`${b.kind} on queue ${b.queue}`];
      if (b.priority) parts.push(`priority ${b.priority}`);
      if (b.run_at && b.run_at > ev.time) parts.push(`due ${fmtTime(b.run_at)}`);
      if (b.review_required) parts.push('review required');
      if (b.resources && b.resources.length)
        parts.push(`resources ${b.resources.map((r) => (typeof r === 'string' ? r : `${r.name} (${r.mode})`)).join(', ')}`);
      if (b.recurrence && b.recurrence.interval) parts.push(`every ${fmtDuration(b.recurrence.interval)}`);
      return parts.join(', ');
    }
    case 'job.started': return `attempt ${b.attempt} by ${b.worker}`;
    case 'job.progress': {
      const parts = [`attempt ${b.attempt}`];
      if (b.percent >= 0) parts.push(`${b.percent}%`);
      if (b.detail) parts.push(b.detail);
      if (b.lines && b.lines.length) parts.push(`${b.lines.length} log line${b.lines.length === 1 ? '' : 's'}`);
      return parts.join(', ');
    }
    case 'job.succeeded': return `attempt ${b.attempt}; result ${shortJson(b.result)}`;
    case 'job.failed':
      return `attempt ${b.attempt}: ${b.error}${b.retryable === false ? ' (permanent)' : ''}${retryText(b.next_run_at)}`;
    case 'job.reclaimed': return `attempt ${b.attempt}: ${b.reason}${retryText(b.next_run_at)}`;
    case 'job.discarded':
    case 'job.cancelled':
    case 'job.expired': return b.reason || '';
    case 'job.reviewed': return `${b.accepted ? 'accepted' : 'declined'}${b.comment ? `: ${b.comment}` : ''}`;
    case 'job.requested': return b.what === 'run_now' ? 'run now' : (b.what || '');
    case 'job.cancel_requested': return `attempt ${b.attempt} asked to stop: ${b.reason || ''}`;
    default: return shortJson(b, 200);
  }
}
