//! One job, start to finish: fetch the original, make the variants, store them, record the
//! result, and only then settle the delivery. Failures are retried with backoff up to
//! `max_attempts`; an image that cannot be decoded fails at once, since retrying cannot help;
//! a store that is down costs no attempt, so an outage fails no photo.
//! A job that never finishes because its processing kills the worker is caught by counting
//! deliveries in the photo's record: it fails after `max_attempts` of them, on any queue. A
//! delivery that a store's outage cut short is taken back, so a long outage fails no photo.
//!
//! Each stage is timed into the process's `metrics` (fetch, store and record here; decode,
//! resize and encode as the engine reports them), every job that ends done or failed for good
//! is counted in the index's jobs per minute (shared by all workers, for the admin page), and
//! every line a job logs carries its photo id.

use std::time::Instant;

use anyhow::{anyhow, Context as _};
use chrono::Utc;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::WorkerSettings;
use crate::backends::Backends;
use crate::cache::Finished;
use crate::deadline;
use crate::domain::{Job, Photo, Status, VariantInfo, VariantSpec};
use crate::metrics::{JobFailure, Stage};
use crate::queue::Delivery;
use crate::resize::{self, ProcessError};

pub struct Context {
    pub backends: Backends,
    pub settings: WorkerSettings,
    pub variants: Vec<VariantSpec>,
    /// Turns in the engine: `concurrency` of them, fewer than the jobs the worker holds.
    pub engine: Semaphore,
}

/// How a job ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A redelivery of a job that was already done: nothing to do.
    AlreadyDone,
    /// The photo was deleted before or while the job ran.
    Gone,
}

enum Failure {
    /// Might work next time (a backend hiccup).
    Transient(anyhow::Error),
    /// Will never work (the image itself is broken).
    Permanent(anyhow::Error),
}

/// Runs one delivered job and settles it. Every line it logs, down to the backends', carries
/// the photo's id (its span).
pub async fn handle(context: &Context, delivery: Delivery) {
    let span = tracing::info_span!("job", id = %delivery.job.photo_id);
    handle_in_span(context, delivery).instrument(span).await
}

async fn handle_in_span(context: &Context, delivery: Delivery) {
    let job = &delivery.job;
    let metrics = &context.backends.metrics;
    let delivered = Instant::now();
    let mut counted = false;
    let mut finished = None;
    let settle = match run(context, job, &mut counted).await {
        Ok(outcome) => {
            if outcome == Outcome::Done {
                metrics.job_done(delivered.elapsed());
                finished = Some(Finished::Done);
            }
            tracing::info!(?outcome, attempt = job.attempt, "job finished");
            delivery.settle.ack().await
        }
        Err(Failure::Transient(error)) if deadline::failing_store(&error).is_some() => {
            // A store is down or not answering: not the photo's fault, so it costs no attempt,
            // and the job comes back after the backoff's step for as long as the outage lasts
            // (so it never spins; a store that refuses for good, such as wrong S3 keys, keeps
            // the job coming round and says so in every line). Nothing is marked: the store
            // that failed may be the index itself.
            metrics.job_failed(JobFailure::Outage);
            metrics.job_retried();
            let delay = context.settings.retry.delay(job.attempt);
            tracing::warn!(
                attempt = job.attempt,
                "a store failed; job retried in {delay:?} at no cost: {error:#}"
            );
            // Nor does it count as a start: the worker did not stop, and a job that comes round
            // many times during a long outage must not be given up as one that kills workers.
            if counted {
                uncount_start(context, job).await;
            }
            delivery.settle.retry(job, delay).await
        }
        Err(Failure::Transient(error)) if job.attempt < context.settings.max_attempts => {
            metrics.job_failed(JobFailure::Transient);
            metrics.job_retried();
            let delay = context.settings.retry.delay(job.attempt);
            tracing::warn!(
                attempt = job.attempt,
                "job failed, retrying in {delay:?}: {error:#}"
            );
            mark(context, job, Status::Queued, &error).await;
            delivery.settle.retry(&job.next_attempt(), delay).await
        }
        Err(failure) => {
            let (reason, error) = match failure {
                Failure::Transient(error) => (JobFailure::Transient, error),
                Failure::Permanent(error) => (JobFailure::Permanent, error),
            };
            metrics.job_failed(reason);
            metrics.job_dead_lettered();
            tracing::error!(attempt = job.attempt, "job failed for good: {error:#}");
            mark(context, job, Status::Failed, &error).await;
            finished = Some(Finished::Failed);
            delivery.settle.dead_letter().await
        }
    };
    if let Err(error) = settle {
        // The broker will hand the job out again; a repeated job is harmless.
        tracing::warn!("could not settle job: {error:#}");
    }
    // The delivery holds one of the worker's slots: given back now, so the next job starts
    // while this one is counted.
    drop(delivery);
    if let Some(finished) = finished {
        count(context, finished).await;
    }
}

/// Counts a finished job in the jobs per minute. After settling, so a slow count never holds
/// the job; and a count that fails is only logged: the job's outcome stands.
async fn count(context: &Context, finished: Finished) {
    let counted = context
        .backends
        .index
        .count_finished(finished, Utc::now())
        .await;
    if let Err(error) = counted {
        tracing::warn!(?finished, "could not count the finished job: {error:#}");
    }
}

/// Runs the job; `counted` turns true once this delivery's start is counted in the record.
async fn run(context: &Context, job: &Job, counted: &mut bool) -> Result<Outcome, Failure> {
    let backends = &context.backends;
    let metrics = &backends.metrics;
    let transient = Failure::Transient;
    // The original is read while the start is recorded and announced: neither needs the
    // other, and each is a round trip (or a sync) that would otherwise keep the engine waiting.
    let original_key = Photo::original_key(&job.photo_id);
    let fetch = async {
        let fetching = Instant::now();
        let original = match job.original_bytes {
            Some(length) => backends.storage.get_sized(&original_key, length).await,
            None => backends.storage.get(&original_key).await,
        };
        (original, fetching.elapsed())
    };
    let (started, (original, fetch_time)) = tokio::join!(start(context, job, counted), fetch);
    let mut photo = match started? {
        Start::Go(photo) => *photo,
        Start::Not(outcome) => return Ok(outcome),
    };
    let original = original.map_err(transient)?.ok_or_else(|| {
        Failure::Transient(anyhow!(
            "the original ({original_key}) is missing from storage"
        ))
    })?;
    metrics.stage(Stage::Fetch, fetch_time);

    // Held until the variants are made, not until they are stored: the next job's engine
    // work overlaps this one's stores. Never closed, so acquiring cannot fail.
    let engine_turn = context.engine.acquire().await;
    #[cfg(feature = "test-hooks")]
    if !context.settings.job_delay.is_zero() {
        tokio::time::sleep(context.settings.job_delay).await;
    }
    #[cfg(feature = "test-hooks")]
    if let Some(prefix) = context.settings.fail_first_start_of.as_deref() {
        if photo.deliveries == 1 && photo.filename.starts_with(prefix) {
            return Err(Failure::Permanent(anyhow!(
                "failed on purpose: the first start of a photo named {prefix}… (test hook)"
            )));
        }
    }

    let specs = context.variants.clone();
    let engine = context.settings.engine.clone();
    let ops = job.ops.clone();
    let processed =
        tokio::task::spawn_blocking(move || resize::process(&original, &ops, &specs, &engine))
            .await
            .map_err(|e| Failure::Permanent(anyhow!("image processing crashed: {e}")))?
            .map_err(|e: ProcessError| Failure::Permanent(e.into()))?;
    metrics.stage(Stage::Decode, processed.timings.decode);
    metrics.stage(Stage::Resize, processed.timings.resize);
    metrics.stage(Stage::Encode, processed.timings.encode);
    drop(engine_turn);

    // The variants are stored side by side: each is a round trip to S3, or a file and
    // directory sync, and none depends on another.
    let storing = Instant::now();
    let puts = processed.variants.into_iter().map(|variant| {
        let key = Photo::variant_key(&photo.id, &variant.name);
        let info = VariantInfo::of(
            variant.width,
            variant.height,
            variant.content_type,
            &variant.bytes,
        );
        async move {
            let put = backends
                .storage
                .put(&key, variant.bytes.into(), variant.content_type)
                .await
                .with_context(|| format!("storing variant {}", variant.name));
            put.map(|()| (variant.name, key, info))
        }
    });
    let mut stored = Vec::new();
    let mut failed = None;
    for put in futures_util::future::join_all(puts).await {
        match put {
            Ok((name, key, info)) => {
                stored.push(key);
                photo.variants.insert(name, info);
            }
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
    }
    if let Some(error) = failed {
        return Err(transient(error));
    }
    metrics.stage(Stage::Store, storing.elapsed());
    photo.status = Status::Done;
    photo.width = processed.width;
    photo.height = processed.height;
    photo.error = None;
    let recording = Instant::now();
    let recorded = backends.index.update(&photo).await.map_err(transient)?;
    metrics.stage(Stage::Record, recording.elapsed());
    if !recorded {
        // Deleted while we worked: take back what we just stored.
        for key in stored {
            let _ = backends.storage.delete(&key).await;
        }
        return Ok(Outcome::Gone);
    }
    backends.announce(&photo).await;
    Ok(Outcome::Done)
}

/// Whether a delivered job goes on to the engine.
enum Start {
    /// Its start is counted and announced: this is the photo as recorded (boxed: a record
    /// is large, an outcome one byte).
    Go(Box<Photo>),
    /// It ends here.
    Not(Outcome),
}

/// Counts this delivery's start in the photo's record and marks it processing, unless the
/// photo is gone or done, or its starts have reached the limit.
async fn start(context: &Context, job: &Job, counted: &mut bool) -> Result<Start, Failure> {
    let backends = &context.backends;
    let transient = Failure::Transient;
    let Some(mut photo) = backends.index.get(&job.photo_id).await.map_err(transient)? else {
        return Ok(Start::Not(Outcome::Gone));
    };
    if photo.status == Status::Done {
        return Ok(Start::Not(Outcome::AlreadyDone));
    }
    // Counted before any work and stored with the status: a photo whose processing kills the
    // worker (or the whole `serve` process) comes back with every start recorded, and stops
    // coming back once this job's starts (those beyond its baseline: a reprocessed photo has
    // had starts before) reach the attempt limit.
    let starts = photo.deliveries.saturating_sub(job.baseline);
    if starts >= context.settings.max_attempts {
        let unfinished = starts.saturating_sub(job.attempt.saturating_sub(1));
        return Err(Failure::Permanent(anyhow!(
            "processing stopped the worker {unfinished} times; given up after {starts} deliveries"
        )));
    }
    photo.deliveries += 1;
    photo.status = Status::Processing;
    photo.attempts = job.attempt;
    if !backends.index.update(&photo).await.map_err(transient)? {
        return Ok(Start::Not(Outcome::Gone));
    }
    *counted = true;
    tracing::info!(
        attempt = job.attempt,
        delivery = photo.deliveries,
        "job started"
    );
    backends.metrics.job_started();
    backends.announce(&photo).await;
    Ok(Start::Go(Box::new(photo)))
}

/// Takes back the start counted for a delivery that a store's outage cut short. Best effort:
/// the store that failed may be the index itself, and then the start stays counted.
async fn uncount_start(context: &Context, job: &Job) {
    let index = &context.backends.index;
    let result = async {
        if let Some(mut photo) = index.get(&job.photo_id).await? {
            if photo.deliveries > job.baseline {
                photo.deliveries -= 1;
                index.update(&photo).await?;
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = result.await {
        tracing::warn!("could not take back the start the outage cut short: {e:#}");
    }
}

/// Records a failed attempt on the photo, if it still exists.
async fn mark(context: &Context, job: &Job, status: Status, error: &anyhow::Error) {
    let index = &context.backends.index;
    let result = async {
        if let Some(mut photo) = index.get(&job.photo_id).await? {
            photo.status = status;
            photo.attempts = job.attempt;
            photo.error = Some(format!("{error:#}"));
            if index.update(&photo).await? {
                context.backends.announce(&photo).await;
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = result.await {
        tracing::warn!("could not record the failure: {e:#}");
    }
}
