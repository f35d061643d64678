//! The PostgreSQL dialect of the store ([`super::sql::SqlStore`]), for several replicas sharing
//! the work (PostgreSQL 11+).
//!
//! A claim runs in one transaction under `pg_advisory_xact_lock` on its (environment, location)
//! key, so concurrent claims from any replica queue for a few milliseconds and exactly one starts
//! the check; the unique partial index on running checks backs this up. Rows being finished or
//! waited on are locked (`FOR UPDATE` / `FOR SHARE`), so a waiter is either recorded before the
//! verdict is read or refused; replicas taking over expired checks at once skip each other's
//! (`SKIP LOCKED`). Tables live in the first schema of the connection's `search_path` (tests use
//! one schema each). It holds no query of the store, and must not keep the URL.

use super::sql::Dialect;
use super::{migrator, EmbeddedMigration, StoreError};
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "clicks",
        sql: include_str!("../../migrations/postgres/0002_clicks.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "incidents",
        sql: include_str!("../../migrations/postgres/0003_incidents.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "feedback",
        sql: include_str!("../../migrations/postgres/0004_feedback.sql"),
    },
    EmbeddedMigration {
        version: 5,
        description: "silences",
        sql: include_str!("../../migrations/postgres/0005_silences.sql"),
    },
    EmbeddedMigration {
        version: 6,
        description: "report",
        sql: include_str!("../../migrations/postgres/0006_report.sql"),
    },
    EmbeddedMigration {
        version: 7,
        description: "feedback forms",
        sql: include_str!("../../migrations/postgres/0007_feedback_forms.sql"),
    },
    EmbeddedMigration {
        version: 8,
        description: "storms",
        sql: include_str!("../../migrations/postgres/0008_storms.sql"),
    },
    EmbeddedMigration {
        version: 9,
        description: "storm lifecycle",
        sql: include_str!("../../migrations/postgres/0009_storm_lifecycle.sql"),
    },
    EmbeddedMigration {
        version: 10,
        description: "storm reason text",
        sql: include_str!("../../migrations/postgres/0010_storm_reason_text.sql"),
    },
];

/// The PostgreSQL dialect.
pub(super) enum PgDialect {}

impl Dialect for PgDialect {
    type Db = Postgres;
    const NAME: &'static str = "PgStore";
    const BEGIN_WRITE: Option<&'static str> = None;
    const KEY_LOCK_SQL: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
    const LOCK_FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCK_FOR_SHARE: &'static str = " FOR SHARE";
    const LOCK_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const JSON_PARAM: &'static str = "::jsonb";

    fn connect(url: &str, target: String) -> BoxFuture<'_, Result<PgPool, StoreError>> {
        Box::pin(connect(url, target))
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Connects to the database named by `url` and applies pending migrations (under sqlx's
/// advisory lock, so replicas starting together apply them once).
async fn connect(url: &str, target: String) -> Result<PgPool, StoreError> {
    let open_error = |source| StoreError::Open {
        target: target.clone(),
        source,
    };
    let options = PgConnectOptions::from_str(url.trim()).map_err(open_error)?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(open_error)?;
    let migrate_error = |source| StoreError::Migrate {
        target: target.clone(),
        source,
    };
    let migrations = migrator(MIGRATIONS).await.map_err(migrate_error)?;
    migrations.run(&pool).await.map_err(migrate_error)?;
    Ok(pool)
}
