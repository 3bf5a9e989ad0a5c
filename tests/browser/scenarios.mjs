// Drives the storefront (/shop) and the operator console (/ui) of a running `tessera up` in
// Debian's chromium. Usage: node scenarios.mjs <base-url> <screenshot-dir>
// Environment: TESSERA_TEST_BROWSER (the chromium binary; default /usr/bin/chromium).
// Exits 0 when every step passed; otherwise prints the failing step and exits 1.
//
// (a) storefront: sign up, see a refused card explained, add the approving test card, order,
//     watch the order go from pending to confirmed, open a ticket, export the data;
// (b) console as admin: the live overview, that order's timeline, the sagas of the confirmed
//     and the declined order searched by id (each step timed, the compensation marked) and
//     filtered by state, a dead letter retried (the Rust test seeds one), a projection
//     rebuilt, audit verification, the data map and the customer's access report; as
//     support: a 403 shown and the timeline; then the customer erases their data.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node scenarios.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.TESSERA_TEST_BROWSER || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const failures = [];
const pages = new Map();
let step = 'start';

/** A fresh browser context (its own sessionStorage) and page, watched for script errors and CSP violations. */
async function page(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab = await context.newPage();
  pages.set(name, tab);
  tab.setDefaultTimeout(15_000);
  tab.on('pageerror', (error) => failures.push(`${name}: script error at step "${step}": ${error.message}`));
  tab.on('console', (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (load|execute|apply)/i.test(text)) failures.push(`${name}: CSP violation: ${text}`);
  });
  return tab;
}

async function shot(tab, file) {
  const path = join(shots, file);
  // From the top, so that the sticky header is drawn once, where it belongs.
  await tab.evaluate(() => window.scrollTo(0, 0));
  await tab.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Searches the console's sagas for `id` until its place-order saga shows `status` (a saga
 * settles a little after its order is decided); returns that saga's element. */
async function sagaOf(tab, id, status) {
  await tab.fill('#saga-q', id);
  for (let attempt = 0; ; attempt += 1) {
    await tab.click('#saga-search');
    const saga = await tab.waitForSelector(`#saga-results .saga[data-saga-id="${id}"][data-saga="place_order"]`);
    if (await saga.getAttribute('data-status') === status) return saga;
    if (attempt === 40) throw new Error(`the saga of ${id} stayed ${await saga.getAttribute('data-status')}, not ${status}`);
    await tab.waitForTimeout(250);
  }
}

/** A saga's steps as the console shows them. */
function stepsOf(saga) {
  return saga.$$eval('.saga-steps li', (items) => items.map((li) => ({
    step: li.dataset.step, kind: li.dataset.kind, outcome: li.dataset.outcome,
    duration: li.querySelector('.duration').textContent, tag: li.querySelector('.tag').textContent,
    marked: li.classList.contains('compensation'),
  })));
}

try {
  // ---- (a) storefront ----
  const shop = await page('shop');
  step = 'open the shop';
  await shop.goto(`${base}/shop`);
  await shop.waitForSelector('#sign-up-form');
  await shot(shop, 'shop-1-welcome.png');

  step = 'sign up';
  await shop.click('#sign-up');
  await shop.waitForSelector('#shop:not(.hidden)');
  await shop.waitForSelector('.product[data-sku="TEA-001"]');

  step = 'a Luhn-invalid card is refused readably';
  await shop.fill('#card-form input[name=card_number]', '4242424242424241');
  await shop.click('#add-card');
  const refusal = await shop.waitForSelector('#card-form .problem');
  const refusalText = await refusal.innerText();
  check(/422/.test(refusalText) && /card_number/.test(refusalText), `the refusal does not name the status and field: ${refusalText}`);
  await shot(shop, 'shop-2-card-refused.png');

  step = 'add the approving test card';
  await shop.click('#test-cards tr:first-child button');
  check(await shop.inputValue('#card-form input[name=card_number]') === '4242424242424242', 'the "use" button did not fill the number');
  await shop.click('#add-card');
  await shop.waitForFunction(() => document.querySelector('#card-select')?.selectedOptions[0]?.textContent.includes('4242'));
  check(!(await shop.$('#card-form .problem')), 'the problem stayed after the card was accepted');

  step = 'place an order and watch it';
  await shop.click('.product[data-sku="TEA-001"] .add-to-cart');
  await shop.click('#place-order');
  await shop.waitForSelector('#order-live');
  const live = await shop.waitForSelector('#order-live[data-status="confirmed"], #order-live[data-status="rejected"]', { timeout: 30_000 });
  const order = await live.getAttribute('data-order');
  const outcome = await live.getAttribute('data-status');
  await shot(shop, 'shop-3-order-decided.png');
  check(outcome === 'confirmed', `order ${order} was ${outcome}, not confirmed`);
  // The saga followed live through the order's event stream: pending, then the outcome.
  check(await live.getAttribute('data-source') === 'events', 'the order was not followed through its event stream');
  const steps = await live.$$eval('ol li', (items) => items.map((li) => li.dataset.status));
  check(steps.join(' ') === 'pending confirmed', `the live steps were ${steps.join(' → ')}, not pending → confirmed`);
  console.log(`order ${order} confirmed (${steps.join(' → ')})`);
  await shop.waitForSelector(`#orders tr[data-order="${order}"]`);

  step = 'a declined card: the order is rejected, with its reason';
  await shop.fill('#card-form input[name=card_number]', '4000000000000002');
  await shop.click('#add-card');
  await shop.waitForFunction(() => document.querySelector('#card-select')?.selectedOptions[0]?.textContent.includes('0002'));
  await shop.click('.product[data-sku="MUG-001"] .add-to-cart');
  await shop.click('#place-order');
  const declined = await shop.waitForSelector(`#order-live:not([data-order="${order}"])[data-status="rejected"]`, { timeout: 30_000 });
  check((await declined.innerText()).includes('payment declined'), `the rejection lacks its reason: ${await declined.innerText()}`);
  const declinedOrder = await declined.getAttribute('data-order');
  await shot(shop, 'shop-4-order-rejected.png');

  step = 'open a ticket about it';
  await shop.fill('#ticket-form input[name=subject]', 'Where is my tea?');
  await shop.selectOption('#ticket-order', order);
  await shop.fill('#ticket-form textarea[name=message]', 'Just checking, thank you.');
  await shop.click('#ticket-form button[type=submit]');
  await shop.waitForSelector('#tickets td:has-text("Where is my tea?")');

  step = 'export my data';
  await shop.click('#export');
  const exported = await shop.waitForSelector('#export-json');
  check((await exported.innerText()).includes(order), 'the export lacks the order');
  const exportedBody = JSON.parse(await exported.innerText());
  const customerId = exportedBody.customer.id;
  check((exportedBody.accesses || []).some((a) => a.service === 'gateway' && a.action === 'customer.export'),
    'the export does not say the export itself read the data');
  await shot(shop, 'shop-5-orders-ticket-export.png');

  // ---- (b) console ----
  const admin = await page('console');
  step = 'sign in to the console as admin';
  await admin.goto(`${base}/ui`);
  await admin.fill('#login-form input[name=password]', 'admin');
  await admin.click('#login-button');
  await admin.waitForSelector('#console:not(.hidden)');

  step = 'the live overview';
  await admin.waitForFunction(() => document.querySelectorAll('#c-p99 polyline, #c-p99 circle').length > 0
    && document.querySelectorAll('#lag .lag').length >= 5, null, { timeout: 15_000 });
  await admin.waitForTimeout(2500);
  await shot(admin, 'console-1-overview.png');

  step = "that order's timeline";
  await admin.click('nav.tabs button[data-tab=orders]');
  await admin.waitForSelector(`#recent tr[data-order="${order}"]`);
  await admin.fill('#order-id', order);
  await admin.click('#lookup');
  await admin.waitForSelector('#timeline li');
  const facts = await admin.innerText('#order-facts');
  check(facts.includes(order) && facts.includes('confirmed'), `the order view lacks the order or its status: ${facts}`);
  const events = await admin.$$eval('#timeline li[data-kind=event]', (items) => items.map((li) => li.querySelector('strong').textContent));
  check(events.length >= 2, `the timeline has ${events.length} events: ${events}`);
  check(await admin.$('#timeline li[data-kind=saga]'), 'the timeline shows no saga');
  console.log(`timeline: ${events.join(' → ')}`);
  await shot(admin, 'console-2-order-timeline.png');

  step = 'the sagas of the confirmed and the declined order, searched by order id';
  await admin.click('nav.tabs button[data-tab=sagas]');
  const confirmedSaga = await sagaOf(admin, order, 'completed');
  const confirmedSteps = await stepsOf(confirmedSaga);
  check(confirmedSteps.map((s) => `${s.step}:${s.kind}:${s.outcome}`).join(' ')
    === 'reserve_stock:forward:succeeded authorise_payment:forward:succeeded commit_reservation:forward:succeeded capture_payment:forward:succeeded',
  `the confirmed order's saga ran ${JSON.stringify(confirmedSteps)}`);
  const declinedSaga = await sagaOf(admin, declinedOrder, 'compensated');
  const declinedSteps = await stepsOf(declinedSaga);
  check(declinedSteps.map((s) => `${s.step}:${s.kind}:${s.outcome}`).join(' ')
    === 'reserve_stock:forward:succeeded authorise_payment:forward:failed reserve_stock:compensation:compensated',
  `the declined order's saga ran ${JSON.stringify(declinedSteps)}`);
  for (const s of [...confirmedSteps, ...declinedSteps]) {
    check(/^\d+(\.\d+)? (µs|ms|s)$/.test(s.duration), `step ${s.step} (${s.kind}) shows no duration: "${s.duration}"`);
  }
  const undo = declinedSteps.find((s) => s.kind === 'compensation');
  check(undo.tag === '↩ compensation' && undo.marked, `the compensation is not marked: ${JSON.stringify(undo)}`);
  check(/took \d/.test(await declinedSaga.innerText()), 'the saga shows no duration of its own');
  console.log(`sagas: ${declinedSteps.map((s) => `${s.step} ${s.kind} ${s.outcome} ${s.duration}`).join(', ')}`);
  await shot(admin, 'console-2b-sagas.png');

  step = 'the sagas filtered by state';
  await admin.selectOption('#saga-state', 'completed');
  await admin.click('#saga-search');
  await admin.waitForSelector('#saga-none');
  await admin.selectOption('#saga-state', 'failed');
  await admin.click('#saga-search');
  await admin.waitForSelector(`#saga-results .saga[data-saga-id="${declinedOrder}"][data-status="compensated"]`);
  await admin.selectOption('#saga-state', '');

  step = 'retry a dead letter';
  await admin.click('nav.tabs button[data-tab=dlq]');
  const letter = await admin.waitForSelector('#dlq-table tbody tr');
  const letterId = await letter.getAttribute('data-id');
  await shot(admin, 'console-3-dead-letters.png');
  await admin.click(`#dlq-table tr[data-id="${letterId}"] button.retry`);
  await admin.waitForSelector('#dlq-done');
  // The subscriber delivers it again within about a second; delivered, it leaves the table.
  await admin.waitForSelector(`#dlq-table tr[data-id="${letterId}"]`, { state: 'detached', timeout: 20_000 });
  console.log(`dead letter ${letterId} retried and delivered`);
  await shot(admin, 'console-4-dead-letter-retried.png');

  step = 'services, and a projection rebuilt';
  await admin.click('nav.tabs button[data-tab=services]');
  await admin.waitForSelector('#services-table tr[data-service=orders]');
  const rebuilds = async () => Number(await admin.innerText('#projections-table tr[data-projection=order_summaries] td:nth-child(6)'));
  const before = await rebuilds();
  admin.once('dialog', (dialog) => dialog.accept());
  await admin.click('#projections-table tr[data-projection=order_summaries] button.rebuild');
  await admin.waitForFunction((n) => Number(document.querySelector('#projections-table tr[data-projection=order_summaries] td:nth-child(6)')?.textContent) > n, before, { timeout: 20_000 });
  await shot(admin, 'console-5-services.png');

  step = 'audit verification';
  await admin.click('nav.tabs button[data-tab=audit]');
  await admin.click('#verify');
  const verdict = await admin.waitForSelector('#audit-verdict');
  check((await verdict.innerText()).includes('intact'), `audit: ${await verdict.innerText()}`);
  await shot(admin, 'console-6-audit.png');

  step = 'the data map and the customer\'s access report';
  await admin.click('nav.tabs button[data-tab=governance]');
  await admin.waitForSelector('#data-map-table tbody tr');
  const mapped = await admin.$$eval('#data-map-table tbody tr', (rows) => rows.map((r) => r.dataset.service));
  for (const service of ['customers', 'orders', 'payments', 'support']) {
    check(mapped.includes(service), `the data map has no field of ${service}: ${[...new Set(mapped)].join(', ')}`);
  }
  await admin.selectOption('#data-map-service', 'support');
  const filtered = await admin.$$eval('#data-map-table tbody tr', (rows) => rows.map((r) => r.dataset.service));
  check(filtered.length > 0 && filtered.every((s) => s === 'support'), `filtered to support: ${filtered.join(', ')}`);
  await admin.fill('#accesses-id', customerId);
  await admin.click('#accesses-show');
  await admin.waitForSelector('#accesses-table tbody tr');
  const accesses = await admin.$$eval('#accesses-table tbody tr', (rows) => rows.map((r) => `${r.dataset.service} ${r.dataset.role} ${r.dataset.action}`));
  for (const wanted of ['gateway customer session.create', 'gateway customer customer.export', 'orders customer order.place', 'orders admin order.history']) {
    check(accesses.includes(wanted), `the access report lacks "${wanted}": ${accesses.join('; ')}`);
  }
  await shot(admin, 'console-7-data-and-privacy.png');

  step = 'support sees a 403 where the API refuses';
  const support = await page('support');
  await support.goto(`${base}/ui#dlq`);
  await support.fill('#login-form input[name=email]', 'support@tessera.local');
  await support.fill('#login-form input[name=password]', 'support');
  await support.click('#login-button');
  const forbidden = await support.waitForSelector('#dlq .problem');
  check((await forbidden.innerText()).includes('403'), `support's DLQ page: ${await forbidden.innerText()}`);
  await shot(support, 'console-8-support-forbidden.png');
  await support.click('nav.tabs button[data-tab=orders]');
  await support.fill('#order-id', order);
  await support.click('#lookup');
  await support.waitForSelector('#timeline li');

  step = 'the customer erases their data';
  shop.once('dialog', (dialog) => dialog.accept());
  await shop.click('#erase');
  await shop.waitForSelector('#welcome:not(.hidden)', { timeout: 30_000 });
  check((await shop.innerText('#flash')).includes('erased'), 'no goodbye after the erasure');
  await shot(shop, 'shop-6-erased.png');
} catch (error) {
  failures.push(`step "${step}": ${error.message.split('\n')[0]}`);
  for (const [name, tab] of pages) await shot(tab, `failed-${name}.png`).catch(() => {});
} finally {
  await browser.close();
}

if (failures.length) {
  for (const failure of failures) console.error(`FAILED ${failure}`);
  process.exit(1);
}
console.log('all browser scenarios passed');
