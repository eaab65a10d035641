use std::process::ExitCode;

use clap::Parser;
use kefu::cli::{Cli, Command};
use kefu::config::Settings;
use kefu::routing::ip2region_cmd;
use kefu::startup::Application;
use kefu::store::Store;

/// Exit code for configuration problems.
const CONFIG_EXIT: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The load tool plays WeChat against a running Kefu: no database, no
    // server, no logging set-up; it reads only the account it needs. The
    // ip2region commands read no configuration either.
    let command = match cli.command {
        Command::Load(args) => return kefu::load::run(args, &cli.config_dir).await,
        Command::FetchIp2region(args) => return ip2region_cmd::fetch_command(&args),
        Command::IpRegion(args) => return ip2region_cmd::ip_region_command(&args),
        command => command,
    };
    let settings = match Settings::load(&cli.config_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Kefu's configuration has {} problem(s):", e.0.len());
            for p in &e.0 {
                eprintln!("  {p}");
            }
            return ExitCode::from(CONFIG_EXIT);
        }
    };
    kefu::telemetry::init(&settings.log);
    match command {
        Command::CheckConfig => check_config(&settings),
        Command::Migrate => migrate(&settings).await,
        Command::Serve => serve(settings).await,
        Command::Load(args) => kefu::load::run(args, &settings.config_dir).await,
        Command::FetchIp2region(args) => ip2region_cmd::fetch_command(&args),
        Command::IpRegion(args) => ip2region_cmd::ip_region_command(&args),
        Command::Import(args) => kefu::crm::import::run(&args, &settings).await,
    }
}

fn check_config(settings: &Settings) -> ExitCode {
    println!(
        "{}: configuration is valid.",
        settings.config_dir.join("kefu.toml").display()
    );
    for a in &settings.accounts {
        println!(
            "  {} ({}) {} from {}",
            a.id,
            a.kind.as_str(),
            a.callback_path(),
            a.file.display()
        );
    }
    ExitCode::SUCCESS
}

async fn migrate(settings: &Settings) -> ExitCode {
    let store = match Store::connect(&settings.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = store.migrate().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match store.applied_migrations().await {
        Ok(names) => {
            println!(
                "Database is up to date ({} migrations applied):",
                names.len()
            );
            for n in names {
                println!("  {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let stop = match kefu::startup::shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: Kefu could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for line in app.banner() {
        println!("{line}");
    }
    match app.run_until_stopped(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
