//! `tessera bench …`: throughput and latency of the platform's parts, each printed beside the
//! raw limit of what it is built on, measured in the same run.

mod bus;
mod e2e;
mod gateway;
mod parts;
mod privacy;
pub(crate) mod report;
mod store;
mod system_cost;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Appends per second and commit latency on SQLite and PostgreSQL, beside raw inserts.
    Store(store::StoreBenchArgs),
    /// End-to-end messages per second, outbox commit to consumer commit, on each transport.
    Bus(bus::BusBenchArgs),
    /// Latency the gateway adds to a read, its maximum rate, and the composed view under load.
    Gateway(gateway::GatewayBenchArgs),
    /// Orders per second with personal data sealed by the vault, beside the same system with
    /// sealing replaced by a pass-through, in one run.
    Privacy(privacy::PrivacyBenchArgs),
    /// Orders per second from `POST /orders` to confirmed over HTTP, and the time each takes
    /// to confirm at a fixed arrival rate.
    E2e(e2e::E2eBenchArgs),
}

pub async fn run(target: BenchTarget) -> anyhow::Result<()> {
    match target {
        BenchTarget::Store(args) => store::run(args).await,
        BenchTarget::Bus(args) => bus::run(args).await,
        BenchTarget::Gateway(args) => gateway::run(args).await,
        BenchTarget::Privacy(args) => privacy::run(args).await,
        BenchTarget::E2e(args) => e2e::run(args).await,
    }
}
