//! One job, start to finish: fetch the original, make the variants, store them, record the
//! result, and only then settle the delivery. Failures are retried with backoff up to
//! `max_attempts`; an image that cannot be decoded fails at once, since retrying cannot help;
//! a store that is down costs no attempt, so an outage fails no photo.
//! A job that never finishes because its processing kills the worker is caught by counting
//! deliveries in the photo's record: it fails after `max_attempts` of them, on any queue.

use anyhow::{anyhow, Context as _};

use super::WorkerSettings;
use crate::backends::Backends;
use crate::deadline;
use crate::domain::{Job, Photo, Status, VariantInfo, VariantSpec};
use crate::queue::Delivery;
use crate::resize::{self, ProcessError};

pub struct Context {
    pub backends: Backends,
    pub settings: WorkerSettings,
    pub variants: Vec<VariantSpec>,
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

pub async fn handle(context: &Context, delivery: Delivery) {
    let job = &delivery.job;
    let settle = match run(context, job).await {
        Ok(outcome) => {
            tracing::info!(id = %job.photo_id, ?outcome, attempt = job.attempt, "job finished");
            delivery.settle.ack().await
        }
        Err(Failure::Transient(error)) if deadline::failing_store(&error).is_some() => {
            // A store is down or not answering: not the photo's fault, so it costs no attempt,
            // and the job comes back after each backoff step for as long as the outage lasts
            // (each try costs at least one deadline, so this never spins). Nothing is marked:
            // the store that failed may be the index itself.
            let delay = context.settings.retry.delay(job.attempt);
            tracing::warn!(id = %job.photo_id, attempt = job.attempt, "a store failed; job retried in {delay:?} at no cost: {error:#}");
            delivery.settle.retry(job, delay).await
        }
        Err(Failure::Transient(error)) if job.attempt < context.settings.max_attempts => {
            let delay = context.settings.retry.delay(job.attempt);
            tracing::warn!(id = %job.photo_id, attempt = job.attempt, "job failed, retrying in {delay:?}: {error:#}");
            mark(context, job, Status::Queued, &error).await;
            delivery.settle.retry(&job.next_attempt(), delay).await
        }
        Err(Failure::Transient(error) | Failure::Permanent(error)) => {
            tracing::error!(id = %job.photo_id, attempt = job.attempt, "job failed for good: {error:#}");
            mark(context, job, Status::Failed, &error).await;
            delivery.settle.dead_letter().await
        }
    };
    if let Err(error) = settle {
        // The broker will hand the job out again; a repeated job is harmless.
        tracing::warn!(id = %job.photo_id, "could not settle job: {error:#}");
    }
}

async fn run(context: &Context, job: &Job) -> Result<Outcome, Failure> {
    let backends = &context.backends;
    let transient = Failure::Transient;
    let Some(mut photo) = backends.index.get(&job.photo_id).await.map_err(transient)? else {
        return Ok(Outcome::Gone);
    };
    if photo.status == Status::Done {
        return Ok(Outcome::AlreadyDone);
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
        return Ok(Outcome::Gone);
    }
    tracing::info!(id = %photo.id, attempt = job.attempt, delivery = photo.deliveries, "job started");
    backends.announce(&photo).await;
    #[cfg(feature = "test-hooks")]
    if !context.settings.job_delay.is_zero() {
        tokio::time::sleep(context.settings.job_delay).await;
    }

    let original_key = Photo::original_key(&photo.id);
    let original = backends
        .storage
        .get(&original_key)
        .await
        .map_err(transient)?
        .ok_or_else(|| {
            Failure::Transient(anyhow!(
                "the original ({original_key}) is missing from storage"
            ))
        })?;
    let specs = context.variants.clone();
    let engine = context.settings.engine.clone();
    let ops = job.ops.clone();
    let processed =
        tokio::task::spawn_blocking(move || resize::process(&original, &ops, &specs, &engine))
            .await
            .map_err(|e| Failure::Permanent(anyhow!("image processing crashed: {e}")))?
            .map_err(|e: ProcessError| Failure::Permanent(e.into()))?;

    let mut stored = Vec::new();
    for variant in processed.variants {
        let key = Photo::variant_key(&photo.id, &variant.name);
        let info = VariantInfo {
            width: variant.width,
            height: variant.height,
            content_type: variant.content_type.to_owned(),
            bytes: variant.bytes.len() as u64,
        };
        backends
            .storage
            .put(&key, variant.bytes.into(), variant.content_type)
            .await
            .with_context(|| format!("storing variant {}", variant.name))
            .map_err(transient)?;
        stored.push(key);
        photo.variants.insert(variant.name, info);
    }
    photo.status = Status::Done;
    photo.width = processed.width;
    photo.height = processed.height;
    photo.error = None;
    if !backends.index.update(&photo).await.map_err(transient)? {
        // Deleted while we worked: take back what we just stored.
        for key in stored {
            let _ = backends.storage.delete(&key).await;
        }
        return Ok(Outcome::Gone);
    }
    backends.announce(&photo).await;
    Ok(Outcome::Done)
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
        tracing::warn!(id = %job.photo_id, "could not record the failure: {e:#}");
    }
}
