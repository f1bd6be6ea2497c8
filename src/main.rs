//! The `shortener` binary: parse the command line, load settings, call the library.

#![warn(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shortener::config::{Overrides, Settings};
use shortener::startup::Application;
use shortener::{commands, telemetry};

#[derive(Parser)]
#[command(name = "shortener", version, about = "A URL shortener")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "SHORTENER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`; also SHORTENER_LISTEN).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Embedded mode: directory of the SQLite file (overrides `data_dir`; also
    /// SHORTENER_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default). Without [[shards]] in the configuration it
    /// runs embedded, on a SQLite file under ./data.
    Serve,
    /// Apply migrations: to every shard (creating missing databases), or to the
    /// embedded SQLite file.
    Migrate,
    /// Print the shard map: name, first ID, first time, URL.
    Shards,
    /// Run the click analytics worker on its own (needs queue.kind = "redis").
    Worker,
    /// Bulk-load links for load tests and write their codes to a file.
    Seed {
        /// How many links.
        #[arg(long)]
        count: u64,
        /// Where the codes go, one per line.
        #[arg(long, default_value = "seed-codes.txt")]
        codes: PathBuf,
        /// Each link points to this prefix followed by its number.
        #[arg(long, default_value = "https://example.com/seed/")]
        url_prefix: String,
    },
    /// Print a fresh random code key (32 hexadecimal digits) for `codes.key`: the
    /// secret behind generated codes, the same on every instance of a deployment.
    CodeKey,
    /// Take links down and put them back (operators' takedowns).
    Links {
        #[command(subcommand)]
        command: commands::LinksCommand,
    },
    /// Manage API keys (kept in the directory, hashed).
    Keys {
        #[command(subcommand)]
        command: commands::KeysCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::CodeKey)) {
        // Needs no configuration: it is how the first one is written.
        println!("{}", commands::new_code_key());
        return ExitCode::SUCCESS;
    }
    let overrides = Overrides {
        listen: cli.listen.clone(),
        data_dir: cli.data_dir.clone(),
    };
    let settings = match Settings::load_with(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shortener: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shortener: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                let app = Application::build(settings).await?;
                app.shutdown().on_signals();
                app.run_until_stopped().await?;
                tracing::info!("stopped");
            }
            Command::Migrate => print!("{}", commands::migrate(&settings).await?),
            Command::Shards => print!("{}", commands::shard_table(&settings)),
            Command::Worker => commands::worker(&settings).await?,
            Command::Seed {
                count,
                codes,
                url_prefix,
            } => print!(
                "{}",
                commands::seed(&settings, count, &codes, &url_prefix).await?
            ),
            Command::CodeKey => unreachable!("answered before the configuration is read"),
            Command::Links { command } => print!("{}", commands::links(&settings, command).await?),
            Command::Keys { command } => print!("{}", commands::keys(&settings, command).await?),
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shortener: {e:#}");
            ExitCode::FAILURE
        }
    }
}
