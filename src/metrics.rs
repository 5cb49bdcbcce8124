//! What the roles measure, served in Prometheus' text format at `/metrics` (on the web role's
//! listener, and on the worker's and notifier's health listener): HTTP requests, the memory of
//! hot images, uploads, jobs and their stages, queue depth, notifier sends, and the build.
//!
//! One `Metrics` per process, made at start-up and carried in `Backends` to every role the
//! process runs (the roles of `gallery serve` share it), so a scrape shows exactly what that
//! process did. It is an explicit registry rather than the `prometheus` crate's global one:
//! the test suite runs many apps in one process, and each must count only its own work.
//!
//! Every label value comes from a closed set (route templates, methods, status codes, error
//! codes, stage and channel names), never from a raw path or any other input, so the number of
//! series stays bounded and nothing private (a share-link token, a file name) reaches a scrape.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error_code::ErrorCode;

/// The content type of a scrape (Prometheus' text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP latency buckets, in seconds: from a cached variant (a millisecond) to a large upload
/// on a slow line (a minute).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Job stage buckets, in seconds: from recording a thumbnail's size (a millisecond) to
/// decoding a 100 MP photo (seconds).
const STAGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One step of a job, timed on its own (`gallery_job_stage_duration_seconds{stage}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the original from storage.
    Fetch,
    /// Probing and decoding the image (at the scale the largest variant needs).
    Decode,
    /// Resizing and orienting every variant.
    Resize,
    /// Encoding every variant.
    Encode,
    /// Writing every variant to storage.
    Store,
    /// Recording the result in the index.
    Record,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Decode => "decode",
            Stage::Resize => "resize",
            Stage::Encode => "encode",
            Stage::Store => "store",
            Stage::Record => "record",
        }
    }
}

/// One step of accepting an uploaded file that passed its checks, timed on its own
/// (`gallery_upload_stage_duration_seconds{stage}`): with the job's stages, where the time
/// from upload to done goes outside the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStage {
    /// The file's bytes, from its first to its last, into the spool (paced by the client).
    Receive,
    /// The original to storage.
    Store,
    /// The photo's record into the index.
    Record,
    /// The job onto the queue, confirmed (with the `photo.queued` event).
    Queue,
}

impl UploadStage {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStage::Receive => "receive",
            UploadStage::Store => "store",
            UploadStage::Record => "record",
            UploadStage::Queue => "queue",
        }
    }
}

/// Why a job attempt failed (`gallery_jobs_failed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFailure {
    /// A store was down or did not answer: retried at no cost.
    Outage,
    /// Might work next time: retried while attempts remain.
    Transient,
    /// Will never work (the image itself): dead-lettered at once.
    Permanent,
}

impl JobFailure {
    fn as_str(self) -> &'static str {
        match self {
            JobFailure::Outage => "outage",
            JobFailure::Transient => "transient",
            JobFailure::Permanent => "permanent",
        }
    }
}

/// Where an image read whole came from (`gallery_image_cache_reads_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRead {
    /// From the web role's memory (or another request's read of it, waited for).
    Hit,
    /// From storage.
    Miss,
}

impl ImageRead {
    fn as_str(self) -> &'static str {
        match self {
            ImageRead::Hit => "hit",
            ImageRead::Miss => "miss",
        }
    }
}

/// How one notification send ended (`gallery_notifier_sends_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// The ledger says it went out before (a redelivered event): not sent again.
    AlreadySent,
    /// Refused, or out of tries.
    Failed,
    /// Stopped before it was done; its event is delivered again.
    Halted,
}

impl SendOutcome {
    fn as_str(self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::AlreadySent => "already_sent",
            SendOutcome::Failed => "failed",
            SendOutcome::Halted => "halted",
        }
    }
}

/// The process's measurements; cheap to clone (every clone counts into the same registry).
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

struct Families {
    registry: Registry,
    build_info: IntGaugeVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    image_cache_reads: IntCounterVec,
    image_cache_bytes: IntGauge,
    uploads_accepted: IntCounter,
    uploads_refused: IntCounterVec,
    upload_stage: HistogramVec,
    jobs_started: IntCounter,
    jobs_done: IntCounter,
    jobs_failed: IntCounterVec,
    jobs_retried: IntCounter,
    jobs_dead_lettered: IntCounter,
    job_duration: Histogram,
    job_stage: HistogramVec,
    queue_depth: IntGaugeVec,
    notifier_sends: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry for a process running `role` (`web`, `worker`, `notifier`, `serve`),
    /// which `gallery_build_info` names along with the version.
    pub fn new(role: &str) -> Self {
        let registry = Registry::new();
        let families = Families {
            build_info: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gallery_build_info",
                        "Always 1: the version of the running binary, and its role.",
                    ),
                    &["version", "role"],
                ),
            ),
            http_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "gallery_http_requests_total",
                        "HTTP requests answered, by route template, method and status.",
                    ),
                    &["route", "method", "status"],
                ),
            ),
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gallery_http_request_duration_seconds",
                        "Time from a request's arrival to its response's head, by route \
                         template, method and status (a streamed body, such as /api/events, \
                         goes on after).",
                    )
                    .buckets(HTTP_BUCKETS.to_vec()),
                    &["route", "method", "status"],
                ),
            ),
            image_cache_reads: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "gallery_image_cache_reads_total",
                        "Images read whole to be served (those up to GALLERY_IMAGE_CACHE_ITEM_KB), \
                         by where they came from: hit (the web role's memory) or miss (storage).",
                    ),
                    &["outcome"],
                ),
            ),
            image_cache_bytes: register(
                &registry,
                IntGauge::new(
                    "gallery_image_cache_bytes",
                    "Bytes the web role's memory of hot images holds, as of the last scrape.",
                ),
            ),
            uploads_accepted: register(
                &registry,
                IntCounter::new(
                    "gallery_uploads_accepted_total",
                    "Uploaded files accepted: stored, recorded and queued.",
                ),
            ),
            uploads_refused: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "gallery_uploads_refused_total",
                        "Uploaded files (or whole upload requests) refused, by error code.",
                    ),
                    &["code"],
                ),
            ),
            upload_stage: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gallery_upload_stage_duration_seconds",
                        "Time each step of accepting an uploaded file took: receive, store, \
                         record, queue.",
                    )
                    .buckets(STAGE_BUCKETS.to_vec()),
                    &["stage"],
                ),
            ),
            jobs_started: register(
                &registry,
                IntCounter::new(
                    "gallery_jobs_started_total",
                    "Jobs whose processing started (the photo marked processing).",
                ),
            ),
            jobs_done: register(
                &registry,
                IntCounter::new(
                    "gallery_jobs_done_total",
                    "Jobs finished with their variants stored and recorded.",
                ),
            ),
            jobs_failed: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "gallery_jobs_failed_total",
                        "Job attempts that failed, by reason (outage: a store was down; \
                         transient; permanent); each is then retried or dead-lettered.",
                    ),
                    &["reason"],
                ),
            ),
            jobs_retried: register(
                &registry,
                IntCounter::new(
                    "gallery_jobs_retried_total",
                    "Failed job attempts sent round again after a backoff.",
                ),
            ),
            jobs_dead_lettered: register(
                &registry,
                IntCounter::new(
                    "gallery_jobs_dead_lettered_total",
                    "Jobs given up on: the photo failed, the job parked in the dead-letter queue.",
                ),
            ),
            job_duration: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gallery_job_duration_seconds",
                        "Time from a job's delivery to its result recorded, for jobs done.",
                    )
                    .buckets(STAGE_BUCKETS.to_vec()),
                ),
            ),
            job_stage: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gallery_job_stage_duration_seconds",
                        "Time each stage of a job took: fetch, decode, resize, encode, store, \
                         record.",
                    )
                    .buckets(STAGE_BUCKETS.to_vec()),
                    &["stage"],
                ),
            ),
            queue_depth: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gallery_queue_depth",
                        "Jobs waiting in each lane of the job queue, as of the last scrape.",
                    ),
                    &["lane"],
                ),
            ),
            notifier_sends: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "gallery_notifier_sends_total",
                        "Notification sends (one channel, one recipient, retries included), by \
                         channel and outcome.",
                    ),
                    &["channel", "outcome"],
                ),
            ),
            registry,
        };
        families
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
            .set(1);
        Metrics(Arc::new(families))
    }

    /// One request answered by the web role. `route` is the matched route template
    /// (`/api/photos/{id}`), never the raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.0.http_requests.with_label_values(&labels).inc();
        self.0
            .http_duration
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// One image read whole for an answer, from memory or from storage.
    pub fn image_cache_read(&self, read: ImageRead) {
        self.0
            .image_cache_reads
            .with_label_values(&[read.as_str()])
            .inc();
    }

    /// Meant for scrape time, like the queue's depths.
    pub fn set_image_cache_bytes(&self, bytes: u64) {
        self.0
            .image_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn upload_accepted(&self) {
        self.0.uploads_accepted.inc();
    }

    pub fn upload_stage(&self, stage: UploadStage, took: Duration) {
        self.0
            .upload_stage
            .with_label_values(&[stage.as_str()])
            .observe(took.as_secs_f64());
    }

    pub fn upload_refused(&self, code: ErrorCode) {
        self.0
            .uploads_refused
            .with_label_values(&[code.as_str()])
            .inc();
    }

    pub fn job_started(&self) {
        self.0.jobs_started.inc();
    }

    /// A job done, `took` from its delivery.
    pub fn job_done(&self, took: Duration) {
        self.0.jobs_done.inc();
        self.0.job_duration.observe(took.as_secs_f64());
    }

    pub fn job_failed(&self, reason: JobFailure) {
        self.0
            .jobs_failed
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn job_retried(&self) {
        self.0.jobs_retried.inc();
    }

    pub fn job_dead_lettered(&self) {
        self.0.jobs_dead_lettered.inc();
    }

    pub fn stage(&self, stage: Stage, took: Duration) {
        self.0
            .job_stage
            .with_label_values(&[stage.as_str()])
            .observe(took.as_secs_f64());
    }

    /// Sets `gallery_queue_depth{lane}` from (lane, waiting jobs) pairs, and drops lanes no
    /// longer listed. Called at scrape time by the web role's `/metrics` with what the queue
    /// reports.
    pub fn set_queue_depths<L: AsRef<str>>(&self, depths: &[(L, u64)]) {
        self.0.queue_depth.reset();
        for (lane, depth) in depths {
            self.0
                .queue_depth
                .with_label_values(&[lane.as_ref()])
                .set(i64::try_from(*depth).unwrap_or(i64::MAX));
        }
    }

    /// One send of a notification ended. `channel` is the channel's name (`e-mail`,
    /// `Telegram`, `webhook`), lower-cased here.
    pub fn notifier_send(&self, channel: &str, outcome: SendOutcome) {
        let channel = channel.to_lowercase();
        self.0
            .notifier_sends
            .with_label_values(&[channel.as_str(), outcome.as_str()])
            .inc();
    }

    /// Everything measured so far, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into memory fails only on a malformed family, which `new` cannot make.
        if let Err(error) = TextEncoder::new().encode(&self.0.registry.gather(), &mut buffer) {
            tracing::error!("cannot render the metrics: {error}");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// The name of every metric family this registry exports, whether or not it has a series
    /// yet (for checking dashboards against).
    pub fn names(&self) -> Vec<String> {
        let f = &*self.0;
        let collectors: [&dyn Collector; 17] = [
            &f.build_info,
            &f.http_requests,
            &f.http_duration,
            &f.image_cache_reads,
            &f.image_cache_bytes,
            &f.uploads_accepted,
            &f.uploads_refused,
            &f.upload_stage,
            &f.jobs_started,
            &f.jobs_done,
            &f.jobs_failed,
            &f.jobs_retried,
            &f.jobs_dead_lettered,
            &f.job_duration,
            &f.job_stage,
            &f.queue_depth,
            &f.notifier_sends,
        ];
        let mut names: Vec<String> = collectors
            .iter()
            .flat_map(|collector| collector.desc())
            .map(|desc| desc.fq_name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Registers a metric made from a static definition; a bad definition (an invalid name, a
/// name registered twice) is a bug in `Metrics::new`, which its tests catch.
fn register<C: Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    let collector = made.expect("metric definitions are valid");
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_exports_every_family_and_its_build() {
        let metrics = Metrics::new("web");
        let names = metrics.names();
        for name in [
            "gallery_build_info",
            "gallery_http_requests_total",
            "gallery_http_request_duration_seconds",
            "gallery_image_cache_reads_total",
            "gallery_image_cache_bytes",
            "gallery_uploads_accepted_total",
            "gallery_uploads_refused_total",
            "gallery_upload_stage_duration_seconds",
            "gallery_jobs_started_total",
            "gallery_jobs_done_total",
            "gallery_jobs_failed_total",
            "gallery_jobs_retried_total",
            "gallery_jobs_dead_lettered_total",
            "gallery_job_duration_seconds",
            "gallery_job_stage_duration_seconds",
            "gallery_queue_depth",
            "gallery_notifier_sends_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                "gallery_build_info{{role=\"web\",version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }

    #[test]
    fn two_registries_count_apart() {
        let (one, other) = (Metrics::new("web"), Metrics::new("web"));
        one.upload_accepted();
        one.http_request("/api/photos/{id}", "GET", 200, Duration::from_millis(3));
        assert!(one.render().contains("gallery_uploads_accepted_total 1"));
        assert!(other.render().contains("gallery_uploads_accepted_total 0"));
        assert!(one.render().contains(
            "gallery_http_requests_total{method=\"GET\",route=\"/api/photos/{id}\",status=\"200\"} 1"
        ));
    }

    #[test]
    fn queue_depths_replace_the_previous_lanes() {
        let metrics = Metrics::new("web");
        metrics.set_queue_depths(&[("interactive", 3), ("bulk", 40)]);
        metrics.set_queue_depths(&[("interactive", 1)]);
        let text = metrics.render();
        assert!(
            text.contains("gallery_queue_depth{lane=\"interactive\"} 1"),
            "{text}"
        );
        assert!(!text.contains("lane=\"bulk\""), "{text}");
    }

    #[test]
    fn channels_are_labelled_in_lower_case() {
        let metrics = Metrics::new("notifier");
        metrics.notifier_send("Telegram", SendOutcome::Sent);
        let text = metrics.render();
        assert!(
            text.contains("gallery_notifier_sends_total{channel=\"telegram\",outcome=\"sent\"} 1"),
            "{text}"
        );
    }
}
