//! Helpers for careplane's end-to-end tests: throwaway databases in the running Postgres and
//! the real companion binary as a child process.
//!
//! Settings (the Makefile sets them): `CAREPLANE_TEST_ADMIN_URL` (a database to create and drop
//! others from; default the local `postgres` database), `REDIS_URL`, `CAREPLANE_COMPANION_BIN`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_owned()
}

pub fn admin_url() -> String {
    std::env::var("CAREPLANE_TEST_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `postgres://…/postgres` → `postgres://…/<name>`.
fn url_for(admin: &str, name: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("admin URL has a database path");
    format!("{base}/{name}")
}

/// A database that exists for one test and is dropped (with force) when this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// An empty database.
    pub async fn empty() -> anyhow::Result<Self> {
        let name = format!("careplane_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url()).await.context("connect CAREPLANE_TEST_ADMIN_URL")?;
        admin.execute(format!("create database \"{name}\"").as_str()).await?;
        Ok(TestDb { url: url_for(&admin_url(), &name), name })
    }

    /// A database with the compat layer, the extension and every migration, as `make db`
    /// builds it (without the seed).
    pub async fn migrated() -> anyhow::Result<Self> {
        let db = Self::empty().await?;
        migrate(&mut db.connect().await?).await?;
        Ok(db)
    }

    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.url).await?)
    }
}

/// Applies the compat layer, the extension and every migration, as `make db` does (no seed).
pub async fn migrate(conn: &mut PgConnection) -> anyhow::Result<()> {
    let root = workspace_root();
    careplane_companion::db::migrate::run_file(conn, &root.join("sql/supabase_compat.sql")).await?;
    let migrations = careplane_companion::db::migrate::load_dir(&root.join("migrations"))?;
    careplane_companion::db::migrate::apply(conn, &migrations).await?;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url()).await.ok()?;
                admin.execute(format!("drop database if exists \"{name}\" with (force)").as_str()).await.ok()
            })
        })
        .join();
    }
}

pub mod fake_providers;
pub mod jwt;
pub mod s3;
pub mod paystack_fake;

/// The HS256 secret companions spawned by the tests use unless the test configures keys itself.
pub const TEST_JWT_SECRET: &str = "careplane-e2e-test-secret-not-for-production-0123456789";

/// The companion binary running as a child process; killed when dropped.
pub struct Companion {
    pub child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// Its stderr (the logs), line by line, when started with [`Companion::spawn_with_logs`].
    pub logs: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    /// The throwaway database made for it when the test gave no `DATABASE_URL`; dropped with it.
    pub own_db: Option<TestDb>,
}

pub fn companion_bin() -> PathBuf {
    let bin = std::env::var_os("CAREPLANE_COMPANION_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/careplane-companion"));
    assert!(bin.exists(), "{} is missing: run `cargo build -p careplane-companion` (make test does)", bin.display());
    bin
}

impl Companion {
    /// Starts `careplane-companion serve` on a free port with `env` added to a clean
    /// environment, and waits for its banner. Unless `env` configures token keys itself
    /// (`SUPABASE_JWT_SECRET`, `SUPABASE_URL` or `SUPABASE_JWKS_URL`), the companion gets
    /// [`TEST_JWT_SECRET`], since it refuses to serve without keys. Unless `env` gives a
    /// `DATABASE_URL`, the companion gets an empty throwaway database of its own: a test never
    /// reaches the developer's database through the companion's built-in default.
    pub async fn spawn(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start(env, false).await
    }

    /// Like [`Companion::spawn`], collecting stderr (the logs) into `logs`.
    pub async fn spawn_with_logs(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start(env, true).await
    }

    async fn start(env: &[(&str, &str)], capture_logs: bool) -> anyhow::Result<Self> {
        let mut cmd = Command::new(companion_bin());
        cmd.arg("serve").env_clear().env("BIND_ADDR", "127.0.0.1:0").env("RUST_LOG", "warn");
        let has_keys = env.iter().any(|(k, _)| ["SUPABASE_JWT_SECRET", "SUPABASE_URL", "SUPABASE_JWKS_URL"].contains(k));
        if !has_keys {
            cmd.env("SUPABASE_JWT_SECRET", TEST_JWT_SECRET);
        }
        let own_db = if env.iter().any(|(k, _)| *k == "DATABASE_URL") {
            None
        } else {
            let db = TestDb::empty().await?;
            cmd.env("DATABASE_URL", &db.url);
            Some(db)
        };
        cmd.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(if capture_logs { Stdio::piped() } else { Stdio::inherit() })
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn careplane-companion")?;
        let logs = if capture_logs {
            let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = logs.clone();
            let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = stderr.next_line().await {
                    sink.lock().expect("log lock").push(line);
                }
            });
            Some(logs)
        } else {
            None
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.trim().strip_prefix("listening") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("careplane-companion exited before printing its banner")
        })
        .await
        .context("careplane-companion did not start within 20 s")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Companion { child, base, logs, own_db })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Finds a free TCP port on loopback (closed again before returning).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind loopback").port()
}

/// The claims PostgREST would set for a signed-in user with one role.
pub fn user_claims(sub: uuid::Uuid, user_role: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "role": "authenticated", "aud": "authenticated",
        "user_role": user_role, "user_roles": [user_role],
    })
}

/// Begins a transaction that acts as the user, exactly as PostgREST does for a request:
/// `request.jwt.claims` and `set local role authenticated`, so RLS decides.
pub async fn begin_as<'c>(
    conn: &'c mut PgConnection,
    claims: &serde_json::Value,
) -> anyhow::Result<sqlx::Transaction<'c, sqlx::Postgres>> {
    let mut tx = conn.begin().await?;
    careplane_companion::db::user::act_as(&mut tx, "authenticated", &claims.to_string()).await?;
    Ok(tx)
}

/// Signs a user up (auth.users; the trigger adds the profile and the patient role) and grants
/// `role` when it is not `patient`. Runs as the connection's own (owner) role.
pub async fn create_user(conn: &mut PgConnection, role: &str) -> anyhow::Result<uuid::Uuid> {
    let id = uuid::Uuid::new_v4();
    sqlx::query("insert into auth.users (id, email) values ($1, $2)")
        .bind(id)
        .bind(format!("{}@example.test", id.simple()))
        .execute(&mut *conn)
        .await?;
    if role != "patient" {
        sqlx::query("insert into public.user_roles (user_id, role) values ($1, $2::public.app_role)")
            .bind(id)
            .bind(role)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

/// A direct conversation with these members (as the owner: conversations are made by RPCs).
pub async fn create_conversation(conn: &mut PgConnection, members: &[uuid::Uuid]) -> anyhow::Result<uuid::Uuid> {
    let id: uuid::Uuid =
        sqlx::query_scalar("insert into public.conversations (kind) values ('direct') returning id").fetch_one(&mut *conn).await?;
    sqlx::query("insert into public.conversation_members (conversation_id, user_id) select $1, unnest($2::uuid[])")
        .bind(id)
        .bind(members)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// A Redis of the test's own, so stopping it disturbs nothing else.
pub struct PrivateRedis {
    pub port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    pub fn start(port: u16) -> Self {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return PrivateRedis { port, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("private redis-server did not listen on {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis key prefix no other test uses, so tests sharing the local Redis never share limits.
pub fn unique_prefix() -> String {
    format!("careplane-test:{}", uuid::Uuid::new_v4().simple())
}

/// A PostgreSQL 15 cluster of the test's own (Debian's binaries, run as the `postgres` user,
/// since initdb refuses root), on a free port, with extra server settings; stopped and removed
/// when dropped. For what the shared cluster must not be changed for (preloaded libraries).
pub struct PrivateCluster {
    pub port: u16,
    dir: PathBuf,
}

impl PrivateCluster {
    pub fn start(settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = Path::new("/usr/lib/postgresql/15/bin");
        let dir = std::env::temp_dir().join(format!("careplane-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let as_postgres = |args: &[&str]| -> anyhow::Result<()> {
            let status = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .stdout(Stdio::null())
                .status()
                .context("runuser")?;
            anyhow::ensure!(status.success(), "{args:?} failed: {status}");
            Ok(())
        };
        let status = std::process::Command::new("chown").arg("postgres:").arg(&dir).status()?;
        anyhow::ensure!(status.success(), "chown {}", dir.display());
        let data = dir.join("data");
        let data_s = data.to_str().context("utf-8 path")?.to_owned();
        as_postgres(&[bin.join("initdb").to_str().unwrap(), "-D", &data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8"])?;
        let port = free_port();
        let mut opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.display());
        for (k, v) in settings {
            opts.push_str(&format!(" -c {k}={v}"));
        }
        let log = dir.join("server.log");
        as_postgres(&[bin.join("pg_ctl").to_str().unwrap(), "-D", &data_s, "-l", log.to_str().unwrap(), "-w", "-o", &opts, "start"])?;
        Ok(PrivateCluster { port, dir })
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D"])
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A small ledger, as the owner: a clearing account, a wallet that may not be overdrawn
/// (`debits_must_not_exceed_credits`) and clinic revenue, all in `currency`.
pub struct LedgerFixture {
    pub clearing: uuid::Uuid,
    pub wallet: uuid::Uuid,
    pub revenue: uuid::Uuid,
    pub currency: &'static str,
}

impl LedgerFixture {
    pub async fn create(conn: &mut PgConnection, currency: &'static str) -> anyhow::Result<Self> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "insert into public.ledger_accounts (kind, currency, flags) values
               ('payment_clearing', $1, 'none'), ('refunds', $1, 'debits_must_not_exceed_credits'), ('clinic_revenue', $1, 'none')
             returning id",
        )
        .bind(currency)
        .fetch_all(&mut *conn)
        .await?;
        Ok(LedgerFixture { clearing: ids[0], wallet: ids[1], revenue: ids[2], currency })
    }

    /// The two legs of a transfer of `amount` minor units from one account to another.
    pub fn legs(&self, from: uuid::Uuid, to: uuid::Uuid, amount: i64) -> serde_json::Value {
        serde_json::json!([
            {"account_id": from, "direction": "debit", "amount": amount, "currency": self.currency},
            {"account_id": to, "direction": "credit", "amount": amount, "currency": self.currency},
        ])
    }
}
