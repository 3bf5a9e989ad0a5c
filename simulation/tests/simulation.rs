//! The simulation's suites: many seeds with zero violations, one seed replayed with its
//! trace, reproducibility, and the checker's sensitivity to bugs planted on purpose.

use std::time::Instant;

use tessera_simulation::{
    Bugs, SimConfig, SimOutcome, SimStats, ViolationKind, parse_seed_range, replay_command, run_seed,
};

const DEFAULT_SEEDS: &str = "0..1000";

fn add(total: &mut SimStats, stats: &SimStats) {
    total.events += stats.events;
    total.published += stats.published;
    total.deliveries += stats.deliveries;
    total.deduplicated += stats.deduplicated;
    total.drops += stats.drops;
    total.redeliveries += stats.redeliveries;
    total.crashes += stats.crashes;
    total.handler_errors += stats.handler_errors;
    total.timers_fired += stats.timers_fired;
    total.confirmed += stats.confirmed;
    total.rejected += stats.rejected;
    total.cancelled += stats.cancelled;
}

/// Runs `TESSERA_SIM_SEEDS` (default 0..1000); every failing seed is printed with its
/// violations and the command that replays it.
#[test]
fn seeds() {
    let range = std::env::var("TESSERA_SIM_SEEDS").unwrap_or_else(|_| DEFAULT_SEEDS.to_owned());
    let range = parse_seed_range(&range).expect("TESSERA_SIM_SEEDS");
    let config = SimConfig::default();
    let started = Instant::now();
    let mut total = SimStats::default();
    let mut failures: Vec<SimOutcome> = Vec::new();
    let count = range.end - range.start;
    for seed in range.clone() {
        let outcome = run_seed(seed, &config);
        add(&mut total, &outcome.stats);
        if !outcome.violations.is_empty() {
            failures.push(outcome);
        }
    }
    println!("{count} seeds ({range:?}) in {:.2?}: {total:?}", started.elapsed());
    for failure in &failures {
        println!("seed {} failed:", failure.seed);
        for violation in &failure.violations {
            println!("  {violation}");
        }
        println!("  replay: {}", replay_command(failure.seed));
    }
    assert!(failures.is_empty(), "{} of {count} seeds broke an invariant (listed above)", failures.len());
    if count >= 100 {
        // The run must have met the adversary, or zero violations proves nothing.
        for (what, n) in [
            ("drops", total.drops),
            ("deduplicated deliveries", total.deduplicated),
            ("crashes", total.crashes),
            ("redeliveries", total.redeliveries),
            ("timers fired", total.timers_fired),
            ("confirmed orders", total.confirmed),
            ("rejected orders", total.rejected),
            ("cancelled orders", total.cancelled),
        ] {
            assert!(n > 0, "no {what} in {count} seeds: the simulation is not exercising them");
        }
    }
}

/// Replays the seed in `TESSERA_SIM_SEED`, printing its trace; does nothing when unset.
#[test]
fn replay() {
    let Ok(seed) = std::env::var("TESSERA_SIM_SEED") else {
        println!("TESSERA_SIM_SEED is not set: nothing to replay");
        return;
    };
    let seed: u64 = seed.trim().parse().expect("TESSERA_SIM_SEED is a number");
    let outcome = run_seed(seed, &SimConfig { keep_trace: true, ..SimConfig::default() });
    for line in &outcome.trace {
        println!("{line}");
    }
    println!("seed {seed}: trace hash {}; {:?}", outcome.trace_hash, outcome.stats);
    for violation in &outcome.violations {
        println!("VIOLATION {violation}");
    }
    assert!(outcome.violations.is_empty(), "seed {seed} broke {} invariant(s)", outcome.violations.len());
}

#[test]
fn a_seed_replays_to_the_same_trace_hash_and_other_seeds_differ() {
    let config = SimConfig::default();
    let first = run_seed(42, &config);
    let again = run_seed(42, &SimConfig { keep_trace: true, ..config.clone() });
    assert_eq!(first.trace_hash, again.trace_hash, "keeping the lines must not change the run");
    assert_eq!(first.stats, again.stats);
    let hashes: std::collections::BTreeSet<String> =
        (0..20).map(|seed| run_seed(seed, &config).trace_hash).collect();
    assert_eq!(hashes.len(), 20, "20 seeds, 20 different runs");
}

/// The first seed below 300 whose run reports `kind` under `bugs`.
fn first_seed_reporting(bugs: Bugs, kind: ViolationKind) -> Option<SimOutcome> {
    let config = SimConfig { bugs, ..SimConfig::default() };
    (0..300)
        .map(|seed| run_seed(seed, &config))
        .find(|outcome| outcome.violations.iter().any(|v| v.kind() == kind))
}

fn assert_caught(bugs: Bugs, kind: ViolationKind) {
    let caught = first_seed_reporting(bugs, kind)
        .unwrap_or_else(|| panic!("{bugs:?} went unnoticed: no {kind:?} in seeds 0..300"));
    let example = caught.violations.iter().find(|v| v.kind() == kind).map(ToString::to_string);
    println!("{bugs:?}: seed {} reports {example:?}", caught.seed);
}

#[test]
fn checker_catches_inbox_dedupe_turned_off_as_an_effect_applied_twice() {
    assert_caught(Bugs { inbox_dedupe_off: true, ..Bugs::default() }, ViolationKind::EffectAppliedTwice);
}

#[test]
fn checker_catches_stock_not_released_on_payment_failure() {
    assert_caught(Bugs { keep_stock_on_release: true, ..Bugs::default() }, ViolationKind::ReservationHeld);
}

#[test]
fn checker_catches_a_message_dropped_for_good() {
    assert_caught(Bugs { lose_message: Some(3), ..Bugs::default() }, ViolationKind::MessageLost);
}
