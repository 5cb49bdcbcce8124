//! The worker role: takes jobs off the queue, at most `concurrency` at once, and runs each
//! through `job::run`. It resubscribes whenever the broker connection drops, and on
//! shutdown stops taking jobs, finishes the ones it holds, then leaves.

mod job;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backends::{subscribe_until_stopped, Backends};
use crate::configuration::Settings;

pub use job::Outcome;

/// What a worker needs besides its backends.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub concurrency: u16,
    /// Pause after a job is marked processing; only for tests of crashes mid-job.
    pub job_delay: Duration,
}

/// Runs until `shutdown` turns true, then drains in-flight jobs and returns.
pub async fn run(
    backends: Backends,
    settings: Arc<Settings>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let concurrency = config.concurrency.max(1);
    let context = Arc::new(job::Context {
        backends,
        settings,
        job_delay: config.job_delay,
    });
    let mut in_flight = JoinSet::new();
    loop {
        let consume = || context.backends.queue.consume(concurrency);
        let Some(mut jobs) = subscribe_until_stopped("jobs", &mut shutdown, consume).await else {
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
