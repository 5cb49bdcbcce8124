//! gallery: a self-hosted photo gallery and processing pipeline.
//!
//! An upload walks through the modules in this order: `routes::photos` (HTTP) →
//! `ingest` (validate, store the original, record metadata, enqueue a job) → `queue` →
//! `worker` (fetch, `resize`, store variants, record the result) → `cache` (metadata that
//! `routes::photos` lists and serves). `storage`, `queue` and `cache` are traits with one
//! implementation per backend, so the roles never know which backend they run on.
//! `reprocess` is the other way jobs are made: photos already stored, queued again on the
//! bulk lane (`gallery reprocess`, the admin API), behind any new upload.
//!
//! Around that path: `domain` is the vocabulary every module speaks and depends on nothing;
//! `cli` is the command line only, and `startup` turns it into the settings each component
//! owns (`storage::S3Settings`, `ingest::Limits`, `worker::WorkerSettings`, ...) and runs the
//! roles; `error_code` is the catalog of every code the API answers with; `retry` is the one
//! backoff every retry loop uses; `deadline` bounds every call into a backend; `metrics` is
//! what each process measures (served at `/metrics`) and `telemetry` how it logs;
//! `image_cache` is the web role's bounded memory of the small images it serves. `import` is
//! no part of the server: it is a client of the public API (`gallery import`).

pub mod accounts;
pub mod backends;
pub mod bench;
pub mod blocking;
pub mod cache;
pub mod cli;
pub mod deadline;
pub mod domain;
pub mod error_code;
pub mod healthcheck;
pub mod image_cache;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod notifier;
pub mod queue;
pub mod reprocess;
pub mod resize;
pub mod retry;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod worker;
