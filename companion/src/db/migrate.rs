//! Applying `migrations/*.sql` the way the Supabase CLI does, so that a database set up here
//! can later be managed by `supabase db push` without re-running anything.
//!
//! - Files are named `<version>_<name>.sql` (version: digits, e.g. `20261126000000`) and applied
//!   in name order, each once, each in its own transaction together with its row in
//!   `supabase_migrations.schema_migrations(version, statements, name)`.
//! - A failing migration rolls back whole; the run stops there, naming the file, the line and
//!   the Postgres error. Later files are not attempted.
//! - Concurrent runners serialise on an advisory lock.
//! - Seeds are recorded in `supabase_migrations.seed_files(path, hash)` and re-run only when
//!   their content changes.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnection, PgDatabaseError, PgErrorPosition};
use sqlx::{Connection, Executor};

use super::statements;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: not a migration file name; expected <digits>_<name>.sql, e.g. 20261126000000_appointments.sql")]
    BadName(PathBuf),
    #[error("{0} and {1} have the same version")]
    DuplicateVersion(PathBuf, PathBuf),
    #[error("{path}: {error}")]
    Failed { path: PathBuf, error: Box<SqlError> },
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// A Postgres error with where in the file it happened.
#[derive(Debug)]
pub struct SqlError {
    pub code: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub line: Option<usize>,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "ERROR")?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\n  DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  HINT: {h}")?;
        }
        Ok(())
    }
}

impl SqlError {
    fn from_sqlx(err: sqlx::Error, sql: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
                Some(pg) => SqlError {
                    code: Some(pg.code().to_owned()),
                    message: pg.message().to_owned(),
                    detail: pg.detail().map(str::to_owned),
                    hint: pg.hint().map(str::to_owned),
                    line: match pg.position() {
                        Some(PgErrorPosition::Original(pos)) => Some(line_of(sql, pos)),
                        _ => None,
                    },
                },
                None => SqlError::plain(db.message().to_owned()),
            },
            other => SqlError::plain(other.to_string()),
        }
    }

    fn plain(message: String) -> Self {
        SqlError { code: None, message, detail: None, hint: None, line: None }
    }
}

/// 1-based line of a 1-based character position (Postgres reports characters, not bytes).
fn line_of(sql: &str, position: usize) -> usize {
    1 + sql.chars().take(position.saturating_sub(1)).filter(|&c| c == '\n').count()
}

/// Reads `dir/*.sql`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let io = |source| MigrateError::Io { path: dir.to_owned(), source };
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let Some((version, name)) = stem.split_once('_') else {
            return Err(MigrateError::BadName(path));
        };
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
            return Err(MigrateError::BadName(path));
        }
        let sql = std::fs::read_to_string(&path).map_err(|source| MigrateError::Io { path: path.clone(), source })?;
        migrations.push(Migration { version: version.to_owned(), name: name.to_owned(), path, sql });
    }
    // Name order, as the Supabase CLI applies them (its versions are fixed-width timestamps).
    migrations.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrateError::DuplicateVersion(pair[0].path.clone(), pair[1].path.clone()));
        }
    }
    Ok(migrations)
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub applied: Vec<String>,
    pub already_applied: usize,
    /// Versions recorded in the database with no file here (applied from another checkout).
    pub unknown_in_database: Vec<String>,
}

const HISTORY_DDL: &str = "
    create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
    alter table supabase_migrations.schema_migrations add column if not exists statements text[];
    alter table supabase_migrations.schema_migrations add column if not exists name text;
    create table if not exists supabase_migrations.seed_files (path text not null primary key, hash text not null);
";

/// A lock id private to careplane's runner ("careplane" as bytes, truncated to 8).
const LOCK_ID: i64 = 0x6361_7265_706c_616e;

/// Applies pending migrations on `conn`.
pub async fn apply(conn: &mut PgConnection, migrations: &[Migration]) -> Result<Report, MigrateError> {
    sqlx::query("select pg_catalog.pg_advisory_lock($1)").bind(LOCK_ID).execute(&mut *conn).await?;
    let result = apply_locked(conn, migrations).await;
    sqlx::query("select pg_catalog.pg_advisory_unlock($1)").bind(LOCK_ID).execute(&mut *conn).await?;
    result
}

async fn apply_locked(conn: &mut PgConnection, migrations: &[Migration]) -> Result<Report, MigrateError> {
    conn.execute(HISTORY_DDL).await?;
    let applied: Vec<String> =
        sqlx::query_scalar("select version from supabase_migrations.schema_migrations").fetch_all(&mut *conn).await?;
    let mut report = Report {
        unknown_in_database: applied.iter().filter(|v| !migrations.iter().any(|m| &m.version == *v)).cloned().collect(),
        ..Report::default()
    };
    for m in migrations {
        if applied.contains(&m.version) {
            report.already_applied += 1;
            continue;
        }
        let mut tx = conn.begin().await?;
        if let Err(e) = sqlx::raw_sql(&m.sql).execute(&mut *tx).await {
            let error = SqlError::from_sqlx(e, &m.sql);
            drop(tx); // rolls back
            return Err(MigrateError::Failed { path: m.path.clone(), error: Box::new(error) });
        }
        sqlx::query("insert into supabase_migrations.schema_migrations (version, statements, name) values ($1, $2, $3)")
            .bind(&m.version)
            .bind(statements::split(&m.sql))
            .bind(&m.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        report.applied.push(format!("{}_{}", m.version, m.name));
    }
    Ok(report)
}

/// Runs a SQL file that is idempotent by construction (the Supabase compatibility layer) in
/// one transaction.
pub async fn run_file(conn: &mut PgConnection, path: &Path) -> Result<(), MigrateError> {
    let sql = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.to_owned(), source })?;
    let mut tx = conn.begin().await?;
    if let Err(e) = sqlx::raw_sql(&sql).execute(&mut *tx).await {
        return Err(MigrateError::Failed { path: path.to_owned(), error: Box::new(SqlError::from_sqlx(e, &sql)) });
    }
    tx.commit().await?;
    Ok(())
}

/// Loads a seed file unless the same content was loaded before. Returns whether it ran.
/// `key` is the path recorded in `seed_files` (relative to the Supabase project, as the CLI
/// records it).
pub async fn seed(conn: &mut PgConnection, path: &Path, key: &str) -> Result<bool, MigrateError> {
    let sql = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.to_owned(), source })?;
    let hash = hex::encode(Sha256::digest(sql.as_bytes()));
    conn.execute(HISTORY_DDL).await?;
    let mut tx = conn.begin().await?;
    let recorded: Option<String> = sqlx::query_scalar("select hash from supabase_migrations.seed_files where path = $1 for update")
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
    if recorded.as_deref() == Some(hash.as_str()) {
        return Ok(false);
    }
    if let Err(e) = sqlx::raw_sql(&sql).execute(&mut *tx).await {
        return Err(MigrateError::Failed { path: path.to_owned(), error: Box::new(SqlError::from_sqlx(e, &sql)) });
    }
    sqlx::query(
        "insert into supabase_migrations.seed_files (path, hash) values ($1, $2)
         on conflict (path) do update set hash = excluded.hash",
    )
    .bind(key)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_newlines_before_a_character_position() {
        let sql = "select 1;\nselect é;\nselect bogus;";
        assert_eq!(line_of(sql, 1), 1);
        assert_eq!(line_of(sql, 11), 2);
        assert_eq!(line_of(sql, sql.chars().count()), 3);
    }

    #[test]
    fn rejects_files_that_are_not_named_like_migrations() {
        let dir = std::env::temp_dir().join(format!("careplane-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("20261201000000_b.sql"), "").unwrap();
        std::fs::write(dir.join("20261126000000_a.sql"), "").unwrap();
        std::fs::write(dir.join("README.md"), "").unwrap();
        let loaded = load_dir(&dir).unwrap();
        assert_eq!(loaded.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(), ["20261126000000", "20261201000000"]);
        std::fs::write(dir.join("schema.sql"), "").unwrap();
        assert!(matches!(load_dir(&dir), Err(MigrateError::BadName(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
