// The console's data and privacy tab: the data map (each personal field every service keeps,
// how it is protected, for how long and why, from the same declarations the sealing and
// masking code act on) and one person's access report (who read or changed their data, from
// every service's audit trail).

import { api, h, fill, showProblem, when } from './api.js';

const $ = (selector) => document.querySelector(selector);

/** `{kind, detail}` of a tagged declaration value, readably. */
function protection(p) {
  if (p.kind === 'plain') return `plain: ${p.detail}`;
  if (p.kind === 'masked_for_support') return 'masked for support';
  return p.kind;
}

function retention(r) {
  if (r.kind === 'days') return `${r.detail.days} days after ${r.detail.after}`;
  if (r.kind === 'with_record') return `with the record: ${r.detail}`;
  return 'until erasure';
}

function location(l) {
  if (l.kind === 'column') return `${l.table}.${l.column}`;
  if (l.kind === 'json') return `${l.table}.${l.column} → ${l.path}`;
  if (l.kind === 'message') return `${l.name}.${l.field}`;
  if (l.kind === 'objects') return `objects ${l.prefix}`;
  if (l.kind === 'response') return `${l.route} → ${l.field}`;
  return JSON.stringify(l);
}

let map = null;

async function loadMap() {
  const target = $('#data-map');
  if (map) return;
  try {
    const response = await fetch('/ui/data-map.json');
    if (!response.ok) throw new Error(`the data map answered ${response.status}`);
    map = await response.json();
  } catch (error) {
    showProblem(target, error, 'Cannot load the data map');
    return;
  }
  const services = [...new Set(map.map((f) => f.service))];
  const filter = $('#data-map-service');
  fill(filter, h('option', { value: '' }, 'every service'), services.map((s) => h('option', { value: s }, s)));
  filter.addEventListener('change', () => drawMap(filter.value));
  drawMap('');
}

function drawMap(service) {
  const rows = map.filter((f) => !service || f.service === service);
  fill($('#data-map'),
    h('table', { id: 'data-map-table' },
      h('thead', {}, h('tr', {}, ['Service', 'Field', 'Class', 'Protection', 'Retention', 'Purpose', 'Where'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.map((f) => h('tr', { dataset: { service: f.service } },
        h('td', {}, f.service), h('td', {}, f.field), h('td', {}, f.class.replace('_', ' ')),
        h('td', {}, f.protection.map(protection).join(', ')), h('td', {}, retention(f.retention)),
        h('td', { class: 'small' }, f.purpose),
        h('td', { class: 'small' }, f.locations.map(location).join('; ')))))),
    h('p', { class: 'muted small' }, `${rows.length} declared fields.`));
}

$('#accesses-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const id = $('#accesses-id').value.trim();
  const target = $('#accesses');
  target.replaceChildren(h('p', { class: 'muted' }, 'Reading every audit trail…'));
  try {
    const { body } = await api('GET', `/customers/${encodeURIComponent(id)}/accesses`);
    const items = body.items || [];
    fill(target,
      h('p', { class: 'muted small', id: 'accesses-count' }, `${items.length} records name this person's data.`),
      h('table', { id: 'accesses-table' },
        h('thead', {}, h('tr', {}, ['When', 'Service', 'Actor', 'Role', 'Action', 'Resource', 'Outcome'].map((t) => h('th', {}, t)))),
        h('tbody', {}, items.map((a) => h('tr', { dataset: { service: a.service, role: a.role, action: a.action } },
          h('td', {}, when(new Date(a.at / 1000).toISOString())), h('td', {}, a.service), h('td', { class: 'small' }, a.actor),
          h('td', {}, a.role), h('td', {}, a.action), h('td', { class: 'small' }, a.resource), h('td', {}, a.outcome))))));
  } catch (error) {
    showProblem(target, error, 'Cannot read the access report');
  }
});

export function loadGovernance() {
  loadMap();
}
