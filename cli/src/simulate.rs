//! `tessera simulate`: the deterministic simulation of the outbox → transport → inbox pipeline
//! and the order sagas (crate `tessera-simulation`), over a range of seeds or one seed with its
//! trace. A seed always runs the same way, so a failing one is replayed by its number.

use std::time::Instant;

use anyhow::bail;
use clap::Args;
use serde_json::json;
use tessera_simulation::{SimConfig, parse_seed_range, run_seed};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Seeds to run, `start..end` (end excluded).
    #[arg(long, default_value = "0..1000", conflicts_with = "seed")]
    seeds: String,
    /// Run this one seed and print its trace.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if let Some(seed) = args.seed {
        let outcome = run_seed(seed, &SimConfig { keep_trace: true, ..SimConfig::default() });
        if args.json {
            println!(
                "{}",
                json!({"seed": seed, "trace_hash": outcome.trace_hash, "trace": outcome.trace,
                    "violations": outcome.violations.iter().map(ToString::to_string).collect::<Vec<_>>()})
            );
        } else {
            for line in &outcome.trace {
                println!("{line}");
            }
            println!("seed {seed}: trace hash {}, {:?}", outcome.trace_hash, outcome.stats);
            for violation in &outcome.violations {
                println!("VIOLATION {violation}");
            }
        }
        if !outcome.violations.is_empty() {
            bail!("seed {seed} breaks {} invariant(s)", outcome.violations.len());
        }
        return Ok(());
    }
    let range = parse_seed_range(&args.seeds)?;
    let started = Instant::now();
    let config = SimConfig::default();
    let mut failing = Vec::new();
    let mut orders = 0;
    for seed in range.clone() {
        let outcome = run_seed(seed, &config);
        orders += outcome.stats.confirmed + outcome.stats.rejected + outcome.stats.cancelled;
        if !outcome.violations.is_empty() {
            failing.push((seed, outcome.violations.iter().map(ToString::to_string).collect::<Vec<_>>()));
        }
    }
    let elapsed = started.elapsed();
    if args.json {
        println!(
            "{}",
            json!({"seeds": format!("{}..{}", range.start, range.end), "orders": orders,
                "seconds": elapsed.as_secs_f64(),
                "failing": failing.iter().map(|(seed, v)| json!({"seed": seed, "violations": v,
                    "replay": format!("tessera simulate --seed {seed}")})).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "{} seeds, {orders} orders, {:.1} s: {} failing",
            range.end - range.start,
            elapsed.as_secs_f64(),
            failing.len()
        );
        for (seed, violations) in &failing {
            println!("seed {seed} (replay: tessera simulate --seed {seed}):");
            for violation in violations {
                println!("  {violation}");
            }
        }
    }
    if !failing.is_empty() {
        bail!("{} seed(s) break invariants", failing.len());
    }
    Ok(())
}
