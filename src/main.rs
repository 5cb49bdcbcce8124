//! The `gallery` binary: one subcommand per role. It reads the command line (`cli`), turns it
//! into typed settings (`startup::Settings`) and runs the role.

use std::process::ExitCode;

use gallery::backends::Backends;
use gallery::cli::{Cli, Command, ImportArgs};
use gallery::import::ImportSettings;
use gallery::notifier::NotifierSettings;
use gallery::routes::WebSettings;
use gallery::startup::{run_notifier, run_serve, run_worker, Application, Settings};
use gallery::telemetry::LogFormat;

fn main() -> ExitCode {
    let cli = Cli::parse_process();
    if let Command::Healthcheck { url } = &cli.command {
        return match gallery::healthcheck::probe(url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("unhealthy: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if matches!(
        cli.command,
        Command::Bench(_) | Command::Worker(_) | Command::Serve(_)
    ) {
        // Before any thread exists: these roles run the engine.
        gallery::resize::tune_allocator();
    }
    if let Command::Bench(args) = &cli.command {
        let options = gallery::bench::Options {
            out: args.out.as_deref(),
            quality: !args.no_quality,
            per_photo: args.per_photo,
            quality_csv: args.quality_csv.as_deref(),
        };
        return match gallery::bench::run(&args.dir, &args.sizes, args.threads, &options) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bench failed: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Import(args) = &cli.command {
        return import(args);
    }
    match LogFormat::from_args(&cli) {
        Ok(format) => gallery::telemetry::init(format),
        Err(error) => {
            eprintln!("{error:#}");
            return ExitCode::FAILURE;
        }
    }
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .inspect_err(|error| eprintln!("cannot start the async runtime: {error}"))
        .ok()
}

/// `gallery import`: its output is its report (no log lines), and its exit code says whether
/// every file got in.
fn import(args: &ImportArgs) -> ExitCode {
    let settings = match ImportSettings::from_args(args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error:#}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(gallery::import::run(settings)) {
        Ok(summary) if summary.all_in() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("import failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Web(args) => {
            let settings = Settings::from_args(&args.shared, None)?;
            settings.backends.require_shared("web")?;
            let web = WebSettings::from_args(&args.http)?;
            let backends = Backends::connect(&settings.backends, "web").await?;
            let app = Application::build(&web, &settings, backends).await?;
            tracing::info!("web listening on {}:{}", web.listen.ip(), app.port());
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Worker(args) => {
            let settings = Settings::from_args(&args.shared, Some(&args.worker))?;
            settings.backends.require_shared("worker")?;
            run_worker(settings, args.health_listen).await
        }
        Command::Notifier(args) => {
            let settings = Settings::from_args(&args.shared, None)?;
            settings.backends.require_shared("notifier")?;
            let notifier = NotifierSettings::from_args(&args.channels)?;
            run_notifier(settings, notifier, args.health_listen).await
        }
        Command::Serve(args) => {
            let settings = Settings::from_args(&args.shared, Some(&args.worker))?;
            let notifier = NotifierSettings::from_args(&args.channels)?;
            let notifier = notifier.any_channel().then_some(notifier);
            run_serve(WebSettings::from_args(&args.http)?, settings, notifier).await
        }
        Command::User(args) => {
            let settings = Settings::from_args(&args.shared, None)?;
            gallery::startup::manage_users(&settings.backends, args.action).await
        }
        Command::Reprocess(args) => {
            let settings = Settings::from_args(&args.shared, None)?;
            gallery::startup::reprocess(&settings, &args).await
        }
        Command::Healthcheck { .. } | Command::Bench(_) | Command::Import(_) => Ok(()),
    }
}
