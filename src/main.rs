//! The `gallery` binary: one subcommand per role.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gallery::backends::Backends;
use gallery::configuration::{Cli, Command};
use gallery::startup::{run_notifier, run_serve, run_worker, Application};
use gallery::worker::WorkerConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Healthcheck { url } = &cli.command {
        return match gallery::healthcheck::probe(url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("unhealthy: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Bench(args) = &cli.command {
        return match gallery::bench::run(&args.dir, &args.sizes, args.threads, args.out.as_deref())
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bench failed: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    gallery::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Web(args) => {
            args.settings.require_shared("web")?;
            let backends = Backends::connect(&args.settings, "web").await?;
            let app =
                Application::build(args.listen, args.static_dir, args.settings, backends).await?;
            tracing::info!("web listening on {}", args.listen);
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Worker(args) => {
            args.settings.require_shared("worker")?;
            let config = WorkerConfig {
                concurrency: args.concurrency,
                job_delay: Duration::from_millis(args.job_delay_ms),
            };
            run_worker(args.settings, config, args.health_listen).await
        }
        Command::Notifier(args) => {
            args.settings.require_shared("notifier")?;
            let config = args.channels.notifier_config()?;
            run_notifier(args.settings, config, args.health_listen).await
        }
        Command::Serve(args) => {
            let notifier = if args.channels.any() {
                Some(args.channels.notifier_config()?)
            } else {
                None
            };
            let worker = WorkerConfig {
                concurrency: args.concurrency,
                job_delay: Duration::from_millis(args.job_delay_ms),
            };
            run_serve(
                args.listen,
                args.static_dir,
                args.settings,
                worker,
                notifier,
            )
            .await
        }
        Command::Healthcheck { .. } | Command::Bench(_) => Ok(()),
    }
}
