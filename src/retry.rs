//! How long to wait before trying again: one `RetryPolicy` (initial delay, growth factor, cap,
//! jitter) serves every loop that retries, so reconnects, job retries and notification sends
//! all back off the same way. `until_ok` is the loop itself, for anything that must eventually
//! succeed (a service coming up) or give up when the process stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Exponential backoff: `initial`, then × `factor` each attempt, never above `max`, each delay
/// spread by ± `jitter` (a fraction) so many clients that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub factor: u32,
    pub max: Duration,
    pub jitter: f64,
}

impl RetryPolicy {
    /// Reconnecting to a service: 0.5 s doubling to 10 s.
    pub const RECONNECT: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(500),
        factor: 2,
        max: Duration::from_secs(10),
        jitter: 0.2,
    };

    /// Doubling from `initial`, with no cap worth naming and no jitter: schedules people read
    /// in the docs ("2 s, 4 s, 8 s") and tests count on.
    pub fn doubling(initial: Duration) -> Self {
        RetryPolicy {
            initial,
            factor: 2,
            max: Duration::from_secs(3600),
            jitter: 0.0,
        }
    }

    /// The wait before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let spread = if self.jitter > 0.0 {
            1.0 + self.jitter.min(1.0) * (fastrand::f64() * 2.0 - 1.0)
        } else {
            1.0
        };
        Duration::from_secs_f64((self.base_delay(attempt).as_secs_f64() * spread).max(0.0))
    }

    /// The wait before retry number `attempt` without its jitter.
    fn base_delay(&self, attempt: u32) -> Duration {
        let growth = f64::from(self.factor.max(1)).powi(attempt.saturating_sub(1).min(32) as i32);
        Duration::from_secs_f64((self.initial.as_secs_f64() * growth).min(self.max.as_secs_f64()))
    }

    /// Every wait of the first `attempts` retries (jitter aside), shortest first, each once:
    /// the steps a broker keeps a delay queue for.
    pub fn schedule(&self, attempts: u32) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..=attempts.max(1))
            .map(|attempt| self.base_delay(attempt))
            .collect();
        delays.sort();
        delays.dedup();
        delays
    }
}

/// Runs `attempt` until it succeeds, waiting `policy`'s delays in between and logging each
/// failure with `what`. Returns `None` as soon as `shutdown` turns true (never, with `None`).
pub async fn until_ok<T, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    mut shutdown: Option<&mut watch::Receiver<bool>>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut failures = 0;
    loop {
        if shutdown.as_ref().is_some_and(|stop| *stop.borrow()) {
            return None;
        }
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                failures += 1;
                let delay = policy.delay(failures);
                tracing::warn!("{what}: {error:#}; retrying in {delay:.1?}");
                match shutdown.as_mut() {
                    Some(stop) => {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop.changed() => {}
                        }
                    }
                    None => tokio::time::sleep(delay).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            factor: 3,
            max: Duration::from_secs(1),
            jitter: 0.0,
        };
        let delays: Vec<u128> = (1..=5).map(|a| policy.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 300, 900, 1000, 1000]);
    }

    #[test]
    fn the_schedule_lists_each_wait_once_up_to_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            factor: 3,
            max: Duration::from_secs(1),
            jitter: 0.5,
        };
        let steps: Vec<u128> = policy.schedule(5).iter().map(Duration::as_millis).collect();
        assert_eq!(steps, [100, 300, 900, 1000]);
        assert_eq!(
            RetryPolicy::doubling(Duration::from_secs(2)).schedule(3),
            [2, 4, 8].map(Duration::from_secs)
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::RECONNECT;
        for _ in 0..200 {
            let delay = policy.delay(1).as_secs_f64();
            assert!((0.4..=0.6).contains(&delay), "{delay}");
        }
    }
}
