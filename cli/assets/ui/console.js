// The operator console: a live overview (from /metrics and /api/v1/admin/services), the
// services and their projections (rebuild with progress), sagas (searched by order or
// customer, each step with its duration, compensations marked), dead letters (retry, drop),
// one order's timeline across services, audit verification, and the data map with access
// reports. The API decides who may do what; a 403 is shown as such, never hidden.

import { api, ApiError, fill, h, money, problemView, session, showProblem, sleep, statusBadge, when } from './api.js';
import { chart, sparkline } from './charts.js';
import { loadGovernance } from './governance.js';

const $ = (selector) => document.querySelector(selector);
const HISTORY = 90;

let current = 'overview';
let timer = null;

// ---- session ----

function staff() {
  const claims = session.claims;
  return claims && (claims.role === 'admin' || claims.role === 'support') ? claims : null;
}

function render() {
  const claims = staff();
  $('#login').classList.toggle('hidden', Boolean(claims));
  $('#console').classList.toggle('hidden', !claims);
  $('#sign-out').classList.toggle('hidden', !session.claims);
  $('#who').textContent = claims ? `${claims.sub} (${claims.role})` : '';
  if (claims) show(location.hash.slice(1) || current);
  else stop();
}

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector('button');
  const problem = form.querySelector('.form-problem');
  button.disabled = true;
  showProblem(problem, null);
  try {
    const { body } = await api('POST', '/auth/token', { body: { email: form.email.value.trim(), password: form.password.value } });
    session.token = body.access_token;
    if (!staff()) {
      session.token = null;
      throw new ApiError(403, { title: 'Forbidden', detail: 'the console is for support and admin staff; customers use the shop' });
    }
    render();
  } catch (error) {
    showProblem(problem, error, 'Sign-in refused');
  } finally {
    button.disabled = false;
  }
});

$('#sign-out').addEventListener('click', () => { session.clear(); render(); });

/** Shows an error; a 401 ends the session (the token expired). */
function fail(target, error, context) {
  showProblem(target, error, context);
  if (error instanceof ApiError && error.status === 401) { session.clear(); render(); }
}

// ---- tabs ----

const TABS = { overview: startOverview, services: startServices, sagas: loadSagas, dlq: loadDlq, orders: loadRecent, audit: () => {}, governance: loadGovernance };

function stop() { if (timer) clearInterval(timer); timer = null; }

function every(ms, action) {
  stop();
  action();
  timer = setInterval(action, ms);
}

function show(tab) {
  if (!TABS[tab]) tab = 'overview';
  current = tab;
  for (const button of document.querySelectorAll('nav.tabs button')) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
  for (const panel of document.querySelectorAll('.tab')) panel.classList.toggle('hidden', panel.id !== `tab-${tab}`);
  if (location.hash.slice(1) !== tab) history.replaceState(null, '', `#${tab}`);
  stop();
  TABS[tab]();
}

for (const button of document.querySelectorAll('nav.tabs button')) button.addEventListener('click', () => show(button.dataset.tab));

// ---- metrics ----

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function sum(samples, name, where = () => true) {
  return samples.filter((s) => s.name === name && where(s.labels)).reduce((total, s) => total + s.value, 0);
}

/** The gateway's request-duration buckets, summed over routes: Map(le → count). */
function buckets(samples) {
  const byLe = new Map();
  for (const s of samples) {
    if (s.name !== 'tessera_http_request_duration_seconds_bucket' || s.labels.service !== 'gateway') continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + s.value);
  }
  return byLe;
}

/** The 99th percentile of the requests between two bucket snapshots, interpolated in its bucket. */
function p99(before, after) {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => (after.get(le) || 0) - (before?.get(le) || 0));
  const total = counts.at(-1);
  if (!total || total <= 0) return null;
  const rank = 0.99 * total;
  for (let i = 0; i < les.length; i += 1) {
    if (counts[i] >= rank) {
      const lower = i === 0 ? 0 : les[i - 1];
      const upper = les[i] === Infinity ? lower : les[i];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return inBucket > 0 ? lower + (upper - lower) * ((rank - below) / inBucket) : upper;
    }
  }
  return null;
}

const isOrderPlacement = (l) => l.service === 'gateway' && l.method === 'POST' && l.route === '/api/v1/orders' && /^2/.test(l.status);
const isServerError = (l) => l.service === 'gateway' && /^5/.test(l.status);

const series = { orders: [], p99: [], errors: [], outbox: [], lag: new Map() };
let previous = null;

function push(list, value) {
  list.push(value);
  while (list.length > HISTORY) list.shift();
}

function startOverview() {
  // Each service's lag chart is made once and redrawn in place.
  every(1000, tickOverview);
}

async function tickOverview() {
  const problem = $('#overview-problem');
  const [metrics, services] = await Promise.allSettled([
    fetch('/metrics', { headers: { Accept: 'text/plain' } }).then((r) => {
      if (!r.ok) throw new ApiError(r.status, { title: 'Cannot read /metrics', detail: `HTTP ${r.status}` });
      return r.text();
    }),
    api('GET', '/admin/services'),
  ]);
  const now = performance.now();
  if (metrics.status === 'fulfilled') {
    const samples = parseMetrics(metrics.value);
    const sample = {
      at: now,
      orders: sum(samples, 'tessera_http_requests_total', isOrderPlacement),
      errors: sum(samples, 'tessera_http_requests_total', isServerError),
      buckets: buckets(samples),
    };
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      push(series.orders, Math.max(0, (sample.orders - previous.orders) / seconds));
      push(series.errors, Math.max(0, (sample.errors - previous.errors) / seconds));
      push(series.p99, p99(previous.buckets, sample.buckets));
    }
    previous = sample;
    const last = (list) => list.at(-1);
    $('#m-orders').textContent = last(series.orders) === undefined ? '…' : last(series.orders).toFixed(1);
    const latency = last(series.p99);
    $('#m-p99').textContent = latency === undefined ? '…' : latency === null ? 'idle' : latency < 1 ? `${(latency * 1000).toFixed(1)} ms` : `${latency.toFixed(2)} s`;
    $('#m-errors').textContent = last(series.errors) === undefined ? '…' : last(series.errors).toFixed(2);
    sparkline($('#c-orders'), series.orders, { capacity: HISTORY });
    sparkline($('#c-p99'), series.p99, { capacity: HISTORY, colour: '#3d5a80' });
    sparkline($('#c-errors'), series.errors, { capacity: HISTORY, colour: '#b42318' });
  }
  if (services.status === 'fulfilled') {
    showProblem(problem, null);
    const list = services.value.body.services || [];
    push(series.outbox, list.reduce((total, s) => total + (s.outbox?.unsent || 0), 0));
    $('#m-outbox').textContent = String(series.outbox.at(-1));
    sparkline($('#c-outbox'), series.outbox, { capacity: HISTORY, colour: '#b7791f' });
    drawLag(list);
  } else {
    const error = services.reason;
    if (error instanceof ApiError && error.status === 403) {
      $('#m-outbox').textContent = 'admin only';
      problem.replaceChildren(h('div', { class: 'notice' }, 'Backlog and lag come from ', h('code', {}, '/api/v1/admin/services'),
        `, which the API keeps for admins (${error.problem.detail || 'forbidden'}). Request rates and latency are shown.`));
    } else {
      fail(problem, error, 'Cannot read the services');
    }
  }
}

function drawLag(list) {
  const container = $('#lag');
  for (const service of list) {
    const name = service.service;
    const lags = (service.projections || []).map((p) => p.lag_events || 0);
    const value = service.health === 'up' ? (lags.length ? Math.max(...lags) : 0) : null;
    if (!series.lag.has(name)) {
      const svg = chart(`projection lag of ${name}`);
      const label = h('span', { class: 'num' });
      container.append(h('div', { class: 'lag', dataset: { service: name } },
        h('div', { class: 'head' }, h('span', {}, name, ' ', statusBadge(service.health)), label), svg));
      series.lag.set(name, { values: [], svg, label, box: container.lastChild });
    }
    const entry = series.lag.get(name);
    push(entry.values, value);
    entry.box.querySelector('.badge').replaceWith(statusBadge(service.health));
    entry.label.textContent = value === null ? 'no answer' : (service.projections || []).length ? `${value} events` : 'no read models';
    sparkline(entry.svg, entry.values, { capacity: HISTORY, colour: '#5d6875' });
  }
}

// ---- services and projections ----

const rebuilding = new Set();

function startServices() { every(1000, loadServices); }

async function loadServices() {
  const target = $('#services');
  let list;
  try {
    list = (await api('GET', '/admin/services')).body.services || [];
  } catch (error) {
    fail(target, error, 'Cannot read the services');
    $('#projections').replaceChildren();
    return;
  }
  target.replaceChildren(h('table', { id: 'services-table' },
    h('thead', {}, h('tr', {}, ['Service', 'Health', 'Events', 'Outbox unsent', 'Oldest unsent', 'Dead letters', 'Stuck sagas', 'Store read'].map((t, i) => h('th', { class: i > 1 ? 'num' : '' }, t)))),
    h('tbody', {}, list.map((s) => h('tr', { dataset: { service: s.service } },
      h('td', {}, s.service),
      h('td', {}, statusBadge(s.health), s.error ? h('div', { class: 'small muted' }, s.error) : null),
      h('td', { class: 'num' }, s.events ?? '–'),
      h('td', { class: 'num' }, s.outbox?.unsent ?? '–'),
      h('td', { class: 'num' }, typeof s.outbox?.oldest_unsent_seconds === 'number' ? `${s.outbox.oldest_unsent_seconds.toFixed(1)} s` : '–'),
      h('td', { class: 'num' }, s.dead_letters ?? '–'),
      h('td', { class: 'num' }, s.stuck_sagas ?? '–'),
      h('td', { class: 'num' }, typeof s.store_read_ms === 'number' ? `${s.store_read_ms.toFixed(2)} ms` : '–'))))));
  const projections = list.flatMap((s) => (s.projections || []).map((p) => ({ service: s.service, ...p })));
  $('#projections').replaceChildren(projections.length ? h('table', { id: 'projections-table' },
    h('thead', {}, h('tr', {}, ['Projection', 'Service', 'Mode', 'Position', 'Lag', 'Rebuilds', 'State', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, projections.map((p) => {
      const problem = h('div');
      const button = h('button', { type: 'button', class: 'secondary rebuild', disabled: p.rebuilding || rebuilding.has(p.name) }, 'Rebuild');
      button.addEventListener('click', () => rebuild(p.name, button, problem));
      const head = Number(p.head) || 0;
      return h('tr', { dataset: { projection: p.name } },
        h('td', {}, h('code', {}, p.name)), h('td', {}, p.service), h('td', {}, p.mode ?? ''),
        h('td', {}, `${p.position ?? '?'} / ${p.head ?? '?'}`),
        h('td', {}, `${p.lag_events ?? 0} events`, typeof p.lag_seconds === 'number' ? `, ${p.lag_seconds.toFixed(1)} s` : ''),
        h('td', { class: 'num' }, p.rebuilds ?? 0),
        h('td', {}, p.rebuilding
          ? [statusBadge('rebuilding'), ' ', h('progress', { max: head || 1, value: Math.min(Number(p.position) || 0, head || 1) })]
          : statusBadge('up')),
        h('td', {}, button, problem));
    })))
    : h('p', { class: 'muted' }, 'No projections reported.'));
  for (const name of [...rebuilding]) {
    const p = projections.find((x) => x.name === name);
    if (p && !p.rebuilding) rebuilding.delete(name);
  }
}

async function rebuild(name, button, problem) {
  if (!window.confirm(`Rebuild the projection ${name} from its events?`)) return;
  button.disabled = true;
  try {
    await api('POST', `/admin/projections/${encodeURIComponent(name)}/rebuild`);
    rebuilding.add(name);
    problem.replaceChildren(h('span', { class: 'small muted' }, 'requested'));
  } catch (error) {
    button.disabled = false;
    fail(problem, error, 'Rebuild refused');
  }
}

// ---- sagas ----

const NS = 'http://www.w3.org/2000/svg';
let sagaCursor = null;

async function loadSagas() {
  searchSagas();
  const stuck = $('#stuck');
  try {
    const items = (await api('GET', '/admin/sagas?state=stuck')).body.items || [];
    stuck.replaceChildren(items.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['Saga', 'Id', 'Reason', 'Since', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, items.map((s) => h('tr', {}, h('td', {}, s.saga), h('td', {}, h('code', {}, s.id)),
        h('td', {}, statusBadge('stuck'), ' ', s.stuck || s.reason), h('td', {}, when(s.updated_at)),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => findSaga(s.id) }, 'steps'), ' ',
          h('button', { type: 'button', class: 'link', onclick: () => lookup(s.id) }, 'timeline'))))))
      : h('p', { class: 'muted' }, 'No stuck sagas.'));
  } catch (error) {
    fail(stuck, error, 'Cannot list the stuck sagas');
  }
  const flight = $('#in-flight');
  try {
    const items = (await api('GET', '/orders?status=pending&limit=50')).body.items || [];
    flight.replaceChildren(items.length ? orderTable(items) : h('p', { class: 'muted' }, 'None: every order is decided.'));
  } catch (error) {
    fail(flight, error, 'Cannot list the pending orders');
  }
}

$('#saga-form').addEventListener('submit', (event) => {
  event.preventDefault();
  searchSagas();
});

$('#saga-more').addEventListener('click', () => searchSagas({ more: true }));

/** Shows the sagas of one id in the search, whatever their state. */
function findSaga(id) {
  $('#saga-q').value = id;
  $('#saga-state').value = '';
  $('#saga-type').value = '';
  searchSagas();
}

/** Runs the search the form describes; `more` appends the next page. */
async function searchSagas({ more = false } = {}) {
  const target = $('#saga-results');
  const button = $('#saga-more');
  const query = new URLSearchParams({ limit: '20' });
  for (const [name, value] of [['q', $('#saga-q').value.trim()], ['state', $('#saga-state').value], ['type', $('#saga-type').value]]) {
    if (value) query.set(name, value);
  }
  if (more && sagaCursor) query.set('cursor', sagaCursor);
  button.disabled = true;
  let page;
  try {
    page = (await api('GET', `/admin/sagas?${query}`)).body;
  } catch (error) {
    fail(target, error, 'Cannot search the sagas');
    button.classList.add('hidden');
    return;
  } finally {
    button.disabled = false;
  }
  const items = page.items || [];
  sagaCursor = page.next_cursor || null;
  button.classList.toggle('hidden', !sagaCursor);
  if (!more) target.replaceChildren();
  if (!more && !items.length) target.append(h('p', { class: 'muted', id: 'saga-none' }, 'No saga matches.'));
  target.append(...items.map(sagaView));
}

function millis(ms) {
  if (typeof ms !== 'number') return '–';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(3)} s`;
}

/** One saga: what it is and where it stands, then each step and compensation on a shared time axis. */
function sagaView(saga) {
  const steps = saga.steps || [];
  const start = Date.parse(saga.started_at);
  const ends = steps.map((s) => Date.parse(s.ended_at || saga.updated_at));
  const span = Math.max(1, ...ends.map((end) => end - start), Date.parse(saga.updated_at) - start);
  return h('div', { class: 'saga', dataset: { sagaId: saga.id, saga: saga.saga, status: saga.status } },
    h('div', { class: 'head' },
      h('strong', {}, saga.saga), h('code', {}, saga.id), statusBadge(saga.status),
      saga.stuck ? statusBadge('stuck') : null,
      h('span', { class: 'small muted' }, 'started ', when(saga.started_at)),
      h('span', { class: 'took' }, saga.duration_ms === null || saga.duration_ms === undefined ? 'running' : `took ${millis(saga.duration_ms)}`),
      saga.stuck || saga.reason ? h('span', { class: 'small' }, saga.stuck ? `STUCK: ${saga.stuck}` : saga.reason) : null,
      h('button', { type: 'button', class: 'link', onclick: () => lookup(saga.id) }, 'order timeline')),
    steps.length
      ? h('ol', { class: 'saga-steps' }, steps.map((step) => stepView(step, start, span, saga.updated_at)))
      : h('p', { class: 'small muted' }, 'No step timings: this saga started before they were kept.'));
}

function stepView(step, start, span, updated) {
  const compensation = step.kind === 'compensation';
  const from = Date.parse(step.started_at) - start;
  const to = Date.parse(step.ended_at || updated) - start;
  const bar = document.createElementNS(NS, 'svg');
  bar.setAttribute('viewBox', '0 0 300 12');
  bar.setAttribute('preserveAspectRatio', 'none');
  const rect = document.createElementNS(NS, 'rect');
  const x = (Math.max(0, from) / span) * 300;
  for (const [name, value] of Object.entries({
    x: x.toFixed(1), y: 2, height: 8, rx: 2,
    width: Math.max(2, ((to - from) / span) * 300).toFixed(1),
    fill: compensation ? '#b7791f' : step.outcome === 'failed' || step.outcome === 'timed_out' ? '#b42318' : '#2f6f5e',
    'fill-opacity': step.ended_at ? 1 : 0.4,
  })) rect.setAttribute(name, String(value));
  bar.append(rect);
  const outcome = step.outcome || 'waiting';
  return h('li', { class: compensation ? 'compensation' : 'forward', dataset: { kind: step.kind, outcome, step: step.name } },
    h('span', { class: 'name' }, step.name),
    compensation ? h('span', { class: 'tag compensation' }, '↩ compensation') : h('span', { class: 'tag' }, 'step'),
    h('span', {}, statusBadge(outcome), step.attempts > 1 ? h('span', { class: 'small muted' }, ` ×${step.attempts}`) : null),
    h('span', { class: 'duration' }, step.ended_at ? millis(step.duration_ms) : 'waiting'),
    bar);
}

// ---- dead letters ----

$('#dlq-refresh').addEventListener('click', loadDlq);

async function loadDlq() {
  const target = $('#dlq');
  let items;
  try {
    items = (await api('GET', '/admin/dlq')).body.items || [];
  } catch (error) {
    fail(target, error, 'Cannot list the dead letters');
    return;
  }
  target.replaceChildren(items.length ? h('table', { id: 'dlq-table' },
    h('thead', {}, h('tr', {}, ['Id', 'Consumer', 'Message', 'Error', 'Attempts', 'State', 'Failed', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, items.map((d) => {
      const problem = h('div');
      const retry = h('button', { type: 'button', class: 'secondary retry', disabled: d.state === 'retry' }, 'Retry');
      const drop = h('button', { type: 'button', class: 'danger drop' }, 'Drop');
      retry.addEventListener('click', () => act(retry, problem, 'POST', `/admin/dlq/${encodeURIComponent(d.id)}/retry`, `Dead letter ${d.id} handed back for another delivery.`));
      drop.addEventListener('click', () => {
        if (window.confirm(`Drop dead letter ${d.id} for good?`)) act(drop, problem, 'DELETE', `/admin/dlq/${encodeURIComponent(d.id)}`, `Dead letter ${d.id} dropped.`);
      });
      return h('tr', { dataset: { id: d.id } },
        h('td', {}, h('code', {}, d.id)), h('td', {}, d.consumer),
        h('td', {}, d.name, h('div', { class: 'small muted' }, 'key ', h('code', {}, d.key))),
        h('td', { class: 'error' }, d.error), h('td', { class: 'num' }, d.attempts),
        h('td', {}, statusBadge(d.state)), h('td', { class: 'small' }, when(d.failed_at)),
        h('td', {}, h('div', { class: 'actions' }, retry, drop), problem));
    })))
    : h('p', { class: 'muted', id: 'dlq-empty' }, 'No dead letters.'));
}

async function act(button, problem, method, path, done) {
  button.disabled = true;
  try {
    await api(method, path);
    $('#dlq-note').replaceChildren(h('div', { class: 'notice', id: 'dlq-done' }, done));
    await loadDlq();
    // The subscriber picks a retry up within a second or so; look again until the letter is
    // gone (delivered) or parked again, to show the outcome.
    const id = path.split('/')[3];
    for (let i = 0; i < 20 && current === 'dlq'; i += 1) {
      await sleep(1000);
      await loadDlq();
      const row = document.querySelector(`#dlq-table tr[data-id="${CSS.escape(decodeURIComponent(id))}"]`);
      if (!row || row.querySelector('.badge-parked')) break;
    }
  } catch (error) {
    button.disabled = false;
    fail(problem, error, 'Refused');
  }
}

// ---- orders ----

function orderTable(items) {
  return h('table', {},
    h('thead', {}, h('tr', {}, ['Order', 'Customer', 'Status', 'Items', 'Total', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, items.map((o) => {
      const id = o.id || o.order_id;
      return h('tr', { dataset: { order: id } }, h('td', {}, h('code', {}, id)), h('td', { class: 'small' }, h('code', {}, o.customer_id || '')),
        h('td', {}, statusBadge(o.status), o.reason ? ` ${o.reason}` : ''), h('td', { class: 'num' }, o.item_count ?? ''),
        h('td', { class: 'num' }, typeof o.total === 'number' ? money({ amount: o.total, currency: 'EUR' }) : money(o.total)),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => lookup(id) }, 'timeline')));
    })));
}

async function loadRecent() {
  const target = $('#recent');
  try {
    const items = (await api('GET', '/orders?limit=20')).body.items || [];
    target.replaceChildren(items.length ? orderTable(items) : h('p', { class: 'muted' }, 'No orders yet. Place one in the shop.'));
  } catch (error) {
    fail(target, error, 'Cannot list the orders');
  }
}

function lookup(id) {
  show('orders');
  $('#order-id').value = id;
  showTimeline(id);
}

$('#lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  showTimeline($('#order-id').value.trim());
});

async function showTimeline(id) {
  const target = $('#order-view');
  target.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const [view, history, payments] = await Promise.allSettled([
    api('GET', `/orders/${encodeURIComponent(id)}`),
    api('GET', `/orders/${encodeURIComponent(id)}/history`),
    api('GET', `/payments?order_id=${encodeURIComponent(id)}`),
  ]);
  const parts = [];
  if (view.status === 'fulfilled') {
    const o = view.value.body;
    parts.push(h('dl', { class: 'facts', id: 'order-facts' },
      h('dt', {}, 'Order'), h('dd', {}, h('code', {}, o.id)),
      h('dt', {}, 'Status'), h('dd', {}, statusBadge(o.status), o.reason ? ` ${o.reason}` : ''),
      h('dt', {}, 'Customer'), h('dd', {}, o.customer?.name ?? '–', ' ', h('code', { class: 'small' }, o.customer?.id ?? '')),
      h('dt', {}, 'Items'), h('dd', {}, (o.items || []).map((i) => `${i.quantity} × ${i.name || i.sku}`).join(', ') || '–'),
      h('dt', {}, 'Total'), h('dd', {}, money(o.total)),
      h('dt', {}, 'Payment'), h('dd', {}, o.payment?.status ?? '–', o.payment?.last4 ? ` (•••• ${o.payment.last4})` : ''),
      h('dt', {}, 'Placed'), h('dd', {}, when(o.created_at), ' · updated ', when(o.updated_at)),
      o.degraded?.length ? [h('dt', {}, 'Degraded'), h('dd', {}, o.degraded.join(', '))] : null,
      correlation(history) ? [h('dt', {}, 'Correlation'), h('dd', {}, h('code', { id: 'correlation' }, correlation(history)))] : null,
      h('dt', {}, 'Request id'), h('dd', {}, h('code', { class: 'small' }, view.value.headers.get('x-request-id') || '–'))));
  } else {
    parts.push(problemView(view.reason, 'Order view'));
  }
  if (history.status === 'fulfilled') {
    parts.push(h('h3', {}, 'Timeline'), timeline(history.value.body, payments.status === 'fulfilled' ? payments.value.body : []));
  } else {
    parts.push(problemView(history.reason, 'History'));
  }
  if (payments.status === 'rejected') parts.push(problemView(payments.reason, 'Payments'));
  fill(target, parts);
}

/** A correlation or trace id, if the history carries one (in an event's data). */
function correlation(history) {
  if (history.status !== 'fulfilled') return null;
  for (const event of history.value.body.events || []) {
    const data = event.data || {};
    const id = data.correlation_id || data.trace_id || data.traceparent;
    if (id) return String(id);
  }
  return null;
}

function timeline(history, payments) {
  const entries = [];
  for (const e of history.events || []) {
    entries.push({ at: e.at, kind: 'event', service: 'orders', title: e.name, detail: e.data, extra: `v${e.version}` });
  }
  for (const s of history.sagas || []) {
    entries.push({ at: s.started_at, kind: 'saga', service: 'orders', title: `saga ${s.saga} started`, extra: '' });
    entries.push({ at: s.updated_at, kind: 'saga', service: 'orders', title: `saga ${s.saga}: ${typeof s.status === 'string' ? s.status : JSON.stringify(s.status)}`,
      extra: [s.step ? `step ${s.step}` : '', s.reason || '', s.stuck ? `STUCK: ${s.stuck}` : ''].filter(Boolean).join(' · ') });
  }
  for (const p of Array.isArray(payments) ? payments : payments?.items || []) {
    entries.push({ at: p.updated_at || p.created_at || null, kind: 'payment', service: 'payments', title: `payment ${p.status}`, detail: p, extra: p.last4 ? `•••• ${p.last4}` : '' });
  }
  entries.sort((a, b) => (a.at && b.at ? a.at.localeCompare(b.at) : a.at ? -1 : 1));
  return h('ol', { class: 'timeline', id: 'timeline' }, entries.map((e) => h('li', { class: e.kind, dataset: { kind: e.kind } },
    h('div', {}, h('strong', {}, e.title), h('span', { class: 'svc' }, e.service), e.extra ? h('span', { class: 'small muted' }, ` ${e.extra}`) : null),
    h('div', { class: 'at' }, e.at ? when(e.at) : 'time not reported'),
    e.detail ? h('details', {}, h('summary', {}, 'data'), h('pre', {}, JSON.stringify(e.detail, null, 2))) : null)));
}

// ---- audit ----

$('#verify').addEventListener('click', async (event) => {
  const button = event.target;
  const target = $('#audit');
  button.disabled = true;
  target.replaceChildren(h('p', { class: 'muted' }, 'Walking every chain…'));
  try {
    const { body } = await api('POST', '/admin/audit/verify');
    target.replaceChildren(
      h('p', { id: 'audit-verdict' }, body.ok ? statusBadge('ok') : statusBadge('bad'), body.ok ? ' Every chain is intact.' : ' A chain is broken: see below.'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Service', 'Records', 'Result', 'First bad index', 'Problem'].map((t, i) => h('th', { class: i === 1 || i === 3 ? 'num' : '' }, t)))),
        h('tbody', {}, (body.services || []).map((s) => h('tr', {}, h('td', {}, s.service), h('td', { class: 'num' }, s.records ?? '–'),
          h('td', {}, statusBadge(s.ok ? 'ok' : 'bad')), h('td', { class: 'num' }, s.first_bad_index ?? ''), h('td', { class: 'small' }, s.problem || s.error || ''))))));
  } catch (error) {
    fail(target, error, 'Cannot verify');
  } finally {
    button.disabled = false;
  }
});

window.addEventListener('hashchange', () => { if (staff()) show(location.hash.slice(1)); });
render();
