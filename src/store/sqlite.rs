//! The SQLite backend of [`Store`]: one file (created if missing), WAL mode, and every write
//! transaction started with `BEGIN IMMEDIATE`, so writers queue on the file lock (with a busy
//! timeout) instead of failing half-way. Fit for one replica; several processes on one file are
//! safe but serialised. It must not be used by replicas on different machines (use PostgreSQL).

use super::{
    audit_from_row, check_audit_detail, click_methods, duration_ms, finished_from_row,
    in_flight_from_row, json_text, migrator, new_page_claim, page_from_row, page_row_vanished,
    query_error, redact_url, shown_result_sql, waiter_from_row, AuditEntry, CheckId, CheckKey,
    Claim, Clock, Cols, EmbeddedMigration, FinishOutcome, FinishedCheck, InFlight, PageClaim,
    Requester, Store, StoreError, Waiter, CLAIM_PAGE_ATTEMPTS, CLAIM_PAGE_SQL, EVENT_KEY_RETENTION,
    PAGE_FAILED_SQL, PAGE_SENT_SQL, PAGE_SQL, RECORD_SHOWN_SQL,
};
use crate::domain::LocationId;
use chrono::{DateTime, Utc};
use sqlx::migrate::MigrateError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection, SqlitePool};
use std::fmt;
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
];

const IN_FLIGHT_COLUMNS: &str = "id, environment, location, stage, job, owner, lease_expires_at, \
     started_at, requested_by_user, requested_by_channel, requested_by_source";
const FINISHED_COLUMNS: &str =
    "id, environment, location, started_at, finished_at, verdict, report, build_url";

/// How long a writer waits for the file lock before the statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// The SQLite store.
pub(super) struct SqliteStore {
    pool: SqlitePool,
    clock: Clock,
    target: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    click_methods!();

    /// Opens (creating if missing) the file named by `url` and applies pending migrations.
    pub(super) async fn open(url: &str, clock: Clock) -> Result<Self, StoreError> {
        let target = redact_url(url);
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
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("5") && attempt < 5 =>
                {
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
        // then fail: check that the file opens for writing, and take the write lock once (and
        // give it back), so that such a store stops the bot at start, not at its first check.
        if !memory {
            if let Some(e) = not_writable(&options, &target) {
                pool.close().await;
                return Err(e);
            }
            begin(&pool, Some("BEGIN IMMEDIATE"), "open")
                .await
                .map_err(|e| match e {
                    StoreError::Query { source, .. } => {
                        not_writable(&options, &target).unwrap_or_else(|| open_error(source))
                    }
                    other => other,
                })?
                .rollback()
                .await
                .map_err(open_error)?;
        }

        Ok(SqliteStore {
            pool,
            clock,
            target,
        })
    }

    async fn write_tx(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        begin(&self.pool, Some("BEGIN IMMEDIATE"), op).await
    }
}

/// When the database file exists but cannot be opened for writing (a read-only volume, or a
/// read-only file for a user who is not root), the error saying so; `None` otherwise.
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

/// Begins a transaction (with `statement`, else a plain `BEGIN`), safe against the caller being
/// cancelled. sqlx 0.8's SQLite `begin` has await points after its worker ran `BEGIN`: a caller
/// dropped there (a task aborted on shutdown) leaves the pooled connection inside a transaction
/// no `Transaction` will ever roll back — for `BEGIN IMMEDIATE`, holding the file's write lock,
/// so every later writer waits out the busy timeout and fails. Begun in a task of its own, the
/// begin always completes; if the caller is gone, the `Transaction` is dropped and rolls back.
async fn begin(
    pool: &SqlitePool,
    statement: Option<&'static str>,
    op: &'static str,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    });
    match begun.await {
        Ok(tx) => tx.map_err(query_error(op)),
        Err(join) => Err(StoreError::Query {
            op,
            source: sqlx::Error::Protocol(format!("beginning the transaction failed: {join}")),
        }),
    }
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

async fn load_waiters(
    conn: &mut SqliteConnection,
    check_id: CheckId,
    op: &'static str,
) -> Result<Vec<Waiter>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel, message_ts, thread_ts, user_id FROM waiters WHERE check_id = $1 ORDER BY id",
    )
    .bind(check_id.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(query_error(op))?;
    rows.iter().map(waiter_from_row).collect()
}

async fn load_in_flight(
    conn: &mut SqliteConnection,
    check_id: CheckId,
    op: &'static str,
) -> Result<Option<InFlight>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {IN_FLIGHT_COLUMNS} FROM checks WHERE id = $1 AND state = 'running'"
    ))
    .bind(check_id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_error(op))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let mut in_flight = in_flight_from_row(&row)?;
            in_flight.waiters = load_waiters(conn, check_id, op).await?;
            Ok(Some(in_flight))
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        super::ping_pool(&self.pool).await
    }

    async fn claim_check(
        &self,
        key: &CheckKey,
        owner: &str,
        lease: Duration,
        ttl: Duration,
        requested_by: &Requester,
    ) -> Result<Claim, StoreError> {
        const OP: &str = "claim_check";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        let running = sqlx::query(
            "SELECT id, owner, lease_expires_at FROM checks \
             WHERE environment = $1 AND location = $2 AND state = 'running'",
        )
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        if let Some(row) = running {
            let id = CheckId(row.int("id")?);
            let holder = row.text("owner")?;
            let expires = row.int("lease_expires_at")?;
            if expires > now || holder == owner {
                tx.commit().await.map_err(query_error(OP))?;
                return Ok(Claim::Joined(id));
            }
            sqlx::query("UPDATE checks SET owner = $1, lease_expires_at = $2 WHERE id = $3")
                .bind(owner)
                .bind(now.saturating_add(duration_ms(lease)))
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(query_error(OP))?;
            let in_flight = load_in_flight(&mut tx, id, OP).await?;
            tx.commit().await.map_err(query_error(OP))?;
            return match in_flight {
                Some(f) => Ok(Claim::TakenOver(Box::new(f))),
                None => Ok(Claim::Joined(id)),
            };
        }

        let fresh = sqlx::query(&format!(
            "SELECT {FINISHED_COLUMNS} FROM checks \
             WHERE environment = $1 AND location = $2 AND state = 'finished' AND finished_at > $3 \
             AND {} ORDER BY finished_at DESC, id DESC LIMIT 1",
            super::reusable_verdict_sql()
        ))
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .bind(now.saturating_sub(duration_ms(ttl)))
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        if let Some(row) = fresh {
            let finished = finished_from_row(&row)?;
            tx.commit().await.map_err(query_error(OP))?;
            return Ok(Claim::Fresh(Box::new(finished)));
        }

        let id: i64 = sqlx::query_scalar(
            "INSERT INTO checks (environment, location, state, stage, owner, lease_expires_at, \
             started_at, requested_by_user, requested_by_channel, requested_by_source) \
             VALUES ($1, $2, 'running', 'started', $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .bind(owner)
        .bind(now.saturating_add(duration_ms(lease)))
        .bind(now)
        .bind(requested_by.user.as_deref())
        .bind(requested_by.channel.as_deref())
        .bind(requested_by.source.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(Claim::Started(CheckId(id)))
    }

    async fn add_waiter(&self, check_id: CheckId, waiter: &Waiter) -> Result<bool, StoreError> {
        const OP: &str = "add_waiter";
        let mut tx = self.write_tx(OP).await?;
        let running: Option<i64> =
            sqlx::query_scalar("SELECT id FROM checks WHERE id = $1 AND state = 'running'")
                .bind(check_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(OP))?;
        if running.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO waiters (check_id, channel, message_ts, thread_ts, user_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (check_id, channel, message_ts) DO NOTHING",
        )
        .bind(check_id.0)
        .bind(&waiter.channel)
        .bind(&waiter.message_ts)
        .bind(waiter.thread_ts.as_deref())
        .bind(waiter.user.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(true)
    }

    async fn waiters(&self, check_id: CheckId) -> Result<Vec<Waiter>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(query_error("waiters"))?;
        load_waiters(&mut conn, check_id, "waiters").await
    }

    async fn set_stage(
        &self,
        check_id: CheckId,
        owner: &str,
        stage: &str,
        job: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE checks SET stage = $1, job = COALESCE($2, job) \
             WHERE id = $3 AND owner = $4 AND state = 'running'",
        )
        .bind(stage)
        .bind(job.map(json_text))
        .bind(check_id.0)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(query_error("set_stage"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_lease(
        &self,
        check_id: CheckId,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let expires = self.clock.now_ms().saturating_add(duration_ms(lease));
        let done = sqlx::query(
            "UPDATE checks SET lease_expires_at = $1 \
             WHERE id = $2 AND owner = $3 AND state = 'running'",
        )
        .bind(expires)
        .bind(check_id.0)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(query_error("renew_lease"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_check(
        &self,
        check_id: CheckId,
        owner: &str,
        verdict: &str,
        report: &serde_json::Value,
        build_url: Option<&str>,
    ) -> Result<FinishOutcome, StoreError> {
        const OP: &str = "finish_check";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        let row = sqlx::query(
            "UPDATE checks SET state = 'finished', finished_at = $1, lease_expires_at = $1, \
             verdict = $2, report = $3, build_url = $4 \
             WHERE id = $5 AND owner = $6 AND state = 'running' \
             RETURNING environment, location, requested_by_user, requested_by_channel, \
             requested_by_source",
        )
        .bind(now)
        .bind(verdict)
        .bind(json_text(report))
        .bind(build_url)
        .bind(check_id.0)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let Some(row) = row else {
            return Ok(FinishOutcome::LeaseLost);
        };
        let get = |col: &'static str| row.opt_text(col);
        sqlx::query(
            "INSERT INTO audit (at, kind, actor, channel, location, environment, verdict, target, \
             link, detail, check_id) VALUES ($1, 'check', $2, $3, $4, $5, $6, NULL, $7, $8, $9)",
        )
        .bind(now)
        .bind(get("requested_by_user")?)
        .bind(get("requested_by_channel")?)
        .bind(get("location")?)
        .bind(get("environment")?)
        .bind(verdict)
        .bind(build_url)
        .bind(get("requested_by_source")?.map(|s| check_audit_detail(&s)))
        .bind(check_id.0)
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let waiters = load_waiters(&mut tx, check_id, OP).await?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(FinishOutcome::Recorded { waiters })
    }

    async fn finished(&self, check_id: CheckId) -> Result<Option<FinishedCheck>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {FINISHED_COLUMNS} FROM checks WHERE id = $1 AND state = 'finished'"
        ))
        .bind(check_id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("finished"))?;
        row.as_ref().map(finished_from_row).transpose()
    }

    async fn record_shown(&self, check_id: CheckId, message: &Waiter) -> Result<bool, StoreError> {
        self.record_shown_in(check_id, message).await
    }

    async fn shown_result(
        &self,
        channel: &str,
        message_ts: &str,
    ) -> Result<Option<FinishedCheck>, StoreError> {
        self.shown_result_in(channel, message_ts).await
    }

    async fn claim_page(
        &self,
        check_id: CheckId,
        key: &CheckKey,
        target: &str,
        user: &str,
        stale: Duration,
    ) -> Result<PageClaim, StoreError> {
        self.claim_page_in(check_id, key, target, user, stale).await
    }

    async fn page_sent(
        &self,
        check_id: CheckId,
        claim: &str,
        link: &str,
    ) -> Result<bool, StoreError> {
        self.page_sent_in(check_id, claim, link).await
    }

    async fn page_failed(&self, check_id: CheckId, claim: &str) -> Result<bool, StoreError> {
        self.page_failed_in(check_id, claim).await
    }

    async fn latest_finished(&self, key: &CheckKey) -> Result<Option<FinishedCheck>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {FINISHED_COLUMNS} FROM checks WHERE environment = $1 AND location = $2 \
             AND state = 'finished' ORDER BY finished_at DESC, id DESC LIMIT 1"
        ))
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("latest_finished"))?;
        row.as_ref().map(finished_from_row).transpose()
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE checks SET lease_expires_at = 0 WHERE owner = $1 AND state = 'running'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(query_error("release_leases"))?;
        Ok(done.rows_affected())
    }

    async fn in_flight(&self) -> Result<Vec<InFlight>, StoreError> {
        const OP: &str = "in_flight";
        let mut tx = begin(&self.pool, None, OP).await?;
        let rows = sqlx::query(&format!(
            "SELECT {IN_FLIGHT_COLUMNS} FROM checks WHERE state = 'running' ORDER BY started_at, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut in_flight = in_flight_from_row(row)?;
            in_flight.waiters = load_waiters(&mut tx, in_flight.check_id, OP).await?;
            out.push(in_flight);
        }
        tx.commit().await.map_err(query_error(OP))?;
        Ok(out)
    }

    async fn take_over_expired(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<InFlight>, StoreError> {
        const OP: &str = "take_over_expired";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE checks SET owner = $1, lease_expires_at = $2 \
             WHERE state = 'running' AND lease_expires_at <= $3 AND owner <> $1 RETURNING id",
        )
        .bind(owner)
        .bind(now.saturating_add(duration_ms(lease)))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(in_flight) = load_in_flight(&mut tx, CheckId(id), OP).await? {
                out.push(in_flight);
            }
        }
        tx.commit().await.map_err(query_error(OP))?;
        out.sort_by_key(|f| (f.started_at, f.check_id));
        Ok(out)
    }

    async fn first_seen(&self, event_key: &str) -> Result<bool, StoreError> {
        const OP: &str = "first_seen";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        sqlx::query("DELETE FROM seen_events WHERE seen_at < $1")
            .bind(now.saturating_sub(duration_ms(EVENT_KEY_RETENTION)))
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
        let done = sqlx::query(
            "INSERT INTO seen_events (event_key, seen_at) VALUES ($1, $2) \
             ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(event_key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, kind, actor, channel, location, environment, verdict, target, \
             link, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.at.timestamp_millis())
        .bind(entry.kind.as_str())
        .bind(entry.actor.as_deref())
        .bind(entry.channel.as_deref())
        .bind(entry.location.as_str())
        .bind(entry.environment.as_str())
        .bind(entry.verdict.as_deref())
        .bind(entry.target.as_deref())
        .bind(entry.link.as_deref())
        .bind(entry.detail.as_deref())
        .execute(&self.pool)
        .await
        .map_err(query_error("append_audit"))?;
        Ok(())
    }

    async fn audit(
        &self,
        since: Option<DateTime<Utc>>,
        location: Option<&LocationId>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, channel, location, environment, verdict, target, link, detail \
             FROM audit WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR location = $2) \
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(since.map(|t| t.timestamp_millis()))
        .bind(location.map(LocationId::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
