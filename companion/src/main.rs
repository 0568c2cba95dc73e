//! `careplane-companion`: reads config, wires, serves. Also the migration runner and the
//! development token minter.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use careplane_companion::auth::token;
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
    /// Ask the companion serving on BIND_ADDR (on this host) for its health: exit 0 when
    /// `/health/detailed` answers 200 — it serves, and its database, the careplane extension
    /// and Redis answer — else 1, printing why. For container healthchecks (the image has no
    /// curl). With `--live`, only `/health` (the process serves).
    Health {
        #[arg(long)]
        live: bool,
    },
    /// Print a development access token signed with SUPABASE_JWT_SECRET (HS256), shaped like a
    /// Supabase token after careplane's custom access token hook.
    Token {
        /// The user's id (`sub`).
        #[arg(long)]
        sub: uuid::Uuid,
        /// careplane role, written to the `user_role` and `user_roles` claims.
        #[arg(long, value_parser = ["patient", "doctor", "nurse", "dispatcher", "responder", "admin"])]
        role: String,
        /// `email` claim.
        #[arg(long)]
        email: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
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
    if let Some(Command::Token { sub, role, email, ttl }) = &cli.command {
        let request = token::DevToken { sub: *sub, user_role: role, email: email.as_deref(), ttl_seconds: *ttl };
        return match token::mint(&config.auth, &request) {
            Ok(jwt) => {
                println!("{jwt}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("careplane-companion: {e}");
                ExitCode::from(2)
            }
        };
    }
    if matches!(cli.command, None | Some(Command::Serve)) {
        if let Err(e) = config.auth.require_key_source() {
            eprintln!("careplane-companion: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(Command::Health { live }) = &cli.command {
        return health(&config, *live);
    }
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate { dir, compat, seed } => run_migrations(&config, &dir, compat, seed).await,
            Command::Token { .. } | Command::Health { .. } => unreachable!("handled before the runtime starts"),
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

fn health(config: &Config, live: bool) -> ExitCode {
    let mut addr = config.bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}{}", if live { "/health" } else { "/health/detailed" });
    let check = async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        let res = client.get(&url).send().await?;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        anyhow::Ok((status, body))
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(check) {
        Ok((status, _)) if status.is_success() => ExitCode::SUCCESS,
        Ok((status, body)) => {
            eprintln!("careplane-companion: {url} answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("careplane-companion: {url}: {e:#}");
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
    let state = AppState::from_config(config.clone())?;
    let payment_workers = careplane_companion::payments::worker::spawn_all(&state);
    let notify_workers = notify_workers(&state);
    use careplane_companion::workers::sweep::{CONSULTATION_END, LEDGER_EXPIRY};
    let sweeps: Vec<_> = [(&LEDGER_EXPIRY, config.ledger_expiry_interval), (&CONSULTATION_END, config.consultation_sweep_interval)]
        .into_iter()
        .filter_map(|(sweep, interval)| interval.map(|i| tokio::spawn(sweep.run(state.db.clone(), i))))
        .collect();
    let realtime_workers = state.realtime.spawn_workers(state.db.clone());
    let realtime = state.realtime.clone();
    let router = app(state);
    let signal = shutdown_signal()?;
    // On SIGTERM every realtime socket is closed with 1001 (upgraded connections are not
    // waited for by the HTTP server's graceful shutdown).
    let grace = config.realtime.shutdown_grace;
    let shutdown = async move {
        signal.await;
        realtime.shutdown(grace).await;
    };
    print_banner(&config, addr);
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    for worker in sweeps {
        worker.abort();
    }
    payment_workers.iter().for_each(|w| w.abort());
    for worker in notify_workers.into_iter().chain(realtime_workers) {
        worker.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The outbox worker and the reminder scheduler, unless NOTIFY_WORKER_ENABLED=false.
fn notify_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    use careplane_companion::notify::worker;
    let config = &state.notify.config;
    if !config.worker_enabled {
        return Vec::new();
    }
    let mut handles = vec![tokio::spawn(worker::run(state.db.clone(), state.notify.clone()))];
    if let Some(interval) = config.reminder_interval {
        handles.push(tokio::spawn(worker::run_reminders(state.db.clone(), state.notify.clone(), interval)));
    }
    handles
}

fn print_banner(config: &Config, addr: std::net::SocketAddr) {
    let base = format!("http://{addr}");
    let auth = &config.auth;
    let keys = match (&auth.jwt_secret, &auth.jwks_url) {
        (Some(_), Some(url)) => format!("HS256 secret + signing keys from {url}"),
        (Some(_), None) => "HS256 secret (SUPABASE_JWT_SECRET)".to_owned(),
        (None, Some(url)) => format!("signing keys from {url} (HS256 tokens refused)"),
        (None, None) => "none".to_owned(),
    };
    let issuer = auth.expected_issuer().unwrap_or_else(|| "not checked (SUPABASE_URL unset)".into());
    println!(
        "\n  careplane-companion {version}\n\n  \
         listening   {base}\n  \
         health      {base}/health   {base}/health/detailed\n  \
         api         {base}/v1/me   {base}/openapi.json   {base}/metrics\n  \
         tokens      {keys}; issuer {issuer}\n  \
         database    {db}\n  \
         redis       {redis}\n  \
         payments    {payments}\n  \
         notify      SMS {sms}, email {email}; webhooks at {public}/webhooks/twilio/status, /webhooks/twilio/inbound, /webhooks/sendgrid/events\n\n  \
         Try: curl -s {base}/health/detailed\n",
        version = careplane_companion::VERSION,
        db = config.database_url_redacted(),
        redis = config.redis_url_redacted(),
        payments = if config.paystack.sandbox() {
            format!("Paystack SANDBOX (PAYSTACK_SECRET_KEY unset): checkout pages at {base}/sandbox/paystack/checkout/<reference>")
        } else {
            format!("Paystack at {}", config.paystack.base_url)
        },
        sms = if config.notify.twilio.is_some() { "via Twilio" } else { "to the sandbox sink (GET /dev/notifications)" },
        email = if config.notify.sendgrid.is_some() { "via SendGrid" } else { "to the sandbox sink (GET /dev/notifications)" },
        public = config.notify.public_base_url,
    );
    if config.examples_dir.is_some() {
        println!(
            "  examples    {base}/examples/consultation/  (development: EXAMPLES_DIR)\n    \
             {base}/examples/consultation/?relay=1#token=<token>&consultation=<id>&role=patient|clinician&autostart=1\n"
        );
    }
    if auth.jwt_secret.is_some() {
        println!(
            "  A development token (HS256, signed with this SUPABASE_JWT_SECRET):\n    \
             careplane-companion token --sub <user uuid> --role patient|doctor|nurse|dispatcher|responder|admin\n  \
             Under `make run`, which generated the secret, from another shell in the repository:\n    \
             TOKEN=$(scripts/dev.sh token --sub $(cat /proc/sys/kernel/random/uuid) --role patient)\n    \
             curl -s -H \"Authorization: Bearer $TOKEN\" {base}/v1/me\n"
        );
    }
}

/// Registers the SIGTERM / SIGINT handlers now (before the banner says we are up, so a
/// signal sent right after it is never lost to the default action) and returns the future
/// that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
        Ok(async move {
            tokio::select! { _ = terminate.recv() => {}, _ = interrupt.recv() => {} }
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
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
