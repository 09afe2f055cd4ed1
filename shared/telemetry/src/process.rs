//! Process resource figures read from `/proc` (Linux). On other systems the readers return
//! `None` and the gauges stay at 0 rather than reporting invented numbers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Resident set size of this process in bytes (`VmRSS` in `/proc/self/status`).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_rss_bytes(&status)
}

/// CPU time (user + system, all threads) this process has used so far (`/proc/self/stat`).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

/// The memory limit of the container this process runs in (cgroup v2 `memory.max`, else
/// cgroup v1 `memory.limit_in_bytes`), or `None` when unlimited or not in a cgroup.
///
/// Useful as the base of the health "memory" check: `limit * 9 / 10` leaves headroom before
/// the kernel's OOM killer acts.
pub fn container_memory_limit_bytes() -> Option<u64> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let v1 = || std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    parse_cgroup_limit(&v2.or_else(v1)?)
}

/// Usable cores, honouring cgroup CPU quotas (what `std` reports), at least 1.
fn available_cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: sysconf reads a process-wide constant; it has no preconditions.
            let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            if ticks > 0 {
                return ticks as f64;
            }
        }
        // USER_HZ is 100 on every architecture we deploy to.
        100.0
    })
}

fn parse_status_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// utime + stime (fields 14 and 15) in clock ticks.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Field 2 is the command name in parentheses and may itself contain spaces or ')', so
    // count fields from the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // after_comm starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    let limit: u64 = text.parse().ok()?;
    // cgroup v1 reports "unlimited" as a huge page-aligned number near i64::MAX.
    (limit < 1 << 62).then_some(limit)
}

/// Turns successive CPU-time readings into a usage fraction of the cores available.
#[derive(Debug)]
pub(crate) struct CpuSampler {
    last: Option<(Instant, Duration)>,
    cores: f64,
}

impl CpuSampler {
    /// Below this wall-clock gap two readings are too close for tick-granular CPU time
    /// (10 ms per tick) to give a meaningful fraction; the previous value is kept.
    const MIN_INTERVAL: Duration = Duration::from_millis(200);

    pub(crate) fn new() -> Self {
        Self {
            last: cpu_time().map(|t| (Instant::now(), t)),
            cores: available_cores(),
        }
    }

    /// CPU used since the previous accepted reading, as a fraction (0..=1) of all usable cores;
    /// `None` when it is too early to tell or `/proc` is unavailable.
    pub(crate) fn sample(&mut self, now: Instant) -> Option<f64> {
        let cpu = cpu_time()?;
        let usage = match self.last {
            Some((then, before)) => {
                let wall = now.saturating_duration_since(then);
                if wall < Self::MIN_INTERVAL {
                    return None;
                }
                let used = cpu.saturating_sub(before).as_secs_f64();
                Some((used / wall.as_secs_f64() / self.cores).clamp(0.0, 1.0))
            }
            None => None,
        };
        self.last = Some((now, cpu));
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 250 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_rss_and_limits() {
        let status = "Name:\tcdc\nVmPeak:\t  9000 kB\nVmRSS:\t    2172 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_bytes(status), Some(2172 * 1024));
        assert_eq!(parse_status_rss_bytes("Name:\tkthread\n"), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
        assert!(cpu_time().is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_usage_of_a_busy_loop_is_positive() {
        let mut sampler = CpuSampler::new();
        let start = Instant::now();
        // Spin until the kernel has charged us at least two ticks and the interval is long
        // enough to be accepted: a condition, not a fixed sleep.
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            let enough_cpu = cpu_time().is_some_and(|t| {
                sampler
                    .last
                    .is_some_and(|(_, before)| t >= before + Duration::from_millis(20))
            });
            if enough_cpu && start.elapsed() >= CpuSampler::MIN_INTERVAL {
                break;
            }
        }
        let usage = sampler
            .sample(Instant::now())
            .expect("interval is long enough");
        assert!(usage > 0.0 && usage <= 1.0, "usage {usage}");
    }
}
