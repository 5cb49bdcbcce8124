//! gallery: a self-hosted photo gallery and processing pipeline.
//!
//! An upload walks through the modules in this order: `routes::photos` (HTTP) →
//! `ingest` (validate, store the original, record metadata, enqueue a job) → `queue` →
//! `worker` (fetch, `resize`, store variants, record the result) → `cache` (metadata that
//! `routes::photos` lists and serves). `storage`, `queue` and `cache` are traits with one
//! implementation per backend, so the roles never know which backend they run on.

pub mod backends;
pub mod bench;
pub mod cache;
pub mod configuration;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod ingest;
pub mod notifier;
pub mod queue;
pub mod resize;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod worker;
