// The storefront: sign up or in, browse, add a test card, order and watch the saga decide,
// past orders, support tickets, and the customer's own data (export, erase). Only the public
// API; the token lives in sessionStorage.

import { api, ApiError, fill, follow, h, money, problemView, session, showProblem, sleep, statusBadge, when } from './api.js';

const $ = (selector) => document.querySelector(selector);

// The simulated card network's test numbers (services/payments, domain/card.rs).
const TEST_CARDS = [
  ['4242424242424242', 'approved'],
  ['4000000000000002', 'declined: card_declined'],
  ['4000000000009995', 'declined: insufficient_funds'],
  ['4000000000000119', 'transient error, retried, then approved'],
  ['4000000000003220', 'slow: answers after a delay (payment timeout)'],
];

const TERMINAL = new Set(['confirmed', 'rejected', 'cancelled']);
const POLL_MS = 500;

const state = { products: [], cart: new Map(), cards: [], watching: null };

function formProblem(form) { return form.querySelector('.form-problem'); }

/** Runs `action` with the button disabled, showing any error in `problemTarget`. */
async function busy(button, problemTarget, context, action) {
  button.disabled = true;
  showProblem(problemTarget, null);
  try {
    return await action();
  } catch (error) {
    showProblem(problemTarget, error, context);
    if (error instanceof ApiError && error.status === 401) signOut();
    return undefined;
  } finally {
    button.disabled = false;
  }
}

function flash(text) {
  const note = h('div', { class: 'notice' }, text);
  $('#flash').replaceChildren(note);
  setTimeout(() => note.remove(), 6000);
}

// ---- session ----

function customerId() { return session.claims?.sub; }

function render() {
  const claims = session.claims;
  const customer = claims && claims.role === 'customer';
  $('#welcome').classList.toggle('hidden', Boolean(customer));
  $('#shop').classList.toggle('hidden', !customer);
  $('#sign-out').classList.toggle('hidden', !claims);
  $('#who').textContent = claims ? `${session.get('name') || claims.sub} (${claims.role})` : '';
  if (claims && !customer) {
    $('#flash').replaceChildren(h('div', { class: 'notice' },
      `You are signed in as ${claims.role}; the shop is for customers. Staff use the `, h('a', { href: '/ui' }, 'console'), '.'));
  }
  if (customer) {
    state.cards = session.get('cards') || [];
    renderCards();
    loadProducts();
    loadOrders();
    loadTickets();
  } else {
    prefillSignUp();
  }
}

function signOut() {
  session.clear();
  state.cart.clear();
  if (state.watching) state.watching.abort();
  $('#live').replaceChildren();
  render();
}

function prefillSignUp() {
  const form = $('#sign-up-form');
  if (form.email.value) return;
  const suffix = Math.random().toString(36).slice(2, 8);
  form.name.value = 'Ada Lovelace';
  form.email.value = `ada.${suffix}@example.com`;
  form.password.value = 'correct horse battery';
  form.line1.value = "12 St James's Square";
  form.city.value = 'London';
  form.postal_code.value = 'SW1Y 4JH';
  form.country.value = 'GB';
}

async function signIn(email, password) {
  const { body } = await api('POST', '/auth/token', { body: { email, password } });
  session.token = body.access_token;
}

$('#sign-up-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form.querySelector('button'), formProblem(form), 'Sign-up refused', async () => {
    const registration = {
      email: form.email.value.trim(), name: form.name.value.trim(), password: form.password.value,
      address: { line1: form.line1.value, city: form.city.value, postal_code: form.postal_code.value, country: form.country.value.trim().toUpperCase() },
    };
    await api('POST', '/customers', { body: registration });
    await signIn(registration.email, registration.password);
    session.put('name', registration.name);
    flash(`Welcome, ${registration.name}. Add a test card, then order something.`);
    render();
  });
});

$('#sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form.querySelector('button'), formProblem(form), 'Sign-in refused', async () => {
    await signIn(form.email.value.trim(), form.password.value);
    const profile = await api('GET', `/customers/${customerId()}`).catch(() => null);
    if (profile?.body?.name) session.put('name', profile.body.name);
    render();
  });
});

$('#sign-out').addEventListener('click', signOut);

// ---- products and cart ----

async function loadProducts() {
  try {
    const { body } = await api('GET', '/products?limit=200');
    state.products = body.items || [];
    showProblem($('#products-problem'), null);
  } catch (error) {
    showProblem($('#products-problem'), error, 'Cannot load the products');
  }
  $('#products').replaceChildren(...state.products.map((product) => {
    const quantity = h('input', { type: 'number', min: 1, max: 1000, value: 1, 'aria-label': `quantity of ${product.name}` });
    return h('div', { class: 'product', dataset: { sku: product.sku } },
      h('div', { class: 'name' }, product.name),
      h('div', { class: 'muted small' }, product.sku),
      h('div', { class: 'price' }, money(product.price)),
      h('div', { class: 'stock' }, product.available > 0 ? `${product.available} in stock` : 'out of stock'),
      h('div', { class: 'row' }, quantity,
        h('button', { type: 'button', class: 'secondary add-to-cart', onclick: () => addToCart(product, Number(quantity.value)) }, 'Add to cart')));
  }));
  renderCart();
}

function addToCart(product, quantity) {
  if (!Number.isFinite(quantity) || quantity < 1) quantity = 1;
  state.cart.set(product.sku, (state.cart.get(product.sku) || 0) + quantity);
  renderCart();
}

function renderCart() {
  const lines = [...state.cart.entries()].map(([sku, quantity]) => ({ sku, quantity, product: state.products.find((p) => p.sku === sku) }));
  if (!lines.length) {
    $('#cart').replaceChildren(h('p', { class: 'muted' }, 'Empty. Add something from the products.'));
    return;
  }
  const total = lines.reduce((sum, line) => sum + (line.product?.price?.amount || 0) * line.quantity, 0);
  const currency = lines[0].product?.price?.currency || 'EUR';
  $('#cart').replaceChildren(
    ...lines.map((line) => h('div', { class: 'cart-line' },
      h('span', {}, `${line.quantity} × ${line.product?.name || line.sku}`),
      h('span', {}, money(line.product ? { amount: line.product.price.amount * line.quantity, currency } : null), ' ',
        h('button', { type: 'button', class: 'link', 'aria-label': `remove ${line.sku}`, onclick: () => { state.cart.delete(line.sku); renderCart(); } }, '✕')))),
    h('div', { class: 'cart-total' }, h('span', {}, 'Total'), h('span', {}, money({ amount: total, currency }))));
}

// ---- cards ----

function renderCards() {
  $('#test-cards').replaceChildren(...TEST_CARDS.map(([number, outcome]) => h('tr', {},
    h('td', {}, h('code', {}, number)),
    h('td', { class: 'muted' }, outcome),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { $('#card-form').card_number.value = number; } }, 'use')))));
  const select = $('#card-select');
  select.replaceChildren(...(state.cards.length
    ? state.cards.map((card) => h('option', { value: card.token }, `${card.brand} •••• ${card.last4} (${card.exp_month}/${card.exp_year})`))
    : [h('option', { value: '' }, 'no card yet: add one below')]));
  if (state.cards.length) select.value = state.cards[state.cards.length - 1].token;
}

$('#card-form').exp_year.value = new Date().getFullYear() + 3;

$('#card-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form.querySelector('button[type=submit]'), formProblem(form), 'Card refused', async () => {
    const card = {
      card_number: form.card_number.value.replace(/\s+/g, ''), exp_month: Number(form.exp_month.value),
      exp_year: Number(form.exp_year.value), cvc: form.cvc.value,
    };
    const { body } = await api('POST', '/payment-methods', { body: card });
    state.cards.push(body);
    session.put('cards', state.cards);
    form.card_number.value = '';
    renderCards();
    flash(`Card •••• ${body.last4} added.`);
  });
});

// ---- placing an order and watching it ----

$('#place-order').addEventListener('click', (event) => {
  busy(event.target, $('#order-problem'), 'Order refused', async () => {
    const items = [...state.cart.entries()].map(([sku, quantity]) => ({ sku, quantity }));
    if (!items.length) throw new Error('the cart is empty');
    const token = $('#card-select').value;
    if (!token) throw new Error('add a card first');
    // One key per attempt: a retry of this very request (say, after a network error) could
    // reuse it and would get the same order back rather than a second one.
    const key = crypto.randomUUID();
    const { body } = await api('POST', '/orders', { body: { items, payment_token: token }, headers: { 'Idempotency-Key': key } });
    state.cart.clear();
    renderCart();
    watch(body.id);
  });
});

// The saga live, from the order's event stream: one event per status change, pushed by the
// server as the orders service commits it (no polling); then the composed view once settled.
async function watch(orderId) {
  if (state.watching) state.watching.abort();
  const watching = new AbortController();
  state.watching = watching;
  const started = performance.now();
  const seen = [];
  const panel = h('div', { class: 'live', id: 'order-live', dataset: { order: orderId, status: 'pending', source: 'events' } });
  $('#live').replaceChildren(panel);
  const render = (view, problem) => {
    const status = seen.at(-1)?.status || 'pending';
    const reason = seen.at(-1)?.reason || view?.reason;
    panel.dataset.status = status;
    fill(panel,
      h('div', { class: 'muted small' }, 'Order ', h('code', {}, orderId)),
      h('div', { class: 'big' }, TERMINAL.has(status) ? null : h('span', { class: 'spinner', 'aria-hidden': 'true' }),
        h('span', { id: 'order-status' }, statusBadge(status)),
        reason ? h('span', { class: 'small muted' }, reason.replaceAll('_', ' ')) : null),
      view ? h('div', { class: 'small' }, `Total ${money(view.total)}`, view.payment?.last4 ? ` · card •••• ${view.payment.last4}` : '',
        view.payment?.status ? ` · payment ${view.payment.status}` : '') : null,
      view?.degraded?.length ? h('div', { class: 'small muted' }, `Partly shown: ${view.degraded.join(', ')} did not answer in time.`) : null,
      h('ol', {}, seen.map((step) => h('li', { dataset: { status: step.status } }, `${step.status} after ${step.after.toFixed(2)} s`))),
      problem ? problemView(problem, 'Cannot follow the order') : null,
    );
  };
  render(null, null);
  let problem = null;
  try {
    await follow(`/orders/${orderId}/events`, ({ data }) => {
      seen.push({ status: data.status, reason: data.reason, after: (performance.now() - started) / 1000 });
      render(null, null);
    }, { signal: watching.signal, until: ({ data }) => TERMINAL.has(data.status) });
  } catch (error) {
    problem = error;
  }
  if (watching.signal.aborted) return;
  let view = null;
  try {
    view = (await api('GET', `/orders/${orderId}`)).body;
  } catch (error) {
    problem ??= error;
  }
  if (view && seen.at(-1)?.status !== view.status) {
    seen.push({ status: view.status, reason: view.reason, after: (performance.now() - started) / 1000 });
  }
  render(view, problem);
  loadOrders();
}

// ---- past orders ----

async function loadOrders() {
  const target = $('#orders');
  try {
    const { body } = await api('GET', `/orders?customer_id=${customerId()}&limit=50`);
    const items = body.items || [];
    const select = $('#ticket-order');
    select.replaceChildren(h('option', { value: '' }, '(none)'),
      ...items.map((o) => h('option', { value: o.id || o.order_id }, `${(o.id || o.order_id).slice(0, 8)}… ${o.status}`)));
    target.replaceChildren(items.length
      ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Order'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Items'), h('th', { class: 'num' }, 'Total'), h('th', {}, ''))),
        h('tbody', {}, items.map((o) => {
          const id = o.id || o.order_id;
          return h('tr', { dataset: { order: id } },
            h('td', {}, h('code', {}, id.slice(0, 8)), '…'),
            h('td', {}, statusBadge(o.status), o.reason ? h('span', { class: 'small muted' }, ` ${o.reason}`) : null),
            h('td', { class: 'num' }, o.item_count ?? ''),
            h('td', { class: 'num' }, typeof o.total === 'number' ? money({ amount: o.total, currency: 'EUR' }) : money(o.total)),
            h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => showOrder(id) }, 'details')));
        })))
      : h('p', { class: 'muted' }, 'No orders yet.'));
  } catch (error) {
    showProblem(target, error, 'Cannot list your orders');
  }
}

async function showOrder(id) {
  const target = $('#order-detail');
  try {
    const { body: o } = await api('GET', `/orders/${id}`);
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel order');
    const problem = h('div');
    cancel.addEventListener('click', () => busy(cancel, problem, 'Cannot cancel', async () => {
      await api('POST', `/orders/${id}/cancel`);
      flash('Cancellation requested: the order is refunded and restocked.');
      watch(id);
    }));
    fill(target, h('h3', {}, 'Order ', h('code', {}, o.id)),
      h('p', {}, statusBadge(o.status), o.reason ? ` ${o.reason}` : '', ` · placed ${when(o.created_at)} · updated ${when(o.updated_at)}`),
      h('table', {}, h('tbody', {}, (o.items || []).map((item) => h('tr', {},
        h('td', {}, item.quantity, ' × ', item.name || item.sku), h('td', { class: 'num' }, money(item.unit_price)))),
        h('tr', {}, h('th', {}, 'Total'), h('th', { class: 'num' }, money(o.total))))),
      o.payment ? h('p', { class: 'small muted' }, `Payment ${o.payment.status || '?'}${o.payment.last4 ? `, card •••• ${o.payment.last4}` : ''}`) : null,
      o.status === 'confirmed' ? cancel : null, problem);
  } catch (error) {
    showProblem(target, error, 'Cannot show the order');
  }
}

// ---- support ----

$('#ticket-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form.querySelector('button'), formProblem(form), 'Ticket refused', async () => {
    const ticket = { subject: form.subject.value, message: form.message.value };
    if (form.order_id.value) ticket.order_id = form.order_id.value;
    const { body } = await api('POST', '/tickets', { body: ticket });
    form.reset();
    flash(`Ticket ${body.id.slice(0, 8)}… opened; support will answer.`);
    loadTickets();
  });
});

async function loadTickets() {
  const target = $('#tickets');
  try {
    const { body } = await api('GET', '/tickets');
    const items = body.items || [];
    target.replaceChildren(items.length
      ? h('table', {}, h('tbody', {}, items.map((t) => h('tr', {},
        h('td', {}, t.subject), h('td', {}, statusBadge(t.status)), h('td', { class: 'muted small' }, when(t.created_at || t.opened_at))))))
      : h('p', { class: 'muted small' }, 'No tickets.'));
  } catch (error) {
    showProblem(target, error, 'Cannot list your tickets');
  }
}

// ---- your data ----

$('#export').addEventListener('click', (event) => {
  busy(event.target, $('#data-problem'), 'Export refused', async () => {
    const { body } = await api('GET', `/customers/${customerId()}/export`);
    const text = JSON.stringify(body, null, 2);
    const link = $('#export-download');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    link.classList.remove('hidden');
    $('#data-output').replaceChildren(h('p', { class: 'small muted' },
      `${(body.orders || []).length} orders, ${(body.payments || []).length} payments, ${(body.tickets || []).length} tickets.`),
    h('pre', { id: 'export-json' }, text));
  });
});

$('#erase').addEventListener('click', (event) => {
  if (!window.confirm('Erase your personal data from every service? This cannot be undone.')) return;
  busy(event.target, $('#data-problem'), 'Erasure refused', async () => {
    const id = customerId();
    await api('DELETE', `/customers/${id}`);
    const progress = h('div', { class: 'notice' }, 'Erasing…');
    $('#data-output').replaceChildren(progress);
    for (let i = 0; i < 120; i += 1) {
      const { body } = await api('GET', `/customers/${id}/erasure`);
      // Customers answers `{complete, services: [{service, done_at?}]}`; API.md describes
      // `{status, services: {name: status}}`: either is read.
      const complete = body.complete === true || body.status === 'complete';
      const steps = Array.isArray(body.services)
        ? body.services.map((s) => [s.service, s.done_at ? 'done' : 'pending'])
        : Object.entries(body.services || {});
      fill(progress, `Erasure ${complete ? 'complete' : 'in progress'}: `,
        steps.map(([name, state]) => h('span', {}, ` ${name} `, statusBadge(state))));
      if (complete) break;
      await sleep(POLL_MS);
    }
    await sleep(1500);
    signOut();
    flash('Your personal data is erased. Goodbye.');
  });
});

render();
