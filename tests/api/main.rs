//! One integration-test binary for the whole API, on real Redis, RabbitMQ and S3 and on the
//! embedded backends of `gallery serve`.

#[macro_use]
mod helpers;

mod deploy;
mod events;
mod gateway;
mod health;
mod notifier;
mod photos;
mod processing;
mod resilience;
mod serve;
mod upload;
