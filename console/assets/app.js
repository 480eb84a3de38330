// app.js: the connlog console. It calls the query API of its own origin with
// the user's bearer token, or with the session that signing in with the
// organisation's identity provider opened (api/signin.go), and renders the
// answers.
//
// Two rules hold everywhere below:
//   - a token lives in the variable `session` only: never in a cookie, in web
//     storage, never in a URL; a provider sign-in's session is an HttpOnly
//     cookie that page script cannot read, used only with its CSRF token
//     (also kept in `session` only);
//   - values from the API (which come from stored logs, written by anyone
//     who sent a request to a logged site) become text nodes via h(): never
//     parsed as HTML, no attribute or URL built from them.
import { t, lang, setLang, fmtNumber, fmtTime, fmtDay, localZone } from './i18n.js';

const IDLE_MS = 15 * 60 * 1000;

// What each role may open; admin may open everything (as in the API).
const VIEWS = [
  { id: 'search', roles: ['analyst'] },
  { id: 'connections', roles: ['officer'] },
  { id: 'requisitions', roles: ['officer'] },
  { id: 'audit', roles: ['auditor'] },
  { id: 'retention', roles: ['auditor'] },
  { id: 'audience', roles: ['stats'] },
];

// {token, me: {name, role, sites}, purpose}; a provider sign-in has
// {cookie: true, csrf, idleMs} instead of token.
let session = null;
let signin = { oidc: null }; // what GET /v1/session offers: {oidc: {name}}
let lastActivity = Date.now();
let utc = false; // show and enter times in UTC rather than the browser's zone
const state = {}; // per view: form values and last answer, kept across re-renders

// ---------- DOM ----------

/** h builds an element; children that are strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function showError(msg) {
  const el = $('error');
  el.textContent = msg || '';
  el.hidden = !msg;
}

function showNotice(msg) {
  const el = $('notice');
  el.textContent = msg || '';
  el.hidden = !msg;
}

let fieldSeq = 0;
/** field is a labelled input (or select, with options). */
function field(label, attrs = {}, options) {
  const id = attrs.id || `f${++fieldSeq}`;
  const input = options
    ? h('select', { ...attrs, id }, options.map(([v, l]) => h('option', { value: v, selected: v === attrs.value }, l)))
    : h('input', { type: 'text', ...attrs, id });
  if (options && attrs.value !== undefined) input.value = attrs.value;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

// ---------- API ----------

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/** isLatin1Safe: fetch sends header values as bytes; only ASCII survives as UTF-8. */
const isASCII = (s) => /^[\x20-\x7e]*$/.test(s);

/**
 * api calls the API with the session's token and purpose. The purpose goes in
 * X-Purpose; one with non-ASCII characters goes in the purpose parameter
 * instead (a header carries bytes, not UTF-8 text). An error answer throws an
 * APIError carrying the API's own message.
 */
async function api(method, path, { query, body, accept, cookies } = {}) {
  const params = new URLSearchParams(query || {});
  const headers = { Accept: accept || 'application/json' };
  if (session?.token) headers.Authorization = 'Bearer ' + session.token;
  if (session?.cookie) headers['X-CSRF-Token'] = session.csrf;
  if (session?.purpose) {
    if (isASCII(session.purpose)) headers['X-Purpose'] = session.purpose;
    else params.set('purpose', session.purpose);
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const qs = params.toString();
  let resp;
  try {
    resp = await fetch(path + (qs ? '?' + qs : ''), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      // Cookies only for a provider sign-in: a token session sends none.
      credentials: session?.cookie || cookies ? 'same-origin' : 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new APIError(0, 'network', t('networkError'));
  }
  touch();
  if (!resp.ok) {
    let code = 'http', msg = `${resp.status} ${resp.statusText}`;
    try {
      const e = await resp.json();
      if (e?.error?.message) { code = e.error.code; msg = e.error.message; }
    } catch { /* not JSON: keep the status line */ }
    throw new APIError(resp.status, code, msg);
  }
  return resp;
}

async function apiJSON(method, path, opts) {
  return (await api(method, path, opts)).json();
}

/** run executes an action, showing the API's refusal text if it fails. */
async function run(fn) {
  showError('');
  showNotice('');
  try {
    await fn();
  } catch (e) {
    showError(e instanceof APIError ? e.message : String(e?.message || e));
    // The session is over on the server's side already: nothing to end there.
    if (e instanceof APIError && e.status === 401 && session) signOut(e.message, { remote: false });
  }
}

/** download saves an in-memory blob (small bounded answers only). */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * exportSearch streams a whole search to a file: the API mints a single-use
 * ticket (POST /v1/downloads, with the bearer token and purpose, audited) and
 * the browser downloads GET /v1/downloads/{ticket} as a plain link, so rows go
 * straight to disk without passing through page memory.
 */
async function exportSearch(path, query, format) {
  const q = new URLSearchParams(query);
  q.delete('limit');
  q.delete('cursor');
  const ticket = await apiJSON('POST', '/v1/downloads', { body: { path, query: q.toString(), format } });
  const a = h('a', { href: ticket.url, download: '' });
  document.body.append(a);
  a.click();
  a.remove();
  showNotice(t('exportStarted'));
}

// ---------- session ----------

function touch() { lastActivity = Date.now(); }

function signOut(reason, { remote = true } = {}) {
  const ended = session;
  session = null; // the only copy of the token or CSRF token
  if (ended?.cookie && remote) {
    // End the provider sign-in's session on the server, which removes its cookie.
    fetch('/v1/session', {
      method: 'DELETE', headers: { 'X-CSRF-Token': ended.csrf, Accept: 'application/json' },
      credentials: 'same-origin', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer',
    }).catch(() => {});
  }
  for (const k of Object.keys(state)) delete state[k];
  // Drop the view from the address without a hashchange (which would clear
  // the reason shown below).
  history.replaceState(null, '', location.pathname + location.search);
  render();
  if (reason) showError(reason);
}

setInterval(() => {
  const idle = session?.idleMs || IDLE_MS;
  if (session && Date.now() - lastActivity > idle) signOut(t('expired')(Math.round(idle / 60000)));
}, 10000);
for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, touch, { capture: true, passive: true });

function allowed(view) {
  const role = session?.me?.role;
  return role === 'admin' || view.roles.includes(role);
}

// ---------- time inputs ----------

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** toInput renders a Date as a datetime-local value in the chosen zone. */
function toInput(d) {
  if (utc) return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** fromInput reads a datetime-local value in the chosen zone as RFC 3339 UTC. */
function fromInput(v) {
  if (!v) return '';
  const d = utc ? new Date(v + (v.length === 16 ? ':00' : '') + 'Z') : new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().replace(/\.000Z$/, 'Z');
}

function defaultWindow(s, hours = 24) {
  if (!s.from) {
    const now = new Date();
    s.to = new Date(Math.ceil(now.getTime() / 60000) * 60000 + 60000).toISOString();
    s.from = new Date(now.getTime() - hours * 3600 * 1000).toISOString();
  }
}

/** windowFields: from/to inputs in the chosen zone, with the zone shown and a toggle. */
function windowFields(s, rerender) {
  const from = field(t('from'), { type: 'datetime-local', step: 1, value: toInput(new Date(s.from)), 'data-testid': 'from' });
  const to = field(t('to'), { type: 'datetime-local', step: 1, value: toInput(new Date(s.to)), 'data-testid': 'to' });
  const keep = () => {
    s.from = fromInput(from.querySelector('input').value) || s.from;
    s.to = fromInput(to.querySelector('input').value) || s.to;
  };
  from.querySelector('input').addEventListener('change', keep);
  to.querySelector('input').addEventListener('change', keep);
  const zone = h('span', { class: 'zone', 'data-testid': 'tz' }, t('tz')(utc ? 'UTC' : localZone));
  const toggle = h('button', { type: 'button', 'data-testid': 'tz-toggle', onclick: () => { keep(); utc = !utc; rerender(); } }, utc ? t('tzLocal') : t('tzUTC'));
  return [from, to, h('div', { class: 'field zonefield' }, zone, toggle)];
}

// ---------- table ----------

/** table renders rows; cols are [header, (row) => text or Node]. */
function table(cols, rows, testid, caption) {
  return h('div', { class: 'tablewrap' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, cols.map(([name]) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-testid': testid }, cols.map(([, f]) => h('td', {}, f(r))))))));
}

function pager(s, load) {
  const page = s.cursors.length + 1;
  return h('div', { class: 'pager' },
    h('button', { type: 'button', 'data-testid': 'first-page', disabled: s.cursors.length === 0, onclick: () => run(() => load(s, '')) }, t('first')),
    h('span', {}, t('pageOf')(page)),
    h('button', { type: 'button', 'data-testid': 'next-page', disabled: !s.page?.next_cursor, onclick: () => run(() => load(s, s.page.next_cursor)) }, t('next')));
}

// ---------- charts (uPlot) ----------

let charts = [];
function destroyCharts() { for (const c of charts) c.destroy(); charts = []; }

function chart(el, opts, data) {
  if (typeof uPlot === 'undefined') return;
  const width = Math.max(320, Math.min(1100, el.clientWidth || 800));
  const u = new uPlot({
    width, height: 220,
    tzDate: utc ? (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : undefined,
    fmtDate: (tpl) => uPlot.fmtDate(tpl, lang === 'fr' ? FR_NAMES : undefined),
    ...opts,
  }, data, el);
  charts.push(u);
}

const FR_NAMES = {
  MMMM: ['janvier', 'février', 'mars', 'avril', 'mai', 'juin', 'juillet', 'août', 'septembre', 'octobre', 'novembre', 'décembre'],
  MMM: ['janv.', 'févr.', 'mars', 'avr.', 'mai', 'juin', 'juil.', 'août', 'sept.', 'oct.', 'nov.', 'déc.'],
  WWWW: ['dimanche', 'lundi', 'mardi', 'mercredi', 'jeudi', 'vendredi', 'samedi'],
  WWW: ['dim.', 'lun.', 'mar.', 'mer.', 'jeu.', 'ven.', 'sam.'],
};

const BUCKETS = [1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400];

/**
 * histogram counts rows per time bucket, at most ~60 buckets over the span
 * of the rows (the search window when there are none): a burst of seconds
 * in a day-long window still shows its shape.
 */
function histogram(el, rows, from, to) {
  let lo = Date.parse(from) / 1000, hi = Date.parse(to) / 1000;
  if (rows.length) {
    const ts = rows.map((r) => Date.parse(r.time) / 1000);
    lo = Math.floor(Math.min(...ts));
    hi = Math.floor(Math.max(...ts)) + 1;
  }
  const step = BUCKETS.find((b) => (hi - lo) / b <= 60) || BUCKETS[BUCKETS.length - 1];
  const start = Math.floor(lo / step) * step;
  const n = Math.max(1, Math.ceil((hi - start) / step));
  const xs = Array.from({ length: n }, (_, i) => start + i * step);
  const ys = new Array(n).fill(0);
  for (const r of rows) {
    const i = Math.floor((Date.parse(r.time) / 1000 - start) / step);
    if (i >= 0 && i < n) ys[i]++;
  }
  chart(el, {
    legend: { show: false },
    scales: { x: { time: true }, y: { range: (u, mn, mx) => [0, Math.max(1, mx)] } },
    series: [{}, { label: t('hits'), stroke: '#1d3557', fill: 'rgba(29,53,87,0.5)', paths: uPlot.paths.bars({ size: [0.9, 40], align: 1 }), points: { show: false } }],
  }, [xs, ys]);
}

// ---------- views ----------

/** recordSearch is the access-log search and, with other fields, the connection-record one. */
function recordSearch(main, kind) {
  const access = kind === 'search';
  const path = access ? '/v1/access' : '/v1/connections';
  const s = state[kind] ||= { q: { ip: '', site: '', path_prefix: '', status: '', user_agent: '', user: '', operation: '', limit: '100' }, cursors: [] };
  defaultWindow(s);
  const rerender = () => render();
  const inputs = {};
  const text = (key, label, extra = {}) => {
    const f = field(label, { value: s.q[key], name: key, ...extra });
    inputs[key] = f.querySelector('input,select');
    return f;
  };
  const form = h('form', { class: 'search', 'aria-label': t('nav')[kind], onsubmit: (e) => { e.preventDefault(); read(); run(() => load(s, '')); } },
    text('ip', t('ip'), { 'data-testid': 'search-ip', required: true, autocomplete: 'off', placeholder: '203.0.113.7 / 203.0.113.0/24' }),
    windowFields(s, rerender),
    text('site', t('site')),
    text('path_prefix', t('path')),
    text('status', t('status'), { inputmode: 'numeric', size: 5 }),
    access ? text('user_agent', t('ua')) : field(t('operation'), { value: s.q.operation, name: 'operation' },
      [['', t('any')], ['read', 'read'], ['create', 'create'], ['modify', 'modify'], ['delete', 'delete'], ['unknown', 'unknown']]),
    text('user', t('user')),
    field(t('limit'), { value: s.q.limit, name: 'limit' }, [['20', '20'], ['50', '50'], ['100', '100'], ['500', '500'], ['1000', '1000']]),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', 'data-testid': 'search' }, t('search')),
      h('button', { type: 'button', 'data-testid': 'export-csv', onclick: () => { read(); run(() => exportSearch(path, query(s), 'csv')); } }, t('exportCSV')),
      h('button', { type: 'button', 'data-testid': 'export-ndjson', onclick: () => { read(); run(() => exportSearch(path, query(s), 'ndjson')); } }, t('exportNDJSON'))));
  if (!access) inputs.operation = form.querySelector('select[name=operation]');
  inputs.limit = form.querySelector('select[name=limit]');
  function read() {
    for (const [k, el] of Object.entries(inputs)) s.q[k] = el.value.trim();
    for (const el of form.querySelectorAll('input[type=datetime-local]')) el.dispatchEvent(new Event('change'));
  }
  function query(st) {
    const q = { from: st.from, to: st.to };
    for (const [k, v] of Object.entries(st.q)) if (v && (access ? k !== 'operation' : k !== 'user_agent')) q[k] = v;
    return q;
  }
  async function load(st, cursor) {
    const q = query(st);
    if (cursor) q.cursor = cursor;
    const page = await apiJSON('GET', path, { query: q });
    if (!cursor) st.cursors = [];
    else if (cursor !== st.cursor) st.cursors.push(st.cursor || '');
    st.cursor = cursor;
    st.page = page;
    st.window = { from: st.from, to: st.to };
    if (access && !q.ip.includes('/') && !cursor) await summary(st, q.ip);
    else if (access && !cursor) st.summary = null;
    render();
  }
  async function summary(st, ip) {
    const q = { from: st.from, to: st.to };
    if (st.q.site) q.site = st.q.site;
    st.summary = await apiJSON('GET', '/v1/ip/' + encodeURIComponent(ip), { query: q });
  }

  main.append(h('h1', {}, t('nav')[kind]), form);
  if (!s.page) return;
  const rows = s.page.rows || [];
  main.append(h('p', { class: 'count', 'data-testid': 'count' }, t('rows')(fmtNumber(rows.length), !!s.page.next_cursor)));
  if (access) {
    const hist = h('figure', { class: 'chart', 'data-testid': 'histogram' }, h('figcaption', {}, t('histogram')(fmtNumber(rows.length))));
    main.append(hist);
    queueMicrotask(() => histogram(hist, rows, s.window.from, s.window.to));
  }
  const ipCell = (r) => access
    ? h('span', {}, r.client_ip, ' ', h('button', { type: 'button', class: 'link', onclick: () => run(async () => { await summary(s, r.client_ip); render(); }) }, t('summaryBtn')))
    : r.client_ip;
  const c = t('cols');
  const cols = access
    ? [[c.time, (r) => fmtTime(r.time, utc)], [c.ip, ipCell], [c.port, (r) => r.client_port || ''], [c.site, (r) => r.site], [c.method, (r) => r.method],
      [c.path, (r) => r.path + (r.query ? '?' + r.query : '')], [c.status, (r) => r.status], [c.bytes, (r) => fmtNumber(r.bytes)],
      [c.referer, (r) => r.referer], [c.ua, (r) => r.user_agent], [c.user, (r) => r.user]]
    : [[c.time, (r) => fmtTime(r.time, utc)], [c.ip, ipCell], [c.port, (r) => r.client_port || ''], [c.site, (r) => r.site], [c.operation, (r) => r.operation],
      [c.path, (r) => r.path], [c.status, (r) => r.status], [c.protocol, (r) => r.protocol], [c.user, (r) => r.user]];
  main.append(rows.length ? table(cols, rows, 'result-row') : h('p', {}, t('none')), pager(s, load));
  if (access && s.summary) main.append(summaryPanel(s.summary));
}

function summaryPanel(sm) {
  const L = t('sum');
  const list = (name, items) => h('div', { class: 'toplist' }, h('h3', {}, name),
    h('ol', {}, (items || []).map((it) => h('li', {}, h('span', { class: 'v' }, it.value), ' ', h('span', { class: 'n' }, fmtNumber(it.count))))));
  return h('section', { class: 'summary', 'data-testid': 'ip-summary', 'aria-label': t('summary') },
    h('h2', {}, t('summary'), ' ', sm.ip),
    h('dl', {},
      h('dt', {}, L.requests), h('dd', {}, fmtNumber(sm.requests)),
      h('dt', {}, L.first), h('dd', {}, fmtTime(sm.first_seen, utc)),
      h('dt', {}, L.last), h('dd', {}, fmtTime(sm.last_seen, utc)),
      h('dt', {}, L.bytes), h('dd', {}, fmtNumber(sm.bytes)),
      h('dt', {}, L.ports), h('dd', {}, fmtNumber(sm.distinct_client_ports)),
      h('dt', {}, L.paths), h('dd', {}, fmtNumber(sm.distinct_paths)),
      sm.sites_limited ? [h('dt', {}, L.limited), h('dd', {}, t('yes'))] : null),
    h('div', { class: 'toplists' }, list(L.statuses, sm.statuses), list(L.sites, sm.sites), list(L.methods, sm.methods), list(L.uas, sm.user_agents)));
}

function auditView(main) {
  const s = state.audit ||= { q: { actor: '', role: '', endpoint: '', outcome: '', purpose_contains: '', limit: '100' }, cursors: [], subject: { ip: '' } };
  defaultWindow(s, 24 * 7);
  const inputs = {};
  const text = (key, label) => { const f = field(label, { value: s.q[key], name: key }); inputs[key] = f.querySelector('input'); return f; };
  const endpoints = ['', '/v1/access', '/v1/connections', '/v1/ip/{ip}', '/v1/audit', '/v1/audit/subject', '/v1/stats/audience', '/v1/retention', '/v1/requisitions', '/v1/holds', '/v1/downloads', '/v1/me'];
  const ep = field(t('endpoint'), { value: s.q.endpoint, name: 'endpoint' }, endpoints.map((e) => [e, e || t('any')]));
  const oc = field(t('outcome'), { value: s.q.outcome, name: 'outcome' }, ['', 'ok', 'denied', 'invalid', 'error', 'completed', 'interrupted'].map((e) => [e, e || t('any')]));
  inputs.endpoint = ep.querySelector('select');
  inputs.outcome = oc.querySelector('select');
  const read = () => {
    for (const [k, el] of Object.entries(inputs)) s.q[k] = el.value.trim();
    for (const el of form.querySelectorAll('input[type=datetime-local]')) el.dispatchEvent(new Event('change'));
  };
  async function load(st, cursor) {
    const q = { from: st.from, to: st.to };
    for (const [k, v] of Object.entries(st.q)) if (v) q[k] = v;
    if (cursor) q.cursor = cursor;
    st.page = await apiJSON('GET', '/v1/audit', { query: q });
    if (!cursor) st.cursors = [];
    else if (cursor !== st.cursor) st.cursors.push(st.cursor || '');
    st.cursor = cursor;
    render();
  }
  const form = h('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); read(); run(() => load(s, '')); } },
    windowFields(s, () => render()), text('actor', t('actor')), text('role', t('role')), ep, oc, text('purpose_contains', t('purposeContains')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'audit-search' }, t('search'))));
  main.append(h('h1', {}, t('auditTitle')), form);
  if (s.page) {
    const c = t('acols');
    const cols = [[c.time, (r) => fmtTime(r.time, utc)], [c.actor, (r) => r.actor], [c.role, (r) => r.role], [c.source, (r) => r.source],
      [c.endpoint, (r) => r.method + ' ' + r.endpoint], [c.purpose, (r) => r.purpose], [c.filters, (r) => h('code', {}, r.filters)],
      [c.status, (r) => r.status], [c.rows, (r) => fmtNumber(r.rows)], [c.outcome, (r) => r.outcome], [c.reason, (r) => r.reason]];
    const rows = s.page.rows || [];
    main.append(h('p', { class: 'count' }, t('rows')(fmtNumber(rows.length), !!s.page.next_cursor)),
      rows.length ? table(cols, rows, 'audit-row') : h('p', {}, t('none')), pager(s, load));
  }
  // The subject view: consultations that touched one address.
  const sip = field(t('subjectIP'), { value: s.subject.ip, 'data-testid': 'subject-ip', required: true });
  const sform = h('form', { class: 'search', onsubmit: (e) => {
    e.preventDefault();
    s.subject.ip = sip.querySelector('input').value.trim();
    run(async () => { s.subject.answer = await apiJSON('GET', '/v1/audit/subject', { query: { ip: s.subject.ip } }); render(); });
  } }, sip, h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'subject-search' }, t('subjectSearch'))));
  main.append(h('h2', {}, t('subjectTitle')), sform);
  if (s.subject.answer) {
    const c = t('scols');
    const rows = s.subject.answer.consultations || [];
    main.append(rows.length ? table([[c.date, (r) => fmtDay(r.date)], [c.purpose, (r) => r.purpose], [c.endpoint, (r) => r.endpoint], [c.rows, (r) => fmtNumber(r.rows)]], rows, 'subject-row') : h('p', {}, t('none')));
  }
  if (!s.page && !s.loading) { s.loading = true; read(); run(() => load(s, '')); }
}

function retentionView(main) {
  const s = state.retention ||= {};
  main.append(h('h1', {}, t('retentionTitle')));
  if (!s.report) {
    if (!s.loading) { s.loading = true; run(async () => { const r = await api('GET', '/v1/retention'); s.raw = await r.text(); s.report = JSON.parse(s.raw); render(); }); }
    main.append(h('p', {}, t('loading')));
    return;
  }
  const rep = s.report;
  const c = t('rcols');
  const yn = (b) => (b ? t('yes') : t('no'));
  main.append(
    h('p', { class: 'generated', 'data-testid': 'retention-generated' }, t('generated')(fmtTime(rep.generated, utc)), ' (', utc ? 'UTC' : localZone, ') · ', session.me.name, ' · ', t('purposeLabel'), ' ', session.purpose),
    h('p', { class: rep.overdue ? 'bad' : 'good' }, rep.overdue ? t('overdueYes') : t('overdueNo'), ' · ', t('grace'), ' ', rep.grace),
    h('div', { class: 'actions noprint' },
      h('button', { type: 'button', 'data-testid': 'print', onclick: () => window.print() }, t('print')),
      h('button', { type: 'button', 'data-testid': 'retention-json', onclick: () => saveBlob(new Blob([s.raw], { type: 'application/json' }), `connlog-retention-${rep.generated.slice(0, 10)}.json`) }, t('downloadJSON'))),
    table([[c.class, (r) => r.class], [c.table, (r) => r.table], [c.site, (r) => r.site], [c.policy, (r) => r.policy],
      [c.oldest, (r) => fmtTime(r.oldest, utc)], [c.newest, (r) => fmtTime(r.newest, utc)], [c.rows, (r) => fmtNumber(r.rows)],
      [c.bytes, (r) => fmtNumber(r.bytes_on_disk)], [c.last, (r) => fmtTime(r.last_enforcement, utc)], [c.removed, (r) => fmtNumber(r.last_removed)],
      [c.overdue, (r) => yn(r.overdue)], [c.detail, (r) => r.detail]], rep.entries || [], 'retention-row'),
    h('h2', {}, t('chainHeads')),
    h('p', {}, t('chainHeadsHelp')),
    table([[c.table, (r) => r.table], [c.topic, (r) => r.topic], [c.partition, (r) => fmtNumber(r.partition)],
      [c.manifests, (r) => fmtNumber(r.manifests)], [c.hash, (r) => h('code', { class: 'hash' }, r.hash)],
      [c.key, (r) => h('code', {}, r.key_id)], [c.created, (r) => fmtTime(r.created_at, utc)]], rep.integrity_chain_heads || [], 'chain-head-row'));
  $('printed').textContent = `connlog · ${t('retentionTitle')} · ${t('generated')(fmtTime(rep.generated, utc))} (${utc ? 'UTC' : localZone}) · ${t('printedOn')(fmtTime(new Date().toISOString(), utc))}`;
}

function reqStatus(r) {
  const st = t('reqStatus');
  if (r.answer?.recorded_at) return st.answered;
  if (r.runs?.length) return st.run;
  return st.new;
}

// dueCell shows a requisition's due date, and says so in words (not by
// colour alone) when the server judges it overdue.
function dueCell(r) {
  if (!r.date_due) return h('span', { class: 'muted' }, t('noDue'));
  if (!r.overdue) return fmtDay(r.date_due);
  return h('span', { class: 'overdue', 'data-testid': 'requisition-overdue' }, fmtDay(r.date_due), ' ', h('strong', {}, '(' + t('reqOverdue') + ')'));
}

function requisitionsView(main) {
  const s = state.requisitions ||= {};
  main.append(h('h1', {}, t('reqTitle')));
  if (!s.list) {
    if (!s.loading) {
      s.loading = true;
      run(async () => {
        const [reqs, holds] = await Promise.all([apiJSON('GET', '/v1/requisitions'), apiJSON('GET', '/v1/holds')]);
        s.list = reqs.requisitions || [];
        s.holds = holds.holds || [];
        render();
      });
    }
    main.append(h('p', {}, t('loading')));
    return;
  }
  const reload = () => { s.list = null; s.loading = false; render(); };
  const c = t('qcols');
  const actions = (r) => h('span', { class: 'rowactions' },
    h('button', { type: 'button', onclick: () => run(async () => {
      const res = await apiJSON('POST', `/v1/requisitions/${encodeURIComponent(r.id)}/run`);
      reload();
      showNotice(t('runDone')(fmtNumber(res.rows), res.export_sha256));
    }) }, t('run')),
    r.runs?.length ? h('button', { type: 'button', onclick: () => run(async () => {
      // A signed package is bounded by the requisition's selectors; it is
      // fetched with the token, then saved.
      const resp = await api('GET', `/v1/requisitions/${encodeURIComponent(r.id)}/export`, { accept: 'application/zip' });
      saveBlob(await resp.blob(), `requisition-${r.id}.zip`);
    }) }, t('download')) : null,
    r.runs?.length && !r.answer?.recorded_at ? answerForm(r, reload) : null);
  main.append(table([[c.id, (r) => r.id], [c.received, (r) => fmtDay(r.date_received)], [c.due, dueCell], [c.authority, (r) => r.authority], [c.article, (r) => r.article],
    [c.procedure, (r) => r.procedure_reference], [c.status, reqStatus], [c.runs, (r) => fmtNumber(r.runs?.length || 0)], [c.actions, actions]], s.list, 'requisition-row'));
  main.append(requisitionForm(reload));
  holdsSection(main, s, reload);
}

function answerForm(r, reload) {
  const sent = field(t('sentAt'), { type: 'datetime-local', step: 1, value: toInput(new Date()) });
  const how = field(t('how'), { value: 'PNIJ' });
  return h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    run(async () => {
      await apiJSON('POST', `/v1/requisitions/${encodeURIComponent(r.id)}/answered`, { body: { sent_at: fromInput(sent.querySelector('input').value), how: how.querySelector('input').value } });
      reload();
      showNotice(t('answeredDone'));
    });
  } }, sent, how, h('button', { type: 'submit' }, t('answered')));
}

function selectorFields() {
  defaultWindow(state.selector ||= {});
  const f = {
    ip: field(t('ip'), { required: true }), port: field(t('port'), { inputmode: 'numeric', size: 6 }), site: field(t('site')),
    from: field(t('from'), { type: 'datetime-local', step: 1, value: toInput(new Date(state.selector.from)) }),
    to: field(t('to'), { type: 'datetime-local', step: 1, value: toInput(new Date(state.selector.to)) }),
  };
  const value = () => {
    const v = (k) => f[k].querySelector('input').value.trim();
    const sel = { ip: v('ip'), from: fromInput(v('from')), to: fromInput(v('to')) };
    if (v('port')) sel.port = Number(v('port'));
    if (v('site')) sel.site = v('site');
    return sel;
  };
  return { nodes: h('fieldset', {}, h('legend', {}, t('selector'), ' — ', t('tz')(utc ? 'UTC' : localZone)), Object.values(f)), value };
}

function requisitionForm(reload) {
  const f = {
    authority: field(t('authority'), { required: true }), officer_name: field(t('officerName'), { required: true }),
    officer_service: field(t('officerService')),
    article: field(t('article'), { value: '60-1' }, ['60-1', '60-2', '77-1-1', '77-1-2', '99-3', '99-4', 'other'].map((a) => [a, a])),
    article_text: field(t('articleText')), procedure_reference: field(t('procedure'), { required: true }),
    date_received: field(t('received'), { type: 'date', required: true, value: new Date().toISOString().slice(0, 10) }),
    date_due: field(t('due'), { type: 'date' }),
  };
  const sel = selectorFields();
  return h('details', {}, h('summary', {}, t('reqNew')), h('form', { class: 'search', onsubmit: (e) => {
    e.preventDefault();
    const body = {};
    for (const [k, el] of Object.entries(f)) { const v = el.querySelector('input,select').value.trim(); if (v) body[k] = v; }
    body.selectors = [sel.value()];
    run(async () => { await apiJSON('POST', '/v1/requisitions', { body }); reload(); showNotice(t('created')); });
  } }, Object.values(f), sel.nodes, h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'requisition-create' }, t('create')))));
}

function holdsSection(main, s, reload) {
  const c = t('hcols');
  main.append(h('h2', {}, t('holdsTitle')));
  const actions = (hd) => hd.active
    ? h('button', { type: 'button', onclick: () => run(async () => { await apiJSON('DELETE', `/v1/holds/${encodeURIComponent(hd.id)}`); reload(); showNotice(t('released')); }) }, t('release'))
    : t('released');
  main.append(table([[c.id, (r) => r.id], [c.reference, (r) => r.reference], [c.ip, (r) => r.ip + (r.port ? ':' + r.port : '')], [c.site, (r) => r.site],
    [c.window, (r) => fmtTime(r.from, utc) + ' – ' + fmtTime(r.to, utc)], [c.expires, (r) => fmtTime(r.expires, utc)], [c.rows, (r) => fmtNumber(r.rows)],
    [c.active, (r) => (r.active ? t('yes') : t('no'))], [c.actions, actions]], s.holds, 'hold-row'));
  const ref = field(t('reference'), { required: true });
  const exp = field(t('expires'), { type: 'datetime-local', step: 1, required: true, value: toInput(new Date(Date.now() + 90 * 86400 * 1000)) });
  const rid = field(t('requisition'));
  const sel = selectorFields();
  main.append(h('details', {}, h('summary', {}, t('holdNew')), h('form', { class: 'search', onsubmit: (e) => {
    e.preventDefault();
    // A hold names either a requisition (its selectors) or one selector.
    const body = { reference: ref.querySelector('input').value.trim(), expires: fromInput(exp.querySelector('input').value) };
    const r = rid.querySelector('input').value.trim();
    if (r) body.requisition_id = r;
    else body.selector = sel.value();
    run(async () => { await apiJSON('POST', '/v1/holds', { body }); reload(); showNotice(t('created')); });
  } }, ref, exp, rid, sel.nodes, h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'hold-create' }, t('create'))))));
}

function audienceView(main) {
  const s = state.audience ||= { q: { site: session.me.sites?.[0] || '', by: 'path', granularity: 'hour' } };
  defaultWindow(s, 24 * 7);
  const site = field(t('site'), { value: s.q.site, required: true, 'data-testid': 'audience-site' });
  const by = field(t('by'), { value: s.q.by }, ['path', 'referrer', 'country', 'region', 'city', 'browser', 'os', 'device', 'status', 'site'].map((b) => [b, b]));
  const gr = field(t('granularity'), { value: s.q.granularity }, [['hour', t('hour')], ['day', t('day')]]);
  const form = h('form', { class: 'search', onsubmit: (e) => {
    e.preventDefault();
    s.q = { site: site.querySelector('input').value.trim(), by: by.querySelector('select').value, granularity: gr.querySelector('select').value };
    for (const el of form.querySelectorAll('input[type=datetime-local]')) el.dispatchEvent(new Event('change'));
    run(async () => { s.page = await apiJSON('GET', '/v1/stats/audience', { query: { ...s.q, from: s.from, to: s.to } }); render(); });
  } }, site, windowFields(s, () => render()), by, gr, h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'audience-show' }, t('show'))));
  main.append(h('h1', {}, t('audienceTitle')), form);
  if (!s.page) return;
  const rows = s.page.rows || [];
  main.append(h('p', { class: 'note' }, t('audienceNote')(s.page.min_visitors)));
  // Over time: hits and visitors summed over the keys of each bucket.
  const buckets = new Map();
  const keys = new Map();
  for (const r of rows) {
    const b = buckets.get(r.bucket) || { hits: 0, visitors: 0 };
    b.hits += r.hits; b.visitors += r.visitors;
    buckets.set(r.bucket, b);
    const k = keys.get(r.key) || { key: r.key, hits: 0, visitors: 0 };
    k.hits += r.hits; k.visitors += r.visitors;
    keys.set(r.key, k);
  }
  // Every bucket of the window, empty ones at zero, so the axis is the window.
  const byTime = new Map([...buckets].map(([b, v]) => [Date.parse(b) / 1000, v]));
  const step = s.page.granularity === 'day' ? 86400 : 3600;
  const xs = [];
  for (let x = Math.floor(Date.parse(s.from) / 1000 / step) * step; x < Date.parse(s.to) / 1000; x += step) xs.push(x);
  const fig = h('figure', { class: 'chart', 'data-testid': 'audience-chart' }, h('figcaption', {}, t('audienceChart')));
  main.append(fig);
  queueMicrotask(() => chart(fig, {
    scales: { x: { time: true }, y: { range: (u, mn, mx) => [0, Math.max(1, mx)] } },
    series: [{}, { label: t('hits'), stroke: '#1d3557', width: 2 }, { label: t('visitors'), stroke: '#e63946', width: 2 }],
  }, [xs, xs.map((x) => byTime.get(x)?.hits ?? 0), xs.map((x) => byTime.get(x)?.visitors ?? 0)]));
  const top = [...keys.values()].sort((a, b) => b.hits - a.hits).slice(0, 50);
  main.append(table([[t('key'), (r) => r.key], [t('hits'), (r) => fmtNumber(r.hits)], [t('visitors'), (r) => fmtNumber(r.visitors)]], top, 'audience-row', s.page.by));
}

const RENDER = { search: (m) => recordSearch(m, 'search'), connections: (m) => recordSearch(m, 'connections'), requisitions: requisitionsView, audit: auditView, retention: retentionView, audience: audienceView };

// ---------- shell ----------

/** startOIDC sends the browser to the identity provider (api/signin.go). */
async function startOIDC() {
  const { url } = await apiJSON('POST', '/v1/session/oidc', { cookies: true });
  showNotice(t('oidcGoing'));
  location.assign(url);
}

/**
 * finishOIDC hands the provider's answer, which the callback put in the
 * fragment, to the API, which checks it and opens the session.
 */
async function finishOIDC(fragment) {
  const p = new URLSearchParams(fragment);
  const ans = await apiJSON('POST', '/v1/session/oidc/callback', {
    body: { code: p.get('code') || '', state: p.get('state') || '', error: p.get('error') || '' }, cookies: true,
  });
  session = { cookie: true, csrf: ans.csrf, idleMs: ans.idle_timeout_seconds * 1000, me: ans.me, purpose: '' };
  touch();
}

function loginView(main) {
  const tok = h('input', { id: 'token', type: 'password', 'data-testid': 'token', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-help' });
  main.append(h('h1', {}, t('signIn')));
  let oidcButton = null;
  if (signin.oidc) {
    oidcButton = h('button', { type: 'button', class: 'oidc', 'data-testid': 'oidc-login', 'aria-describedby': 'oidc-help', onclick: () => run(startOIDC) }, t('oidcSignIn')(signin.oidc.name));
    main.append(h('div', { class: 'login' }, oidcButton, h('p', { id: 'oidc-help', class: 'help' }, t('oidcHelp'))), h('h2', { class: 'or' }, t('orToken')));
  }
  main.append(h('form', { class: 'login', onsubmit: (e) => {
    e.preventDefault();
    const token = tok.value.trim();
    tok.value = '';
    run(async () => {
      session = { token, me: null, purpose: '' };
      try {
        session.me = await apiJSON('GET', '/v1/me');
      } catch (err) {
        session = null;
        throw err;
      }
      render();
    });
  } }, h('label', { for: 'token' }, t('token')), tok, h('p', { id: 'token-help', class: 'help' }, t('tokenHelp')),
  h('button', { type: 'submit', 'data-testid': 'login' }, t('signIn'))));
  (oidcButton || tok).focus();
}

function purposeView(main) {
  const p = h('input', { id: 'purpose', 'data-testid': 'purpose', value: session.purpose || '', maxlength: 200, autocomplete: 'off', 'aria-describedby': 'purpose-help' });
  main.append(h('h1', {}, t('purposeTitle')), h('form', { class: 'login', onsubmit: (e) => {
    e.preventDefault();
    const v = p.value.trim();
    if ([...v].length < 3 || [...v].length > 200) { showError(t('purposeShort')); return; }
    showError('');
    session.purpose = v;
    session.changingPurpose = false;
    render();
  } }, h('label', { for: 'purpose' }, t('purpose')), p, h('p', { id: 'purpose-help', class: 'help' }, t('purposeHelp')),
  h('button', { type: 'submit', 'data-testid': 'purpose-set' }, t('purposeSet'))));
  p.focus();
}

function renderHeader() {
  document.querySelector('.skip').textContent = t('skip');
  $('lang-label').textContent = t('language');
  $('lang').value = lang;
  const sess = $('session');
  const acct = $('account');
  sess.replaceChildren();
  acct.replaceChildren();
  if (!session?.me) return;
  if (session.purpose) {
    sess.append(h('span', { class: 'plabel' }, t('purposeLabel')), ' ', h('strong', { 'data-testid': 'purpose-shown' }, session.purpose), ' ',
      h('button', { type: 'button', class: 'link noprint', 'data-testid': 'purpose-change', onclick: () => { session.changingPurpose = true; render(); } }, t('purposeChange')));
  }
  acct.append(h('span', { 'data-testid': 'whoami' }, t('signedInAs')(session.me.name, session.me.role)), ' ',
    h('button', { type: 'button', 'data-testid': 'logout', onclick: () => signOut() }, t('signOut')));
}

function renderNav(current) {
  const nav = $('nav');
  nav.replaceChildren();
  if (!session?.me || !session.purpose || session.changingPurpose) return;
  nav.append(h('ul', {}, VIEWS.filter(allowed).map((v) => h('li', {}, h('a', {
    href: '#/' + v.id, 'data-testid': 'nav-' + v.id, 'aria-current': v.id === current ? 'page' : undefined,
  }, t('nav')[v.id])))));
}

function render() {
  destroyCharts();
  renderHeader();
  const main = $('main');
  main.replaceChildren();
  $('printed').textContent = '';
  if (!session?.me) { renderNav(); loginView(main); return; }
  if (!session.purpose || session.changingPurpose) { renderNav(); purposeView(main); return; }
  const wanted = location.hash.replace(/^#\//, '');
  const view = VIEWS.find((v) => v.id === wanted);
  if (!view) {
    const first = VIEWS.find(allowed);
    renderNav();
    if (first) location.replace('#/' + first.id); // hashchange renders it
    return;
  }
  renderNav(view.id);
  if (!allowed(view)) {
    main.append(h('h1', {}, t('nav')[view.id]));
    showError(t('forbiddenView')(session.me.role));
    return;
  }
  RENDER[view.id](main);
}

window.addEventListener('hashchange', () => { showError(''); showNotice(''); render(); });
$('lang').addEventListener('change', (e) => { setLang(e.target.value); render(); });
/**
 * boot finishes a provider sign-in coming back, or finds the session of an
 * earlier one (a reload), then renders.
 */
async function boot() {
  setLang(lang);
  if (location.hash.startsWith('#oidc?')) {
    const fragment = location.hash.slice('#oidc?'.length);
    // The code leaves the address bar and the history at once.
    history.replaceState(null, '', location.pathname + location.search);
    $('main').replaceChildren(h('p', {}, t('loading')));
    await run(() => finishOIDC(fragment));
  }
  try {
    const resp = await fetch('/v1/session', { credentials: 'same-origin', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer' });
    if (resp.ok) {
      const info = await resp.json();
      signin = { oidc: info.oidc || null };
      if (!session && info.session) {
        session = { cookie: true, csrf: info.session.csrf, idleMs: info.session.idle_timeout_seconds * 1000, me: null, purpose: '' };
        try {
          session.me = await apiJSON('GET', '/v1/me');
        } catch (e) {
          session = null;
          showError(e.message);
        }
      }
    }
  } catch { /* no provider sign-in offered; tokens still work */ }
  render();
}

boot();
