//! The wait between attempts after a lost race: exponential backoff with
//! full jitter (see [`Backoff`]).
//!
//! Why jitter: writers that collided on one session and retry after the same
//! fixed delay collide again. A uniformly random wait below a ceiling that
//! doubles per attempt spreads them out, so each retry most likely finds the
//! session quiet, and the ceiling bounds the latency one save can add.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::Backoff;

/// The ceiling of the wait before attempt `attempt + 1`.
pub(crate) fn ceiling(backoff: &Backoff, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    backoff
        .base_delay
        .saturating_mul(1 << doublings)
        .min(backoff.max_delay)
}

/// A uniformly random duration in `0..=max`, from the OS generator (half of
/// `max` if the generator fails: still a wait, just not a random one).
pub(crate) fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    match getrandom::u64() {
        Ok(r) => Duration::from_nanos(r % (nanos.saturating_add(1))),
        Err(_) => max / 2,
    }
}

/// Waits a random time below the ceiling for `attempt`. Inside a tokio
/// runtime this is tokio's timer; elsewhere it only yields once, so a
/// caller on another executor still makes progress (without the spread).
pub(crate) async fn pause(backoff: &Backoff, attempt: u32) {
    sleep(jitter(ceiling(backoff, attempt))).await;
}

/// Sleeps `d` on tokio's timer, or yields once outside a tokio runtime.
pub(crate) async fn sleep(d: Duration) {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::sleep(d).await;
    } else {
        YieldOnce(false).await;
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
        };
        assert_eq!(ceiling(&b, 1), Duration::from_millis(1));
        assert_eq!(ceiling(&b, 2), Duration::from_millis(2));
        assert_eq!(ceiling(&b, 6), Duration::from_millis(32));
        assert_eq!(ceiling(&b, 7), Duration::from_millis(50));
        assert_eq!(ceiling(&b, u32::MAX), Duration::from_millis(50));
    }

    #[test]
    fn jitter_stays_below_its_ceiling_and_varies() {
        let max = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..64).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
