//! `careplane-companion`: reads config, wires, serves. Also the migration runner.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use careplane_companion::config::LogFormat;
use careplane_companion::db::migrate;
use careplane_companion::{app, AppState, Config};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use sqlx::Connection;

#[derive(Parser)]
#[command(name = "careplane-companion", version, about = "careplane's companion service beside Supabase")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP on BIND_ADDR (the default command).
    Serve,
    /// Apply the Supabase compatibility layer, pending migrations and the seed to DATABASE_URL.
    Migrate {
        /// Directory of `<version>_<name>.sql` files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Idempotent SQL run before the migrations (the plain-Postgres Supabase layer).
        #[arg(long)]
        compat: Option<PathBuf>,
        /// Seed file, loaded after the migrations when its content changed.
        #[arg(long)]
        seed: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("careplane-companion: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate { dir, compat, seed } => run_migrations(&config, &dir, compat, seed).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("careplane-companion: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind_addr;
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("BIND_ADDR {bind}: cannot listen"))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    print_banner(&config, addr);
    let state = AppState::from_config(config)?;
    axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(config: &Config, addr: std::net::SocketAddr) {
    let base = format!("http://{addr}");
    println!(
        "\n  careplane-companion {version}\n\n  \
         listening   {base}\n  \
         health      {base}/health   {base}/health/detailed\n  \
         database    {db}\n  \
         redis       {redis}\n  \
         providers   Paystack, Twilio, SendGrid: not wired in this version (nothing is sent)\n\n  \
         Try: curl -s {base}/health/detailed\n",
        version = careplane_companion::VERSION,
        db = config.database_url_redacted(),
        redis = config.redis_url_redacted(),
    );
}

/// Registers SIGTERM and SIGINT now (so a signal that arrives right after start-up is not lost
/// to the default handler) and resolves when either arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}

async fn run_migrations(
    config: &Config,
    dir: &std::path::Path,
    compat: Option<PathBuf>,
    seed: Option<PathBuf>,
) -> anyhow::Result<()> {
    let migrations = migrate::load_dir(dir)?;
    let mut conn = sqlx::PgConnection::connect(config.database_url.expose_secret())
        .await
        .with_context(|| format!("cannot connect to DATABASE_URL {}", config.database_url_redacted()))?;
    if let Some(path) = compat {
        migrate::run_file(&mut conn, &path).await?;
        println!("  compat      {} applied", path.display());
    }
    let report = migrate::apply(&mut conn, &migrations).await?;
    for name in &report.applied {
        println!("  migration   {name} applied");
    }
    println!("  migrations  {} applied, {} already applied", report.applied.len(), report.already_applied);
    for version in &report.unknown_in_database {
        println!("  warning     version {version} is recorded in the database but has no file in {}", dir.display());
    }
    if let Some(path) = seed {
        let key = path.strip_prefix("supabase").unwrap_or(&path).display().to_string();
        let key = key.trim_start_matches('/');
        let ran = migrate::seed(&mut conn, &path, key).await?;
        println!("  seed        {} {}", path.display(), if ran { "loaded" } else { "unchanged, skipped" });
    }
    conn.close().await?;
    Ok(())
}
