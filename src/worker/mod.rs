//! The worker role: takes jobs off the queue and runs each through `job::run`, at most
//! `concurrency` in the engine at once. It holds one job more than that: the next job's
//! record is read and marked and its original fetched while the engine works on the others,
//! and a finished job's variants are stored and recorded after its engine turn is given
//! back, so on a backlog the engine never waits for a store. (One job more and no more: an
//! upload that comes during bulk work waits for at most one bulk job beyond those running.)
//! It resubscribes whenever the broker connection drops, and on shutdown stops taking jobs,
//! finishes the ones it holds, then leaves.

mod job;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::backends::Backends;
use crate::domain::VariantSpec;
use crate::resize;
use crate::retry::{until_ok, RetryPolicy};

pub use job::Outcome;

/// How a worker runs jobs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs in the engine at once; the worker holds one more (the queue's prefetch).
    pub concurrency: u16,
    /// Processing attempts per photo before it is failed and dead-lettered.
    pub max_attempts: u32,
    /// The wait before each retry of a failed job.
    pub retry: RetryPolicy,
    pub engine: resize::Settings,
    /// Pause in the engine's turn (after the job is marked processing), so tests can stop
    /// a worker mid-job.
    #[cfg(feature = "test-hooks")]
    pub job_delay: Duration,
    /// Fails the first start of every photo whose file name begins so (and only the first:
    /// a retry succeeds), so tests see a photo fail and then be retried.
    #[cfg(feature = "test-hooks")]
    pub fail_first_start_of: Option<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 2,
            max_attempts: 3,
            retry: RetryPolicy::doubling(Duration::from_secs(2)),
            engine: resize::Settings::default(),
            #[cfg(feature = "test-hooks")]
            job_delay: Duration::ZERO,
            #[cfg(feature = "test-hooks")]
            fail_first_start_of: None,
        }
    }
}

impl WorkerSettings {
    /// Every wait a job can be retried after: `retry`'s delays for attempts 1 to
    /// `max_attempts` (an outage retries at the attempt it is on, never beyond).
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.retry.schedule(self.max_attempts)
    }
}

/// Runs until `shutdown` turns true, then drains in-flight jobs and returns.
pub async fn run(
    backends: Backends,
    settings: WorkerSettings,
    variants: Vec<VariantSpec>,
    mut shutdown: watch::Receiver<bool>,
) {
    let concurrency = settings.concurrency.max(1);
    let held = concurrency.saturating_add(1);
    let context = Arc::new(job::Context {
        backends,
        settings,
        variants,
        engine: Semaphore::new(usize::from(concurrency)),
    });
    let mut in_flight = JoinSet::new();
    loop {
        let consume = || context.backends.queue.consume(held);
        let subscribed = until_ok(
            RetryPolicy::RECONNECT,
            "cannot subscribe to jobs",
            Some(&mut shutdown),
            consume,
        );
        let Some(mut jobs) = subscribed.await else {
            break;
        };
        tracing::info!(concurrency, "worker consuming jobs");
        loop {
            let delivery = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                delivery = jobs.next() => delivery,
            };
            match delivery {
                Some(delivery) => {
                    let context = context.clone();
                    in_flight.spawn(async move { job::handle(&context, delivery).await });
                }
                None => {
                    tracing::warn!(
                        "job subscription ended (broker connection lost); resubscribing"
                    );
                    break;
                }
            }
            while in_flight.try_join_next().is_some() {}
        }
        if *shutdown.borrow() {
            // Finish what we hold before closing: unsettled jobs would be handed out again.
            tracing::info!(
                jobs = in_flight.len(),
                "shutting down: finishing in-flight jobs"
            );
            while in_flight.join_next().await.is_some() {}
        }
        jobs.close().await;
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("worker stopped");
}
