//! What an order's parts cost when each runs alone. `bench e2e` prices an order's units of
//! work, messages and gateway requests with fixed, named variants of `bench store`, `bench bus`
//! and `bench gateway`, run in the same process on the same folder's file system, so that the
//! CPU an order costs the whole system can be set against the sum of its parts: their ratio is
//! the system's waste, as a number.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use super::system_cost::PartCost;

/// The three prices, each measured by CPU time of this process's threads over its run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Parts {
    /// Per unit of work: `bench store`'s 64 writers appending 1-event units to SQLite.
    pub store_unit: PartCost,
    /// Per message: `bench bus`'s in-process pipeline at half its maximum rate (outbox commit,
    /// relay, subscriber, inbox commit).
    pub bus_message: PartCost,
    /// Per request: `bench gateway`'s product read through the gateway by one client, with a
    /// customer's bearer token, in process (no socket).
    pub gateway_request: PartCost,
    /// How long each variant ran (the bus's maximum-rate run before its half-load run too).
    pub seconds_each: f64,
}

impl Parts {
    /// Runs the three variants one after another in scratch folders inside `dir`.
    pub async fn measure(dir: &Path, each: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            store_unit: super::store::sixty_four_writers_part(dir, each).await?,
            bus_message: super::bus::half_load_in_process_part(dir, each).await?,
            gateway_request: super::gateway::authenticated_single_client_part(dir, each).await?,
            seconds_each: each.as_secs_f64(),
        })
    }

    /// What `units`, `messages` and `requests` cost at these prices.
    pub fn price(&self, units: f64, messages: f64, requests: f64) -> PartsPerOrder {
        let ms = |count: f64, part: &PartCost| count * part.cpu_us_per_operation / 1e3;
        PartsPerOrder {
            store_ms: ms(units, &self.store_unit),
            bus_ms: ms(messages, &self.bus_message),
            gateway_ms: ms(requests, &self.gateway_request),
        }
    }
}

/// An order's parts at the measured prices, in CPU milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PartsPerOrder {
    pub store_ms: f64,
    pub bus_ms: f64,
    pub gateway_ms: f64,
}

impl PartsPerOrder {
    pub fn total_ms(&self) -> f64 {
        self.store_ms + self.bus_ms + self.gateway_ms
    }
}

/// How many times the sum of its parts an order cost; none when the parts cost nothing.
pub fn cpu_to_parts(cpu_ms: f64, parts_ms: f64) -> Option<f64> {
    (parts_ms > 0.0).then(|| cpu_ms / parts_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(store_us: f64, bus_us: f64, gateway_us: f64) -> Parts {
        let cost = |us| PartCost { operations: 1000, cpu_us_per_operation: us };
        Parts {
            store_unit: cost(store_us),
            bus_message: cost(bus_us),
            gateway_request: cost(gateway_us),
            seconds_each: 3.0,
        }
    }

    #[test]
    fn a_part_costs_its_cpu_divided_by_its_operations() {
        let cost = PartCost::new(2000, Duration::from_millis(30));
        assert_eq!(cost.operations, 2000);
        assert!((cost.cpu_us_per_operation - 15.0).abs() < 1e-9, "{cost:?}");
        // A run that did nothing costs what it spent, not a division by zero.
        assert!(PartCost::new(0, Duration::from_millis(1)).cpu_us_per_operation.is_finite());
    }

    #[test]
    fn an_order_costs_each_count_times_its_price() {
        // 15.5 units at 14 µs, 14 messages at 40 µs, 2 requests at 60 µs.
        let priced = parts(14.0, 40.0, 60.0).price(15.5, 14.0, 2.0);
        assert!((priced.store_ms - 0.217).abs() < 1e-9, "{priced:?}");
        assert!((priced.bus_ms - 0.56).abs() < 1e-9, "{priced:?}");
        assert!((priced.gateway_ms - 0.12).abs() < 1e-9, "{priced:?}");
        assert!((priced.total_ms() - 0.897).abs() < 1e-9, "{priced:?}");
    }

    #[test]
    fn the_ratio_is_the_orders_cpu_over_its_parts() {
        assert_eq!(cpu_to_parts(3.2, 0.8), Some(4.0));
        assert_eq!(cpu_to_parts(3.2, 0.0), None);
    }
}
