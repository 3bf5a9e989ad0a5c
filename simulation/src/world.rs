//! The simulated world: three service stores, their relays, the transport between them, the
//! saga timer loop, the payments worker, the card network and the clients, driven by one
//! queue of events on a simulated clock. Nothing runs unless the queue says so, and every
//! random choice comes from the run's seeded PRNG, so a seed is a run.

use std::collections::BTreeMap;

use tessera_contracts::{Currency, Money, OrderLine, Quantity, Sku};
use tessera_inventory::domain::{StockLevel, Stocked};
use tessera_payments::domain::CardProfile;
use uuid::Uuid;

use crate::error::HandlerError;
use crate::inventory::{self, InventoryState};
use crate::message::{Ids, Kind, Message, MessageId, Service};
use crate::orders::{self, OrdersState, PlaceRequest, Sagas, TimerStatus};
use crate::payments::{self, CardNetwork, PaymentMethod, PaymentsState};
use crate::rng::SimRng;
use crate::store::{FollowUp, Store, Unit};
use crate::trace::Trace;
use crate::{SimConfig, SimStats};

const MS: u64 = 1_000;
const SECOND: u64 = 1_000_000;

/// A client's order: what it asks for, and what happened to its requests.
#[derive(Debug)]
pub struct ClientOrder {
    pub customer_id: Uuid,
    pub request_key: String,
    pub token: String,
    pub profile: CardProfile,
    pub lines: Vec<OrderLine>,
    /// When (after placing) the client asks to cancel, if it does.
    pub cancel_after: Option<u64>,
    /// Known once a placement got through to the client.
    pub order_id: Option<Uuid>,
}

/// The fault rates of one run, drawn from the seed within the configured maxima.
#[derive(Clone, Copy, Debug)]
pub struct RunFaults {
    pub drop: u32,
    pub duplicate: u32,
    pub crash: u32,
    pub long_delay: u32,
}

#[derive(Debug)]
enum Event {
    Place { order: usize },
    Cancel { order: usize, attempt: u32 },
    Relay { service: Service },
    Deliver { target: Service, message: MessageId },
    FireTimers,
    Authorise { order_id: Uuid },
}

/// A message in the transport, per consumer.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    pub acked: bool,
    /// The planted fault "a message dropped for good": never delivered, never redelivered.
    pub lost_for_good: bool,
}

#[derive(Debug)]
pub struct World<'c> {
    pub config: &'c SimConfig,
    pub faults: RunFaults,
    rng: SimRng,
    ids: Ids,
    pub now: u64,
    queue: BTreeMap<(u64, u64), Event>,
    next_seq: u64,
    relay_scheduled: BTreeMap<Service, bool>,
    published_to_consumers: u64,
    pub sagas: Sagas,
    pub orders: Store<OrdersState>,
    pub inventory: Store<InventoryState>,
    pub payments: Store<PaymentsState>,
    pub network: CardNetwork,
    pub transport: BTreeMap<(Service, MessageId), Delivery>,
    pub clients: Vec<ClientOrder>,
    pub initial_stock: BTreeMap<Sku, i64>,
    pub trace: Trace,
    pub stats: SimStats,
    pub quiescent: bool,
}

/// Where a consumer's handling of a delivery ended.
enum Consumed {
    Acked,
    NotAcked,
}

impl<'c> World<'c> {
    /// Draws the run's scenario and fault rates from `seed`.
    pub fn new(seed: u64, config: &'c SimConfig) -> Self {
        let mut rng = SimRng::new(seed);
        let limits = &config.faults;
        let faults = RunFaults {
            drop: u32::try_from(rng.between(0, u64::from(limits.max_drop_per_mille))).unwrap_or(0),
            duplicate: u32::try_from(rng.between(0, u64::from(limits.max_duplicate_per_mille))).unwrap_or(0),
            crash: u32::try_from(rng.between(0, u64::from(limits.max_crash_per_mille))).unwrap_or(0),
            long_delay: u32::try_from(rng.between(0, u64::from(limits.max_long_delay_per_mille)))
                .unwrap_or(0),
        };
        let mut network = CardNetwork::default();
        network.failure_per_mille =
            u32::try_from(rng.between(0, u64::from(limits.max_network_failure_per_mille))).unwrap_or(0);
        let mut ids = Ids::default();
        let mut inventory = InventoryState::default();
        let mut initial_stock = BTreeMap::new();
        let skus: Vec<Sku> = (0..rng.between(2, 4))
            .filter_map(|i| {
                Sku::parse(format!("SKU-{}", char::from(b'A' + u8::try_from(i).unwrap_or(0)))).ok()
            })
            .collect();
        for sku in &skus {
            let available = i64::try_from(rng.between(2, 10)).unwrap_or(2);
            let price = Money::new(i64::try_from(rng.between(5, 50)).unwrap_or(5) * 100, Currency::eur())
                .unwrap_or_else(|_| Money { amount: 100, currency: Currency::eur() });
            initial_stock.insert(sku.clone(), available);
            inventory.products.insert(
                sku.clone(),
                Stocked {
                    name: format!("Product {sku}"),
                    price,
                    level: StockLevel { available, ..StockLevel::default() },
                },
            );
        }
        let mut payments = PaymentsState::default();
        let profiles = [
            CardProfile::Approve,
            CardProfile::Approve,
            CardProfile::Approve,
            CardProfile::Approve,
            CardProfile::Decline,
            CardProfile::InsufficientFunds,
            CardProfile::Transient,
            CardProfile::Transient,
            CardProfile::Slow,
            CardProfile::Slow,
        ];
        let mut clients = Vec::new();
        for index in 0..rng.between(config.min_orders, config.max_orders) {
            let customer_id = ids.uuid();
            let profile = *rng.pick(&profiles);
            let token = format!("tok_{index}");
            payments.methods.insert(
                token.clone(),
                PaymentMethod { customer_id, last4: format!("{:04}", index % 10_000), profile },
            );
            let lines = (0..rng.between(1, 2))
                .filter_map(|_| {
                    let quantity = Quantity::new(i64::try_from(rng.between(1, 3)).unwrap_or(1)).ok()?;
                    Some(OrderLine { sku: rng.pick(&skus).clone(), quantity })
                })
                .collect();
            let cancel_after = rng.chance(300).then(|| rng.between(SECOND, 60 * SECOND));
            clients.push(ClientOrder {
                customer_id,
                request_key: format!("req-{index}"),
                token,
                profile,
                lines,
                cancel_after,
                order_id: None,
            });
        }
        let mut world = Self {
            config,
            faults,
            rng,
            ids,
            now: 0,
            queue: BTreeMap::new(),
            next_seq: 0,
            relay_scheduled: BTreeMap::new(),
            published_to_consumers: 0,
            sagas: Sagas::default(),
            orders: Store::new(OrdersState::default()),
            inventory: Store::new(inventory),
            payments: Store::new(payments),
            network,
            transport: BTreeMap::new(),
            clients,
            initial_stock,
            trace: Trace::new(config.keep_trace),
            stats: SimStats::default(),
            quiescent: false,
        };
        world.trace(format!(
            "seed {seed}: faults {:?}, network failures {}‰, stock {:?}",
            world.faults, world.network.failure_per_mille, world.initial_stock
        ));
        for order in 0..world.clients.len() {
            let client = &world.clients[order];
            let line = format!(
                "client {order}: {:?} card, lines {}, cancel after {:?}",
                client.profile,
                client
                    .lines
                    .iter()
                    .map(|l| format!("{}x{}", l.quantity.get(), l.sku))
                    .collect::<Vec<_>>()
                    .join(" "),
                client.cancel_after.map(|t| t / SECOND)
            );
            world.trace(line);
            let at = world.rng.between(0, 20 * SECOND);
            world.schedule(at, Event::Place { order });
        }
        world
    }

    fn trace(&mut self, line: String) {
        self.trace.record(self.now, line);
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.next_seq += 1;
        self.queue.insert((at, self.next_seq), event);
    }

    fn schedule_in(&mut self, after: u64, event: Event) {
        self.schedule(self.now.saturating_add(after), event);
    }

    fn crashes(&mut self) -> bool {
        let crash = self.rng.chance(self.faults.crash);
        if crash {
            self.stats.crashes += 1;
        }
        crash
    }

    /// Runs until nothing is left to happen, or the event bound.
    pub fn run(&mut self) {
        while let Some(((at, _), event)) = self.queue.pop_first() {
            self.stats.events += 1;
            if self.stats.events > self.config.max_events {
                self.trace(format!("gave up after {} events", self.config.max_events));
                return;
            }
            self.now = at;
            self.step(event);
        }
        self.stats.sim_micros = self.now;
        self.quiescent = true;
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Place { order } => self.place(order),
            Event::Cancel { order, attempt } => self.cancel(order, attempt),
            Event::Relay { service } => self.relay(service),
            Event::Deliver { target, message } => self.deliver(target, message),
            Event::FireTimers => self.fire_timers(),
            Event::Authorise { order_id } => self.authorise(order_id),
        }
    }

    fn after_commit(&mut self, service: Service, follow_ups: Vec<FollowUp>) {
        for follow_up in follow_ups {
            match follow_up {
                FollowUp::TimerDue(due) => self.schedule(due, Event::FireTimers),
                FollowUp::Authorise(order_id) => {
                    let profile = self
                        .payments
                        .state
                        .payments
                        .get(&order_id)
                        .and_then(|p| self.payments.state.methods.get(&p.token).map(|m| m.profile));
                    // The worker picks the request up at once; the network answers after its
                    // latency, or after the slow cards' delay (longer than the payment timeout).
                    let latency = if profile == Some(CardProfile::Slow) {
                        self.rng.between(8 * SECOND, 40 * SECOND)
                    } else {
                        self.rng.between(5 * MS, 500 * MS)
                    };
                    self.schedule_in(latency, Event::Authorise { order_id });
                }
            }
        }
        if !self.relay_scheduled.get(&service).copied().unwrap_or(false) {
            self.relay_scheduled.insert(service, true);
            let after = self.rng.between(MS, 50 * MS);
            self.schedule_in(after, Event::Relay { service });
        }
    }

    fn place(&mut self, order: usize) {
        let client = &self.clients[order];
        let request = PlaceRequest {
            customer_id: client.customer_id,
            request_key: client.request_key.clone(),
            lines: client.lines.clone(),
            payment_token: client.token.clone(),
        };
        let mut unit = self.orders.begin(None);
        let placed = orders::place(&mut unit, &self.sagas, request, self.now, &mut self.ids);
        let order_id = match placed {
            Ok(order_id) => order_id,
            Err(error) => {
                self.trace(format!("client {order}: place refused: {error}"));
                return;
            }
        };
        if self.crashes() {
            self.trace(format!("client {order}: orders crashed before commit; the client retries"));
            self.schedule_in(SECOND, Event::Place { order });
            return;
        }
        let follow_ups = self.orders.commit(unit);
        self.after_commit(Service::Orders, follow_ups);
        if self.crashes() {
            self.trace(format!(
                "client {order}: placed {} but the answer was lost; the client retries",
                short(order_id)
            ));
            self.schedule_in(SECOND, Event::Place { order });
            return;
        }
        self.trace(format!("client {order}: placed order {}", short(order_id)));
        self.clients[order].order_id = Some(order_id);
        if let Some(after) = self.clients[order].cancel_after.take() {
            self.schedule_in(after, Event::Cancel { order, attempt: 0 });
        }
    }

    fn cancel(&mut self, order: usize, attempt: u32) {
        let Some(order_id) = self.clients[order].order_id else { return };
        let mut unit = self.orders.begin(None);
        match orders::cancel(&mut unit, &self.sagas, order_id, self.now, &mut self.ids) {
            Ok(()) => {}
            Err(HandlerError::Order(tessera_orders::domain::OrderError::NotCancellable(status))) => {
                // Still pending: the client tries again a little later (a patient user).
                let pending = status == tessera_orders::domain::OrderStatus::Pending;
                self.trace(format!("client {order}: cancel refused, order is {status:?}"));
                if pending && attempt < 30 {
                    self.schedule_in(5 * SECOND, Event::Cancel { order, attempt: attempt + 1 });
                }
                return;
            }
            Err(error) => {
                self.trace(format!("client {order}: cancel failed: {error}"));
                return;
            }
        }
        if self.crashes() {
            self.trace(format!(
                "client {order}: orders crashed before commit of the cancel; the client retries"
            ));
            self.schedule_in(SECOND, Event::Cancel { order, attempt: attempt + 1 });
            return;
        }
        let follow_ups = self.orders.commit(unit);
        self.after_commit(Service::Orders, follow_ups);
        self.trace(format!("client {order}: cancel of {} accepted", short(order_id)));
    }

    fn relay(&mut self, service: Service) {
        self.relay_scheduled.insert(service, false);
        let unsent = match service {
            Service::Orders => self.orders.unsent(),
            Service::Inventory => self.inventory.unsent(),
            Service::Payments => self.payments.unsent(),
        };
        if unsent.is_empty() {
            return;
        }
        // A crash after publishing some rows and before marking them sent: they go out again.
        let crashed = self.crashes();
        let published = if crashed {
            usize::try_from(self.rng.between(0, u64::try_from(unsent.len()).unwrap_or(0))).unwrap_or(0)
        } else {
            unsent.len()
        };
        for message in &unsent[..published] {
            self.publish(message.clone());
        }
        if crashed {
            self.trace(format!(
                "relay {service}: crashed after publishing {published} of {} rows",
                unsent.len()
            ));
            self.relay_scheduled.insert(service, true);
            let after = self.rng.between(100 * MS, 2 * SECOND);
            self.schedule_in(after, Event::Relay { service });
            return;
        }
        let ids: Vec<MessageId> = unsent.iter().map(|m| m.id).collect();
        match service {
            Service::Orders => self.orders.mark_sent(&ids),
            Service::Inventory => self.inventory.mark_sent(&ids),
            Service::Payments => self.payments.mark_sent(&ids),
        }
    }

    fn delivery_delay(&mut self) -> u64 {
        if self.rng.chance(self.faults.long_delay) {
            self.rng.between(5 * SECOND, 45 * SECOND)
        } else {
            self.rng.between(MS, 200 * MS)
        }
    }

    fn publish(&mut self, message: Message) {
        self.stats.published += 1;
        self.trace(format!(
            "publish {} {} {} -> {:?} key {}",
            message.id,
            message.name,
            message.source,
            message.target.map(Service::name),
            tail(&message.key)
        ));
        let Some(target) = message.target else { return };
        if message.kind == Kind::Event {
            return;
        }
        let id = message.id;
        if !self.transport.contains_key(&(target, id)) {
            self.published_to_consumers += 1;
            let lost_for_good = self.config.bugs.lose_message == Some(self.published_to_consumers);
            self.transport.insert((target, id), Delivery { message, acked: false, lost_for_good });
        }
        let delay = self.delivery_delay();
        self.schedule_in(delay, Event::Deliver { target, message: id });
        if self.rng.chance(self.faults.duplicate) {
            let delay = self.delivery_delay();
            self.schedule_in(delay, Event::Deliver { target, message: id });
        }
    }

    fn redeliver_later(&mut self, target: Service, id: MessageId) {
        // Not acknowledged within the ack wait: the transport hands it out again.
        let after = self.rng.between(2 * SECOND, 8 * SECOND);
        self.stats.redeliveries += 1;
        self.schedule_in(after, Event::Deliver { target, message: id });
    }

    fn deliver(&mut self, target: Service, id: MessageId) {
        let Some(delivery) = self.transport.get(&(target, id)) else { return };
        if delivery.lost_for_good {
            self.trace(format!("deliver {id} to {target}: lost for good"));
            return;
        }
        let (message, acked) = (delivery.message.clone(), delivery.acked);
        if self.rng.chance(self.faults.drop) {
            self.stats.drops += 1;
            self.trace(format!("deliver {id} to {target}: dropped"));
            if !acked {
                self.redeliver_later(target, id);
            }
            return;
        }
        self.stats.deliveries += 1;
        match self.consume(target, &message) {
            Consumed::Acked => {
                if let Some(delivery) = self.transport.get_mut(&(target, id)) {
                    delivery.acked = true;
                }
            }
            Consumed::NotAcked if !acked => self.redeliver_later(target, id),
            Consumed::NotAcked => {}
        }
    }

    /// The subscriber: inbox check, handler, commit (with the inbox record), ack.
    fn consume(&mut self, target: Service, message: &Message) -> Consumed {
        let id = message.id;
        let seen = match target {
            Service::Orders => self.orders.has_consumed(id),
            Service::Inventory => self.inventory.has_consumed(id),
            Service::Payments => self.payments.has_consumed(id),
        };
        if seen && !self.config.bugs.inbox_dedupe_off {
            self.stats.deduplicated += 1;
            self.trace(format!("deliver {id} {} to {target}: already applied, acked", message.name));
            return Consumed::Acked;
        }
        let (now, bugs) = (self.now, self.config.bugs);
        let committed = match target {
            Service::Orders => {
                let mut unit = self.orders.begin(Some(id));
                let result = orders::handle(&mut unit, &self.sagas, message, now, &mut self.ids);
                self.finish(target, message, unit, result, |world, unit| world.orders.commit(unit))
            }
            Service::Inventory => {
                let mut unit = self.inventory.begin(Some(id));
                let result = inventory::handle(&mut unit, message, &mut self.ids, &bugs);
                self.finish(target, message, unit, result, |world, unit| world.inventory.commit(unit))
            }
            Service::Payments => {
                let mut unit = self.payments.begin(Some(id));
                let result =
                    payments::handle(&mut unit, message, &mut self.ids, &mut self.network, &mut self.rng);
                self.finish(target, message, unit, result, |world, unit| world.payments.commit(unit))
            }
        };
        if !committed {
            return Consumed::NotAcked;
        }
        if self.crashes() {
            self.trace(format!("deliver {id} to {target}: crashed after commit, before ack"));
            return Consumed::NotAcked;
        }
        Consumed::Acked
    }

    /// Commits `unit` unless the handler failed or the service crashes first.
    fn finish<S: Clone>(
        &mut self,
        service: Service,
        message: &Message,
        unit: Unit<S>,
        result: Result<(), HandlerError>,
        commit: impl FnOnce(&mut Self, Unit<S>) -> Vec<FollowUp>,
    ) -> bool {
        if let Err(error) = result {
            self.stats.handler_errors += 1;
            self.trace(format!(
                "deliver {} {} to {service}: handler failed: {error}",
                message.id, message.name
            ));
            return false;
        }
        if self.crashes() {
            self.trace(format!(
                "deliver {} {} to {service}: crashed before commit",
                message.id, message.name
            ));
            return false;
        }
        let sent: Vec<String> = unit.sent.iter().map(|m| format!("{} {}", m.id, m.name)).collect();
        let follow_ups = commit(self, unit);
        self.trace(format!(
            "deliver {} {} to {service}: committed, sends [{}]",
            message.id,
            message.name,
            sent.join(", ")
        ));
        self.after_commit(service, follow_ups);
        true
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        let mut due: Vec<(u64, MessageId)> = self
            .orders
            .state
            .timers
            .iter()
            .filter(|(_, t)| t.status == TimerStatus::Pending && t.due <= now)
            .map(|(id, t)| (t.due, *id))
            .collect();
        due.sort_unstable();
        for (_, timer_id) in due {
            let mut unit = self.orders.begin(None);
            match orders::fire_timer(&mut unit, &self.sagas, timer_id, now, &mut self.ids) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(error) => {
                    self.trace(format!("timer {timer_id}: failed: {error}"));
                    self.schedule_in(SECOND, Event::FireTimers);
                    continue;
                }
            }
            if self.crashes() {
                self.trace(format!("timer {timer_id}: orders crashed before commit"));
                self.schedule_in(SECOND, Event::FireTimers);
                continue;
            }
            let sent: Vec<String> = unit.sent.iter().map(|m| format!("{} {}", m.id, m.name)).collect();
            let follow_ups = self.orders.commit(unit);
            self.stats.timers_fired += 1;
            self.trace(format!("timer {timer_id}: fired, sends [{}]", sent.join(", ")));
            self.after_commit(Service::Orders, follow_ups);
        }
    }

    fn authorise(&mut self, order_id: Uuid) {
        let mut unit = self.payments.begin(None);
        match payments::authorise_recorded(
            &mut unit,
            order_id,
            &mut self.ids,
            &mut self.network,
            &mut self.rng,
        ) {
            Ok(false) => return,
            Ok(true) => {}
            Err(error) => {
                self.trace(format!("authorise {}: {error}; the worker tries again", short(order_id)));
                let after = self.rng.between(250 * MS, 2 * SECOND);
                self.schedule_in(after, Event::Authorise { order_id });
                return;
            }
        }
        if self.crashes() {
            // The restarted worker picks up every request still authorising.
            self.trace(format!("authorise {}: payments crashed before commit", short(order_id)));
            self.schedule_in(SECOND, Event::Authorise { order_id });
            return;
        }
        let status = unit.state.payments.get(&order_id).map_or("?", |p| p.status);
        let follow_ups = self.payments.commit(unit);
        self.trace(format!("authorise {}: {status}", short(order_id)));
        self.after_commit(Service::Payments, follow_ups);
    }
}

/// The distinguishing end of a simulated UUID, for the trace.
pub fn short(id: Uuid) -> String {
    tail(&id.to_string())
}

fn tail(text: &str) -> String {
    text.get(text.len().saturating_sub(4)..).unwrap_or(text).to_owned()
}
