//! The node's one source of time, injected into every timer (outbox, publisher, replication,
//! redial, mailbox poll) so tests drive them on tokio's paused clock.
//!
//! [`SystemClock`] reads the wall clock for stored timestamps and sleeps on tokio's timer.
//! [`PausedClock`] starts at a fixed wall time and advances only with tokio's clock, so a test
//! under `#[tokio::test(start_paused = true)]` moves hours of timers in milliseconds, and the
//! timestamps it stores move with them.

use std::sync::Arc;
use std::time::Duration;

/// Wall time for timestamps, and tokio time for sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Wall time that advances with tokio's clock (paused in tests): `start_ms` plus the tokio
/// time elapsed since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct PausedClock {
    start_ms: i64,
    origin: tokio::time::Instant,
}

impl PausedClock {
    /// A clock reading `start_ms` now.
    pub fn starting_at(start_ms: i64) -> Self {
        Self {
            start_ms,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }
}

/// How long until `deadline_ms` on `clock` (zero if it passed).
pub fn until(clock: &dyn Clock, deadline_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(deadline_ms - clock.now_ms()).unwrap_or(0))
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-12-07T01:17:07.605Z`).
pub fn rfc3339_utc(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_clock_moves_with_tokio_time_only() {
        let clock = PausedClock::starting_at(1_000_000);
        assert_eq!(clock.now_ms(), 1_000_000);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms(), 1_000_000 + 3_600_000);
        assert_eq!(
            until(&clock, clock.now_ms() + 250),
            Duration::from_millis(250)
        );
        assert_eq!(until(&clock, 0), Duration::ZERO);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_utc(1_796_605_027_605), "2026-12-07T00:57:07.605Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
    }
}
