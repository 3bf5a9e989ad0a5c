//! What the system under test spends, apart from the load that drives it: CPU time and context
//! switches of its threads, read from /proc (Linux only).
//!
//! A sampler thread reads every thread of the measured processes ten times a second and keeps
//! each thread's growth since the run began; a thread that ends between two samples loses at
//! most its last tenth of a second. The load generator's threads (named `tessera-load`) and
//! the sampler's own are left out, so an embedded run can drive the system from this process
//! and still count the system alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::report::parse_process_cpu;

/// Names of the threads that are not the system's: the load generator's runtime, and this.
pub const LOAD_THREAD: &str = "tessera-load";
const SAMPLER_THREAD: &str = "tessera-sampler";
const EVERY: Duration = Duration::from_millis(100);

/// Which processes are the system.
#[derive(Clone, Debug)]
pub enum Scope {
    /// This process, less the load's and the sampler's threads.
    ThisProcess,
    /// These processes, and every process whose command name is one of `commands` (a
    /// database server's backends come and go with its connections).
    Processes { pids: Vec<u32>, commands: Vec<String> },
}

/// What the system spent over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    pub cpu: Duration,
    pub context_switches: u64,
    /// The CPU time by process command (several processes) or by kind of thread (this
    /// process: a thread's name up to any `:`, so the writers of every store count together).
    pub cpu_by_part: std::collections::BTreeMap<String, Duration>,
}

/// Measures from `start` to `finish`.
#[derive(Debug)]
pub struct CostMeter {
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<Cost>,
}

impl CostMeter {
    pub fn start(scope: Scope) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = std::thread::Builder::new().name(SAMPLER_THREAD.into()).spawn({
            let stop = stop.clone();
            move || {
                let mut threads = Threads::default();
                threads.sample(&scope, true);
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(EVERY);
                    threads.sample(&scope, false);
                }
                threads.sample(&scope, false);
                threads.cost()
            }
        })?;
        Ok(Self { stop, sampler })
    }

    pub fn finish(self) -> Cost {
        self.stop.store(true, Ordering::Release);
        self.sampler.join().unwrap_or_default()
    }
}

/// What `work` cost this process (see [`Scope::ThisProcess`]), beside its output.
pub async fn cost_of<T>(work: impl Future<Output = T>) -> anyhow::Result<(T, Cost)> {
    let meter = CostMeter::start(Scope::ThisProcess)?;
    let output = work.await;
    Ok((output, meter.finish()))
}

/// One thread's reading: CPU ticks and context switches.
#[derive(Clone, Copy, Debug, Default)]
struct Reading {
    ticks: Duration,
    switches: u64,
}

/// Each thread's part (see [`Cost::cpu_by_part`]), first and latest reading, by (process,
/// thread).
#[derive(Debug, Default)]
struct Threads {
    seen: HashMap<(u32, u32), (String, Reading, Reading)>,
}

impl Threads {
    fn sample(&mut self, scope: &Scope, first: bool) {
        for pid in processes(scope) {
            let command = match scope {
                Scope::ThisProcess => None,
                Scope::Processes { .. } => {
                    let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
                    Some(comm.trim().to_owned())
                }
            };
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
                    continue;
                };
                let Some((name, reading)) = read_thread(pid, tid) else { continue };
                // A new thread names itself once it runs, so a sample can catch it with its
                // parent's name: names are read again at every sample.
                if matches!(scope, Scope::ThisProcess)
                    && (name.starts_with(LOAD_THREAD) || name == SAMPLER_THREAD)
                {
                    self.seen.remove(&(pid, tid));
                    continue;
                }
                // A thread first seen after the run began did all its work in the run.
                let baseline = if first { reading } else { Reading::default() };
                let part =
                    command.clone().unwrap_or_else(|| name.split(':').next().unwrap_or_default().to_owned());
                let entry = self.seen.entry((pid, tid)).or_insert((part.clone(), baseline, reading));
                entry.0 = part;
                entry.2 = reading;
            }
        }
    }

    fn cost(&self) -> Cost {
        let mut cost = Cost::default();
        for (part, first, last) in self.seen.values() {
            let cpu = last.ticks.saturating_sub(first.ticks);
            cost.cpu += cpu;
            cost.context_switches += last.switches.saturating_sub(first.switches);
            *cost.cpu_by_part.entry(part.clone()).or_default() += cpu;
        }
        cost
    }
}

fn processes(scope: &Scope) -> Vec<u32> {
    match scope {
        Scope::ThisProcess => vec![std::process::id()],
        Scope::Processes { pids, commands } => {
            let mut all = pids.clone();
            if !commands.is_empty()
                && let Ok(entries) = std::fs::read_dir("/proc")
            {
                for entry in entries.flatten() {
                    let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                        continue;
                    };
                    let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
                    if commands.iter().any(|command| command == comm.trim()) && !all.contains(&pid) {
                        all.push(pid);
                    }
                }
            }
            all
        }
    }
}

/// A thread's name and reading.
fn read_thread(pid: u32, tid: u32) -> Option<(String, Reading)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_owned();
    let ticks = parse_process_cpu(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    Some((name, Reading { ticks, switches: parse_switches(&status) }))
}

/// Voluntary plus involuntary context switches from a `/proc/.../status` text.
fn parse_switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            matches!(key, "voluntary_ctxt_switches" | "nonvoluntary_ctxt_switches")
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_add_the_voluntary_and_involuntary_counts() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(status), 15);
        assert_eq!(parse_switches("Name:\tx\n"), 0);
    }

    /// A thread that works, then stays alive until told to end (a thread that ends between
    /// two samples loses what it did after the last one).
    fn worker(name: &str) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
        let (end, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut x = 0_u64;
                while started.elapsed() < Duration::from_millis(400) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                // Yield often enough to be seen switching.
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = ended.recv();
            })
            .expect("thread");
        (thread, end)
    }

    #[test]
    fn a_busy_thread_of_the_system_is_counted_and_the_loads_is_not() {
        let meter = CostMeter::start(Scope::ThisProcess).expect("meter");
        let (thread, end) = worker("system-work");
        std::thread::sleep(Duration::from_millis(800));
        let system = meter.finish();
        end.send(()).expect("end");
        thread.join().expect("joined");
        assert!(system.cpu >= Duration::from_millis(200), "{system:?}");
        assert!(system.context_switches >= 50, "{system:?}");
        assert!(
            system.cpu_by_part.get("system-work").is_some_and(|cpu| *cpu >= Duration::from_millis(200)),
            "{system:?}"
        );

        // Other tests run beside this one: the load's thread is told apart by its name.
        let (load, end) = worker(LOAD_THREAD);
        let mut threads = Threads::default();
        threads.sample(&Scope::ThisProcess, true);
        end.send(()).expect("end");
        load.join().expect("joined");
        assert!(
            threads.seen.values().all(|(name, _, _)| !name.starts_with(LOAD_THREAD)),
            "the load's thread was sampled"
        );
        assert!(!threads.seen.is_empty(), "this test's own thread was not sampled");
    }
}

/// What one operation of a part cost in CPU, over a run of `operations`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PartCost {
    pub operations: u64,
    pub cpu_us_per_operation: f64,
}

impl PartCost {
    pub fn new(operations: u64, cpu: Duration) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let cpu_us_per_operation = cpu.as_secs_f64() * 1e6 / operations.max(1) as f64;
        Self { operations, cpu_us_per_operation }
    }
}
