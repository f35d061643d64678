//! The SQLite dialect of the store ([`super::sql::SqlStore`]): one file (created if missing),
//! WAL mode, and every write transaction started with `BEGIN IMMEDIATE`, so writers queue on the
//! file lock (with a busy timeout) instead of failing half-way; the file lock is also why it
//! needs no row or key locks. Fit for one replica; several processes on one file are safe but
//! serialised. It must not be used by replicas on different machines (use PostgreSQL), and holds
//! no query of the store: only how to open the file and what SQLite spells differently.

use super::sql::{begin, Dialect};
use super::{migrator, query_error, EmbeddedMigration, StoreError};
use futures_util::future::BoxFuture;
use sqlx::migrate::MigrateError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Connection as _, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "clicks",
        sql: include_str!("../../migrations/sqlite/0002_clicks.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "incidents",
        sql: include_str!("../../migrations/sqlite/0003_incidents.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "feedback",
        sql: include_str!("../../migrations/sqlite/0004_feedback.sql"),
    },
    EmbeddedMigration {
        version: 5,
        description: "silences",
        sql: include_str!("../../migrations/sqlite/0005_silences.sql"),
    },
    EmbeddedMigration {
        version: 6,
        description: "report",
        sql: include_str!("../../migrations/sqlite/0006_report.sql"),
    },
    EmbeddedMigration {
        version: 7,
        description: "feedback forms",
        sql: include_str!("../../migrations/sqlite/0007_feedback_forms.sql"),
    },
    EmbeddedMigration {
        version: 8,
        description: "storms",
        sql: include_str!("../../migrations/sqlite/0008_storms.sql"),
    },
    EmbeddedMigration {
        version: 9,
        description: "storm lifecycle",
        sql: include_str!("../../migrations/sqlite/0009_storm_lifecycle.sql"),
    },
    EmbeddedMigration {
        version: 10,
        description: "storm reason text",
        sql: include_str!("../../migrations/sqlite/0010_storm_reason_text.sql"),
    },
];

/// How long a writer waits for the file lock before the statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// The SQLite dialect.
pub(super) enum SqliteDialect {}

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    const NAME: &'static str = "SqliteStore";
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const KEY_LOCK_SQL: Option<&'static str> = None;
    const LOCK_FOR_UPDATE: &'static str = "";
    const LOCK_FOR_SHARE: &'static str = "";
    const LOCK_SKIP_LOCKED: &'static str = "";
    const JSON_PARAM: &'static str = "";

    fn connect(url: &str, target: String) -> BoxFuture<'_, Result<SqlitePool, StoreError>> {
        Box::pin(connect(url, target))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Opens (creating if missing) the file named by `url` and applies pending migrations.
async fn connect(url: &str, target: String) -> Result<SqlitePool, StoreError> {
    let open_error = |source| StoreError::Open {
        target: target.clone(),
        source,
    };
    let options = SqliteConnectOptions::from_str(url.trim())
        .map_err(open_error)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    // An in-memory database lives as long as its one connection: keep exactly one, forever.
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let pool_options = if memory {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        // SQLite rolls a transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR,
        // SQLITE_NOMEM). sqlx's rollback of that transaction then fails ("no transaction is
        // active") and sqlx still counts the connection as inside a transaction, so every
        // later `BEGIN` on it fails: one full disk would poison the pool for good. A
        // connection sqlx still believes in a transaction once its queued rollback ran
        // (the ping waits for it) is closed instead of going back to the pool.
        SqlitePoolOptions::new()
            .max_connections(4)
            .after_release(|conn, _| {
                Box::pin(async move {
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
    };
    let pool_options = pool_options.acquire_timeout(Duration::from_secs(30));
    // Two processes creating the same new file race to switch it to WAL, and SQLite can
    // answer that switch with SQLITE_BUSY without waiting: retry a few times.
    let mut attempt = 0;
    let pool = loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => break pool,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("5") && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(not_writable(&options, &target).unwrap_or(open_error(e))),
        }
    };

    let migrations = migrator(MIGRATIONS).await;
    let migrate_error = |source| StoreError::Migrate {
        target: target.clone(),
        source,
    };
    let migrations = migrations.map_err(migrate_error)?;
    migrate(&pool, &migrations).await.map_err(migrate_error)?;
    // SQLite opens a file it may not write read-only, without a word, and every write would
    // then fail: write once (rolled back) under the write lock, so that such a store stops the
    // bot at start, not at its first check. Only once that failed, and this store's connections
    // are closed, is the file itself opened to tell why (see `not_writable`).
    if !memory {
        if let Err(e) = write_once(&pool).await {
            pool.close().await;
            return Err(match e {
                StoreError::Query { source, .. } => {
                    not_writable(&options, &target).unwrap_or_else(|| open_error(source))
                }
                other => other,
            });
        }
    }
    Ok(pool)
}

/// Takes the write lock and writes (the header's `user_version`), then rolls back: fails when
/// SQLite opened the file read-only (`BEGIN IMMEDIATE` alone succeeds there) or cannot lock it.
async fn write_once(pool: &SqlitePool) -> Result<(), StoreError> {
    const OP: &str = "open";
    let mut tx = begin(pool, SqliteDialect::BEGIN_WRITE, OP).await?;
    sqlx::query("PRAGMA user_version = 0")
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
    tx.rollback().await.map_err(query_error(OP))
}

/// When the database file exists but cannot be opened for writing (a read-only volume, or a
/// read-only file for a user who is not root), the error saying so; `None` otherwise.
///
/// It opens the file and closes it, and closing any descriptor of a file drops every POSIX lock
/// this process holds on it, SQLite's included. An open connection then no longer holds the
/// shared lock that tells other processes the database is in use: the next process to close its
/// last connection gets the exclusive lock, checkpoints and deletes `-wal` and `-shm`, and this
/// process goes on committing into the deleted WAL, seen by no other process until it closes.
/// So it is called only on failure, when no connection of this store is open.
fn not_writable(options: &SqliteConnectOptions, target: &str) -> Option<StoreError> {
    let file = options.get_filename();
    if !file.is_file() {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .err()
        .map(|source| StoreError::ReadOnly {
            target: target.to_string(),
            source,
        })
}

/// Applies `migrations`. SQLite has no lock for sqlx's migrator to take, so two processes
/// opening one new file together may race: the loser's migration fails (its table exists) and is
/// rolled back; running the migrator again then finds the version applied and checks its checksum.
/// The winner may still be applying a later version, so the loser may lose once per version:
/// it tries once more than there are migrations (each lost race means the winner progressed).
async fn migrate(
    pool: &SqlitePool,
    migrations: &sqlx::migrate::Migrator,
) -> Result<(), MigrateError> {
    let first = match migrations.run(pool).await {
        Ok(()) => return Ok(()),
        Err(first) => first,
    };
    for _ in 0..migrations.iter().count() {
        if migrations.run(pool).await.is_ok() {
            return Ok(());
        }
    }
    Err(first)
}
