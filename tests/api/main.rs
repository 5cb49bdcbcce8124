//! One integration-test binary for the whole API, on real Redis, RabbitMQ and S3 and on the
//! embedded backends of `gallery serve`.

#[cfg(not(feature = "test-hooks"))]
compile_error!(
    "the API tests need the test hooks: run `make test` (cargo test --features test-hooks)"
);

#[macro_use]
mod helpers;

mod accounts;
mod admin_page;
mod configuration;
mod deploy;
mod events;
mod freeze;
mod gateway;
mod health;
mod images;
mod import;
mod lanes;
mod metrics;
mod notifier;
mod own_services;
mod photos;
mod processing;
mod quorum;
mod redis_failover;
mod resilience;
mod s3_restart;
mod serve;
mod storage;
mod upload;
