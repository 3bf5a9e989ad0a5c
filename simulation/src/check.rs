//! The invariant check, run once the world is quiescent. The world's stores are turned into
//! the facts the real services expose ([`crate::facts`]) and judged by the checker that
//! `tessera verify` runs on real stores (`tessera-invariants`). The facts come from the stores
//! and the card network (the outside world's record of money), never the simulator's own
//! bookkeeping of what it meant to happen, so a bug in the pipeline or the handlers shows up
//! as a broken business rule or a broken delivery guarantee.

pub use tessera_invariants::{Violation, ViolationKind};

use crate::facts::{SETTLED, facts};
use crate::world::World;

/// Every invariant, over a world that stopped.
pub fn check(world: &World<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !world.quiescent {
        violations.push(Violation::NoQuiescence { events: world.stats.events });
    }
    let report = tessera_invariants::check(&facts(world), SETTLED);
    violations.extend(report.violations().cloned());
    violations
}
