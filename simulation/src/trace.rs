//! The run's trace: every simulator event, in order, folded into a SHA-256. Two runs of one
//! seed must give the same hash; the lines themselves are kept only when asked (replay).

use ring::digest::{Context, SHA256};

pub struct Trace {
    digest: Context,
    lines: Option<Vec<String>>,
    count: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("count", &self.count).finish_non_exhaustive()
    }
}

impl Trace {
    pub fn new(keep_lines: bool) -> Self {
        Self { digest: Context::new(&SHA256), lines: keep_lines.then(Vec::new), count: 0 }
    }

    /// Records one event at simulated time `at` (microseconds).
    pub fn record(&mut self, at: u64, line: String) {
        self.count += 1;
        let line = format!("{:>10.3}s {line}", Self::seconds(at));
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        if let Some(lines) = &mut self.lines {
            lines.push(line);
        }
    }

    #[allow(clippy::cast_precision_loss)] // a display value: microseconds to seconds
    fn seconds(at: u64) -> f64 {
        at as f64 / 1e6
    }

    /// The hex SHA-256 of every line so far and the lines (empty unless kept).
    pub fn finish(self) -> (String, Vec<String>) {
        let hash = self.digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        (hash, self.lines.unwrap_or_default())
    }
}
