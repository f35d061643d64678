//! The one implementation of [`Store`] over SQL, for both backends: every query and every row
//! mapping is written here once, generic over a [`Dialect`] that holds only what SQLite and
//! PostgreSQL really do differently (how to connect and migrate, how a write transaction begins,
//! row and key locks, the JSON cast). Queries use `$n` placeholders and `CAST(… AS …)`, which
//! both databases read the same way.
//!
//! What this module must NOT do: name a backend, or hold a per-backend copy of a query; what
//! differs goes behind [`Dialect`] (in `sqlite.rs` / `postgres.rs`). It must not keep the URL:
//! only its redacted form.

use super::storms::{storm_from_row, storm_location_from_row};
use super::{
    audit_from_row, check_audit_detail, duration_ms, feedback_form_from_row, feedback_from_row,
    finished_from_row, in_flight_from_row, incident_event_from_row, incident_from_row, json_text,
    location_from_row, new_page_claim, page_from_row, page_row_vanished, query_error,
    reusable_verdict_sql, silence_from_row, waiter_from_row, AuditEntry, CheckId, CheckKey, Claim,
    Clock, Cols, Feedback, FeedbackForm, FinishOutcome, FinishedCheck, Fired, InFlight, Incident,
    IncidentEvent, IncidentId, MessageRef, NewVote, PageClaim, Requester, SilenceRecord, Store,
    StoreError, Waiter, CLAIM_PAGE_ATTEMPTS, EVENT_KEY_RETENTION, FEEDBACK_FORM_RETENTION,
};
use super::{check_outcome_from_row, feedback_vote_from_row, ReportRows, ReportSlotClaim};
use super::{Storm, StormFired, StormFiring, StormId, StormLocation, StormMode, Whereabouts};
use crate::domain::{Environment, LocationId};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// What differs between the SQL backends; everything else is [`SqlStore`].
pub(super) trait Dialect: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;

    /// The store's name in `Debug` output.
    const NAME: &'static str;

    /// The statement that begins a write transaction (`None`: a plain `BEGIN`).
    const BEGIN_WRITE: Option<&'static str>;

    /// A statement, bound to a text key naming one (environment, location), that makes the
    /// claims of that key queue until the transaction ends; `None` when the write transaction
    /// already serialises every writer.
    const KEY_LOCK_SQL: Option<&'static str>;

    /// Appended to a `SELECT` that reads rows about to be changed (`FOR UPDATE`, or nothing).
    const LOCK_FOR_UPDATE: &'static str;

    /// Appended to a `SELECT` that must keep its rows unchanged until commit (`FOR SHARE`).
    const LOCK_FOR_SHARE: &'static str;

    /// Appended to the `SELECT` choosing expired checks to take over, so that replicas taking
    /// over at once split them instead of waiting on each other.
    const LOCK_SKIP_LOCKED: &'static str;

    /// Appended to a placeholder carrying JSON text for a JSON column (`::jsonb`, or nothing).
    const JSON_PARAM: &'static str;

    /// Connects to `url` and brings the schema up to date (`target` is the redacted URL).
    fn connect(url: &str, target: String) -> BoxFuture<'_, Result<Pool<Self::Db>, StoreError>>;

    /// How many rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

/// Columns of a running check, as [`in_flight_from_row`] reads them (JSON read back as text).
const IN_FLIGHT_COLUMNS: &str = "id, environment, location, stage, CAST(job AS TEXT) AS job, \
     owner, lease_expires_at, started_at, requested_by_user, requested_by_channel, \
     requested_by_source";

/// Columns of a finished check, as [`finished_from_row`] reads them (JSON read back as text).
const FINISHED_COLUMNS: &str = "id, environment, location, started_at, finished_at, verdict, \
     CAST(report AS TEXT) AS report, build_url";

/// Columns of an incident, as [`incident_from_row`] reads them.
const INCIDENT_COLUMNS: &str = "id, environment, location, state, alert_channel, alert_ts, \
     fired_at, check_id, diagnosis_channel, diagnosis_ts, verdict, diagnosed_at, repeat_count, \
     last_repeat_at, fixed_at, resolved_at, resolve_channel, resolve_ts, pagerduty_dedup_key, \
     github_repo, github_number";

/// Columns of an audit entry, as [`audit_from_row`] reads them.
const AUDIT_COLUMNS: &str =
    "at, kind, actor, channel, location, environment, verdict, target, link, detail";

/// Columns of a page, as [`page_from_row`] reads them.
const PAGE_COLUMNS: &str = "check_id, target, paged_by, claimed_at, paged_at, link";

/// Columns of a finished check as the report counts it ([`check_outcome_from_row`]).
const CHECK_OUTCOME_COLUMNS: &str = "id, environment, location, finished_at, verdict, build_url";
/// Columns of a silence, as [`silence_from_row`] reads them.
const SILENCE_COLUMNS: &str = "silence_id, environment, location, incident_id, created_by, \
     created_by_name, starts_at, ends_at, until_resolved, channel, thread_ts, message_ts, state, \
     expired_by, expired_at";

/// Columns of a feedback row, as [`feedback_from_row`] reads them.
const FEEDBACK_COLUMNS: &str = "channel, message_ts, user_id, user_name, check_id, incident_id, \
     environment, location, verdict, vote, actual_verdict, comment, created_at, updated_at";

/// Columns of a feedback form, as [`feedback_form_from_row`] reads them.
const FEEDBACK_FORM_COLUMNS: &str =
    "token, channel, message_ts, user_id, environment, location, view_id, created_at";

/// Columns of a storm, as `storms::storm_from_row` reads them.
const STORM_COLUMNS: &str = "id, environment, state, mode, epoch, declared_at, first_firing_at, \
     last_firing_at, message_channel, message_ts, iam_health, ended_at, pumped_by, pumped_at";

/// Columns (and tables) of a storm's locations, as `storms::storm_location_from_row` reads them.
const STORM_LOCATIONS_FROM: &str = "s.environment, l.location, l.fired_at, l.alert_channel, \
     l.alert_ts, l.datacenter, l.region, l.sample, l.checked, l.verdict, l.reason, \
     l.reason_text FROM storm_locations l JOIN storms s ON s.id = l.storm_id";

/// The store over one SQL backend.
pub(super) struct SqlStore<D: Dialect> {
    pool: Pool<D::Db>,
    clock: Clock,
    target: String,
    dialect: PhantomData<D>,
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(D::NAME)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Begins a transaction (with `statement`, else a plain `BEGIN`), safe against the caller being
/// cancelled. sqlx 0.8's `begin` has await points after the database ran `BEGIN`: a caller
/// dropped there (a task aborted on shutdown) leaves the pooled connection inside a transaction
/// no `Transaction` will ever roll back — for SQLite's `BEGIN IMMEDIATE`, holding the file's
/// write lock, so every later writer waits out the busy timeout and fails. Begun in a task of
/// its own, the begin always completes; if the caller is gone, the `Transaction` is dropped and
/// rolls back.
pub(super) async fn begin<DB: Database>(
    pool: &Pool<DB>,
    statement: Option<&'static str>,
    op: &'static str,
) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
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

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Cols,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    String: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
{
    /// Connects (see [`Dialect::connect`]) and keeps `clock` for every time it writes.
    pub(super) async fn open(url: &str, clock: Clock) -> Result<Self, StoreError> {
        let target = super::redact_url(url);
        let pool = D::connect(url, target.clone()).await?;
        Ok(SqlStore {
            pool,
            clock,
            target,
            dialect: PhantomData,
        })
    }

    async fn write_tx(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, D::Db>, StoreError> {
        begin(&self.pool, D::BEGIN_WRITE, op).await
    }

    /// Takes the dialect's per-key lock (`what`/environment/location) for the rest of `tx`, so
    /// writers of one key queue whichever replica they come from; nothing where the dialect's
    /// write transaction already serialises writers (SQLite).
    async fn lock_key(
        tx: &mut sqlx::Transaction<'static, D::Db>,
        what: &str,
        key: &CheckKey,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let name = format!("linkbot.{what}/{}/{}", key.environment, key.location);
        Self::lock_name(tx, name, op).await
    }

    /// The dialect's lock on `name` for the rest of `tx` (see [`Self::lock_key`]).
    async fn lock_name(
        tx: &mut sqlx::Transaction<'static, D::Db>,
        name: String,
        op: &'static str,
    ) -> Result<(), StoreError> {
        if let Some(lock) = D::KEY_LOCK_SQL {
            sqlx::query(lock)
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(query_error(op))?;
        }
        Ok(())
    }

    /// The locations of storm `id` (all, or only `location`), in firing order.
    async fn load_storm_locations(
        conn: &mut <D::Db as Database>::Connection,
        id: StormId,
        location: Option<&LocationId>,
        op: &'static str,
    ) -> Result<Vec<StormLocation>, StoreError> {
        let only = if location.is_some() {
            " AND l.location = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {STORM_LOCATIONS_FROM} WHERE l.storm_id = $1{only} \
             ORDER BY l.fired_at, l.location"
        );
        let mut query = sqlx::query(&sql).bind(id.0);
        if let Some(l) = location {
            query = query.bind(l.as_str());
        }
        let rows = query.fetch_all(&mut *conn).await.map_err(query_error(op))?;
        rows.iter().map(storm_location_from_row).collect()
    }

    async fn load_waiters(
        conn: &mut <D::Db as Database>::Connection,
        check_id: CheckId,
        op: &'static str,
    ) -> Result<Vec<Waiter>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, message_ts, thread_ts, user_id FROM waiters WHERE check_id = $1 \
             ORDER BY id",
        )
        .bind(check_id.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(op))?;
        rows.iter().map(waiter_from_row).collect()
    }

    async fn load_in_flight(
        conn: &mut <D::Db as Database>::Connection,
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
                in_flight.waiters = Self::load_waiters(conn, check_id, op).await?;
                Ok(Some(in_flight))
            }
        }
    }

    /// An `UPDATE`/`DELETE` outside a transaction; `true` when it changed exactly one row.
    async fn changed_one<'q>(
        &self,
        query: sqlx::query::Query<'q, D::Db, <D::Db as Database>::Arguments<'q>>,
        op: &'static str,
    ) -> Result<bool, StoreError> {
        let done = query.execute(&self.pool).await.map_err(query_error(op))?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// Records `message` against `check_id` if the check is in `state` (read with `lock`), in
    /// one write transaction; the same (channel, message_ts) twice is recorded once. `false`
    /// when the check is not in that state.
    async fn record_message(
        &self,
        check_id: CheckId,
        message: &Waiter,
        state: &'static str,
        lock: &'static str,
        op: &'static str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx(op).await?;
        let found: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM checks WHERE id = $1 AND state = '{state}'{lock}"
        ))
        .bind(check_id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(op))?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO waiters (check_id, channel, message_ts, thread_ts, user_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (check_id, channel, message_ts) DO NOTHING",
        )
        .bind(check_id.0)
        .bind(message.channel.as_str())
        .bind(message.message_ts.as_str())
        .bind(message.thread_ts.as_deref())
        .bind(message.user.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(query_error(op))?;
        tx.commit().await.map_err(query_error(op))?;
        Ok(true)
    }

    /// Appends a timeline event inside `conn`'s transaction.
    async fn insert_event(
        conn: &mut <D::Db as Database>::Connection,
        id: i64,
        at: i64,
        kind: &str,
        actor: Option<&str>,
        detail: Option<&str>,
        op: &'static str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO incident_events (incident_id, at, kind, actor, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(detail)
        .execute(&mut *conn)
        .await
        .map_err(query_error(op))?;
        Ok(())
    }

    /// Runs `sql` (an `UPDATE … RETURNING {INCIDENT_COLUMNS}` whose `$1` is the time now)
    /// with `binds` as `$2`, `$3`, … and, when it changed an incident, appends the event
    /// `kind` — in one write transaction.
    async fn update_incident(
        &self,
        sql: &str,
        binds: &[&str],
        event: (&str, Option<&str>, Option<&str>),
        op: &'static str,
    ) -> Result<Option<Incident>, StoreError> {
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(op).await?;
        let mut query = sqlx::query(sql).bind(now);
        for b in binds {
            query = query.bind(*b);
        }
        let row = query
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(op))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let incident = incident_from_row(&row)?;
        let (kind, actor, detail) = event;
        Self::insert_event(&mut tx, incident.id.0, now, kind, actor, detail, op).await?;
        tx.commit().await.map_err(query_error(op))?;
        Ok(Some(incident))
    }

    /// Every row `sql` returns with the period's bounds (unix ms) as `$1` and `$2`.
    async fn period_rows(
        conn: &mut <D::Db as Database>::Connection,
        sql: &str,
        (since, until): (i64, i64),
        op: &'static str,
    ) -> Result<Vec<<D::Db as Database>::Row>, StoreError> {
        sqlx::query(sql)
            .bind(since)
            .bind(until)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(op))
    }

    /// The first incident `sql` returns, with `binds` as `$1`, `$2`, ….
    async fn one_incident(
        &self,
        sql: &str,
        binds: &[&str],
        op: &'static str,
    ) -> Result<Option<Incident>, StoreError> {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error(op))?;
        row.as_ref().map(incident_from_row).transpose()
    }

    /// The silences `sql` returns, with `binds` as `$1`, `$2`, ….
    async fn silences_of(
        &self,
        sql: &str,
        binds: &[&str],
        op: &'static str,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(query_error(op))?;
        rows.iter().map(silence_from_row).collect()
    }

    /// The finished check of the first row `sql` returns, with `binds` as `$1`, `$2`, ….
    async fn one_finished(
        &self,
        sql: &str,
        binds: &[&str],
        op: &'static str,
    ) -> Result<Option<FinishedCheck>, StoreError> {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error(op))?;
        row.as_ref().map(finished_from_row).transpose()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Cols,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    String: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
{
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
        // Claims for one key queue here, whichever replica they come from.
        Self::lock_key(&mut tx, "check", key, OP).await?;
        let running = sqlx::query(&format!(
            "SELECT id, owner, lease_expires_at FROM checks \
             WHERE environment = $1 AND location = $2 AND state = 'running'{}",
            D::LOCK_FOR_UPDATE
        ))
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
            sqlx::query(
                "UPDATE checks SET owner = $1, lease_expires_at = $2 \
                 WHERE id = $3 AND state = 'running'",
            )
            .bind(owner)
            .bind(now.saturating_add(duration_ms(lease)))
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            let in_flight = Self::load_in_flight(&mut tx, id, OP).await?;
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
            reusable_verdict_sql()
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
        self.record_message(check_id, waiter, "running", D::LOCK_FOR_SHARE, "add_waiter")
            .await
    }

    async fn waiters(&self, check_id: CheckId) -> Result<Vec<Waiter>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(query_error("waiters"))?;
        Self::load_waiters(&mut conn, check_id, "waiters").await
    }

    async fn set_stage(
        &self,
        check_id: CheckId,
        owner: &str,
        stage: &str,
        job: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE checks SET stage = $1, job = COALESCE($2{}, job) \
             WHERE id = $3 AND owner = $4 AND state = 'running'",
            D::JSON_PARAM
        );
        let query = sqlx::query(&sql)
            .bind(stage)
            .bind(job.map(json_text))
            .bind(check_id.0)
            .bind(owner);
        self.changed_one(query, "set_stage").await
    }

    async fn renew_leases(
        &self,
        check_ids: &[CheckId],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<CheckId>, StoreError> {
        const OP: &str = "renew_leases";
        /// Ids per statement: far below SQLite's 32766 bound variables and PostgreSQL's 65535.
        const CHUNK: usize = 500;
        let expires = self.clock.now_ms().saturating_add(duration_ms(lease));
        let mut held = Vec::with_capacity(check_ids.len());
        for chunk in check_ids.chunks(CHUNK) {
            let ids: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE checks SET lease_expires_at = $1 \
                 WHERE owner = $2 AND state = 'running' AND id IN ({}) RETURNING id",
                ids.join(", ")
            );
            let mut query = sqlx::query_scalar::<_, i64>(&sql).bind(expires).bind(owner);
            for id in chunk {
                query = query.bind(id.0);
            }
            let renewed = query.fetch_all(&self.pool).await.map_err(query_error(OP))?;
            held.extend(renewed.into_iter().map(CheckId));
        }
        Ok(held)
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
        let row = sqlx::query(&format!(
            "UPDATE checks SET state = 'finished', finished_at = $1, lease_expires_at = $1, \
             verdict = $2, report = $3{}, build_url = $4 \
             WHERE id = $5 AND owner = $6 AND state = 'running' \
             RETURNING environment, location, requested_by_user, requested_by_channel, \
             requested_by_source",
            D::JSON_PARAM
        ))
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
        let waiters = Self::load_waiters(&mut tx, check_id, OP).await?;
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
        self.record_message(check_id, message, "finished", "", "record_shown")
            .await
    }

    async fn shown_result(
        &self,
        channel: &str,
        message_ts: &str,
    ) -> Result<Option<FinishedCheck>, StoreError> {
        let sql = format!(
            "SELECT {FINISHED_COLUMNS} FROM checks WHERE state = 'finished' AND id IN \
             (SELECT check_id FROM waiters WHERE channel = $1 AND message_ts = $2) \
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        );
        self.one_finished(&sql, &[channel, message_ts], "shown_result")
            .await
    }

    async fn claim_page(
        &self,
        check_id: CheckId,
        key: &CheckKey,
        target: &str,
        user: &str,
        stale: Duration,
    ) -> Result<PageClaim, StoreError> {
        const OP: &str = "claim_page";
        for _ in 0..CLAIM_PAGE_ATTEMPTS {
            let now = self.clock.now_ms();
            let claim = new_page_claim(now);
            let mut tx = self.write_tx(OP).await?;
            // Inserts the row, or takes over a claim that went stale unsent; returns the claim
            // only when the caller won.
            let won: Option<String> = sqlx::query_scalar(
                "INSERT INTO pages (check_id, environment, location, target, paged_by, \
                 claim, state, claimed_at) VALUES ($1, $2, $3, $4, $5, $6, 'paging', $7) \
                 ON CONFLICT (check_id) DO UPDATE SET environment = excluded.environment, \
                 location = excluded.location, target = excluded.target, \
                 paged_by = excluded.paged_by, claim = excluded.claim, state = 'paging', \
                 claimed_at = excluded.claimed_at, paged_at = NULL, link = NULL \
                 WHERE pages.state = 'paging' AND pages.claimed_at < $8 \
                 RETURNING claim",
            )
            .bind(check_id.0)
            .bind(key.environment.as_str())
            .bind(key.location.as_str())
            .bind(target)
            .bind(user)
            .bind(claim.as_str())
            .bind(now)
            .bind(now.saturating_sub(duration_ms(stale)))
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            if won.is_some() {
                tx.commit().await.map_err(query_error(OP))?;
                return Ok(PageClaim::Claimed { claim });
            }
            let row = sqlx::query(&format!(
                "SELECT {PAGE_COLUMNS} FROM pages WHERE check_id = $1"
            ))
            .bind(check_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            tx.commit().await.map_err(query_error(OP))?;
            if let Some(row) = row {
                return Ok(PageClaim::Taken(page_from_row(&row)?));
            }
        }
        Err(page_row_vanished(check_id))
    }

    async fn page_sent(
        &self,
        check_id: CheckId,
        claim: &str,
        link: &str,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE pages SET state = 'paged', paged_at = $1, link = $2 \
             WHERE check_id = $3 AND claim = $4 AND state = 'paging'",
        )
        .bind(self.clock.now_ms())
        .bind(link)
        .bind(check_id.0)
        .bind(claim);
        self.changed_one(query, "page_sent").await
    }

    async fn page_failed(&self, check_id: CheckId, claim: &str) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "DELETE FROM pages WHERE check_id = $1 AND claim = $2 AND state = 'paging'",
        )
        .bind(check_id.0)
        .bind(claim);
        self.changed_one(query, "page_failed").await
    }

    async fn latest_finished(&self, key: &CheckKey) -> Result<Option<FinishedCheck>, StoreError> {
        let sql = format!(
            "SELECT {FINISHED_COLUMNS} FROM checks WHERE environment = $1 AND location = $2 \
             AND state = 'finished' ORDER BY finished_at DESC, id DESC LIMIT 1"
        );
        let binds = [key.environment.as_str(), key.location.as_str()];
        self.one_finished(&sql, &binds, "latest_finished").await
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE checks SET lease_expires_at = 0 WHERE owner = $1 AND state = 'running'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(query_error("release_leases"))?;
        Ok(D::rows_affected(&done))
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
            in_flight.waiters = Self::load_waiters(&mut tx, in_flight.check_id, OP).await?;
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
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE checks SET owner = $1, lease_expires_at = $2 WHERE id IN (\
             SELECT id FROM checks WHERE state = 'running' AND lease_expires_at <= $3 \
             AND owner <> $1{}) RETURNING id",
            D::LOCK_SKIP_LOCKED
        ))
        .bind(owner)
        .bind(now.saturating_add(duration_ms(lease)))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(in_flight) = Self::load_in_flight(&mut tx, CheckId(id), OP).await? {
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
        Ok(D::rows_affected(&done) == 1)
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
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} \
             FROM audit WHERE (CAST($1 AS BIGINT) IS NULL OR at >= $1) \
             AND (CAST($2 AS TEXT) IS NULL OR location = $2) \
             ORDER BY at DESC, id DESC LIMIT $3"
        ))
        .bind(since.map(|t| t.timestamp_millis()))
        .bind(location.map(LocationId::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn fire_incident(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        fired_at: DateTime<Utc>,
    ) -> Result<Fired, StoreError> {
        const OP: &str = "fire_incident";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        Self::lock_key(&mut tx, "incident", key, OP).await?;
        let repeat = sqlx::query(&format!(
            "UPDATE incidents SET repeat_count = repeat_count + 1, last_repeat_at = $1 \
             WHERE environment = $2 AND location = $3 AND state = 'open' \
             RETURNING {INCIDENT_COLUMNS}"
        ))
        .bind(now)
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let fired = match repeat {
            Some(row) => {
                let incident = incident_from_row(&row)?;
                let detail = format!(
                    "×{} ({} {})",
                    incident.repeat_count, alert.channel, alert.ts
                );
                Self::insert_event(
                    &mut tx,
                    incident.id.0,
                    now,
                    "repeat",
                    None,
                    Some(&detail),
                    OP,
                )
                .await?;
                Fired::Repeat(incident)
            }
            None => {
                let row = sqlx::query(&format!(
                    "INSERT INTO incidents (environment, location, state, alert_channel, \
                     alert_ts, fired_at) VALUES ($1, $2, 'open', $3, $4, $5) \
                     RETURNING {INCIDENT_COLUMNS}"
                ))
                .bind(key.environment.as_str())
                .bind(key.location.as_str())
                .bind(alert.channel.as_str())
                .bind(alert.ts.as_str())
                .bind(fired_at.timestamp_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error(OP))?;
                let incident = incident_from_row(&row)?;
                let detail = format!("{} {}", alert.channel, alert.ts);
                Self::insert_event(
                    &mut tx,
                    incident.id.0,
                    fired_at.timestamp_millis(),
                    "fired",
                    None,
                    Some(&detail),
                    OP,
                )
                .await?;
                Fired::Opened(incident)
            }
        };
        tx.commit().await.map_err(query_error(OP))?;
        Ok(fired)
    }

    async fn open_incident(&self, key: &CheckKey) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE environment = $1 AND location = $2 AND state = 'open'"
        );
        let binds = [key.environment.as_str(), key.location.as_str()];
        self.one_incident(&sql, &binds, "open_incident").await
    }

    async fn latest_incident(&self, location: &LocationId) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE location = $1 \
             ORDER BY fired_at DESC, id DESC LIMIT 1"
        );
        self.one_incident(&sql, &[location.as_str()], "latest_incident")
            .await
    }

    async fn incident_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE diagnosis_channel = $1 AND diagnosis_ts = $2 ORDER BY id DESC LIMIT 1"
        );
        self.one_incident(&sql, &[channel, ts], "incident_for_message")
            .await
    }

    async fn set_incident_check(
        &self,
        id: IncidentId,
        check_id: Option<CheckId>,
        diagnosis: &MessageRef,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_incident_check";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        let done = sqlx::query(
            "UPDATE incidents SET check_id = COALESCE($1, check_id), diagnosis_channel = $2, \
             diagnosis_ts = $3 WHERE id = $4",
        )
        .bind(check_id.map(|c| c.0))
        .bind(diagnosis.channel.as_str())
        .bind(diagnosis.ts.as_str())
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        if D::rows_affected(&done) != 1 {
            return Ok(false);
        }
        if let Some(check_id) = check_id {
            let detail = format!("check {check_id}");
            Self::insert_event(&mut tx, id.0, now, "check_started", None, Some(&detail), OP)
                .await?;
        }
        tx.commit().await.map_err(query_error(OP))?;
        Ok(true)
    }

    async fn incident_verdict(
        &self,
        id: IncidentId,
        verdict: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "UPDATE incidents SET verdict = $2, diagnosed_at = $1 \
             WHERE id = CAST($3 AS BIGINT) AND verdict IS NULL RETURNING {INCIDENT_COLUMNS}"
        );
        let id_text = id.0.to_string();
        let changed = self
            .update_incident(
                &sql,
                &[verdict, &id_text],
                ("verdict", None, Some(verdict)),
                "incident_verdict",
            )
            .await?;
        match changed {
            Some(incident) => Ok(Some(incident)),
            None => {
                let sql = format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = CAST($1 AS BIGINT)"
                );
                self.one_incident(&sql, &[&id_text], "incident_verdict")
                    .await
            }
        }
    }

    async fn incident_fixed(&self, id: IncidentId, detail: &str) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE incidents SET fixed_at = $1 WHERE id = CAST($2 AS BIGINT) \
             AND fixed_at IS NULL AND state = 'open' RETURNING {INCIDENT_COLUMNS}"
        );
        let id_text = id.0.to_string();
        let changed = self
            .update_incident(
                &sql,
                &[&id_text],
                ("fixed", None, Some(detail)),
                "incident_fixed",
            )
            .await?;
        Ok(changed.is_some())
    }

    async fn incident_paged(
        &self,
        key: &CheckKey,
        dedup_key: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE incidents SET pagerduty_dedup_key = $2 WHERE environment = $3 \
             AND location = $4 AND state = 'open' AND $1 = $1 RETURNING {INCIDENT_COLUMNS}"
        );
        let binds = [dedup_key, key.environment.as_str(), key.location.as_str()];
        let detail = format!("pagerduty:{dedup_key}");
        let changed = self
            .update_incident(
                &sql,
                &binds,
                ("page", Some(actor), Some(&detail)),
                "incident_paged",
            )
            .await?;
        Ok(changed.is_some())
    }

    async fn incident_issue(
        &self,
        key: &CheckKey,
        repo: &str,
        number: i64,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE incidents SET github_repo = $2, github_number = CAST($3 AS BIGINT) \
             WHERE environment = $4 AND location = $5 AND state = 'open' AND $1 = $1 \
             RETURNING {INCIDENT_COLUMNS}"
        );
        let number_text = number.to_string();
        let binds = [
            repo,
            &number_text,
            key.environment.as_str(),
            key.location.as_str(),
        ];
        let detail = format!("{repo}#{number}");
        let changed = self
            .update_incident(
                &sql,
                &binds,
                ("issue", Some(actor), Some(&detail)),
                "incident_issue",
            )
            .await?;
        Ok(changed.is_some())
    }

    async fn resolve_incident(
        &self,
        key: &CheckKey,
        by: &MessageRef,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "UPDATE incidents SET state = 'resolved', resolved_at = $1, resolve_channel = $2, \
             resolve_ts = $3 WHERE environment = $4 AND location = $5 AND state = 'open' \
             RETURNING {INCIDENT_COLUMNS}"
        );
        let binds = [
            by.channel.as_str(),
            by.ts.as_str(),
            key.environment.as_str(),
            key.location.as_str(),
        ];
        let detail = format!("{} {}", by.channel, by.ts);
        self.update_incident(
            &sql,
            &binds,
            ("resolved", None, Some(&detail)),
            "resolve_incident",
        )
        .await
    }

    async fn add_incident_event(
        &self,
        id: IncidentId,
        kind: &str,
        actor: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "add_incident_event";
        let mut conn = self.pool.acquire().await.map_err(query_error(OP))?;
        Self::insert_event(
            &mut conn,
            id.0,
            self.clock.now_ms(),
            kind,
            actor,
            detail,
            OP,
        )
        .await
    }

    async fn incident_events(&self, id: IncidentId) -> Result<Vec<IncidentEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, detail FROM incident_events WHERE incident_id = $1 \
             ORDER BY at, id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("incident_events"))?;
        rows.iter().map(incident_event_from_row).collect()
    }

    // ---- the report --------------------------------------------------------------------

    async fn report_rows(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<ReportRows, StoreError> {
        const OP: &str = "report_rows";
        let (since, until) = (since.timestamp_millis(), until.timestamp_millis());
        // One read transaction: every fact is read from the same state of the store.
        let mut tx = begin(&self.pool, None, OP).await?;
        let incidents_sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE (fired_at >= $1 AND fired_at < $2) OR (resolved_at >= $1 AND resolved_at < $2) \
             ORDER BY fired_at, id"
        );
        let checks_sql = format!(
            "SELECT {CHECK_OUTCOME_COLUMNS} FROM checks WHERE state = 'finished' \
             AND finished_at >= $1 AND finished_at < $2 ORDER BY finished_at, id"
        );
        let escalations_sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE kind = 'escalation' \
             AND at >= $1 AND at < $2 ORDER BY at, id"
        );
        let pages_sql = format!(
            "SELECT {PAGE_COLUMNS} FROM pages WHERE state = 'paged' \
             AND paged_at >= $1 AND paged_at < $2 ORDER BY paged_at, check_id"
        );
        let feedback_sql = "SELECT verdict, vote, updated_at FROM feedback \
             WHERE updated_at >= $1 AND updated_at < $2 ORDER BY updated_at, id";
        // An incident whose alert a storm answered with a pointer: the storm location with
        // the same alert message, never checked (not sampled, not checked within the budget).
        let storm_linked_sql = "SELECT DISTINCT i.id AS id FROM incidents i \
             JOIN storm_locations l ON l.location = i.location \
             AND l.alert_channel = i.alert_channel AND l.alert_ts = i.alert_ts \
             JOIN storms s ON s.id = l.storm_id AND s.environment = i.environment \
             WHERE l.checked = 0 AND i.fired_at >= $1 AND i.fired_at < $2 ORDER BY i.id";
        let period = (since, until);
        let incidents = Self::period_rows(&mut tx, &incidents_sql, period, OP).await?;
        let checks = Self::period_rows(&mut tx, &checks_sql, period, OP).await?;
        let escalations = Self::period_rows(&mut tx, &escalations_sql, period, OP).await?;
        let pages = Self::period_rows(&mut tx, &pages_sql, period, OP).await?;
        let feedback = Self::period_rows(&mut tx, feedback_sql, period, OP).await?;
        let storm_linked = Self::period_rows(&mut tx, storm_linked_sql, period, OP).await?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(ReportRows {
            incidents: incidents
                .iter()
                .map(incident_from_row)
                .collect::<Result<_, _>>()?,
            checks: checks
                .iter()
                .map(check_outcome_from_row)
                .collect::<Result<_, _>>()?,
            escalations: escalations
                .iter()
                .map(audit_from_row)
                .collect::<Result<_, _>>()?,
            pages: pages.iter().map(page_from_row).collect::<Result<_, _>>()?,
            feedback: feedback
                .iter()
                .map(feedback_vote_from_row)
                .collect::<Result<_, _>>()?,
            storm_linked: storm_linked
                .iter()
                .map(|r| r.int("id").map(IncidentId))
                .collect::<Result<_, _>>()?,
        })
    }

    async fn claim_report_slot(
        &self,
        slot: DateTime<Utc>,
        channel: &str,
        owner: &str,
        stale: Duration,
    ) -> Result<ReportSlotClaim, StoreError> {
        const OP: &str = "claim_report_slot";
        let slot_ms = slot.timestamp_millis();
        for _ in 0..CLAIM_PAGE_ATTEMPTS {
            let now = self.clock.now_ms();
            let claim = new_page_claim(now);
            let mut tx = self.write_tx(OP).await?;
            // Inserts the slot's row, or takes over a claim that went stale unposted; returns
            // the claim only when the caller won.
            let won: Option<String> = sqlx::query_scalar(
                "INSERT INTO report_posts (slot, channel, owner, claim, state, claimed_at) \
                 VALUES ($1, $2, $3, $4, 'posting', $5) \
                 ON CONFLICT (slot) DO UPDATE SET channel = excluded.channel, \
                 owner = excluded.owner, claim = excluded.claim, \
                 claimed_at = excluded.claimed_at \
                 WHERE report_posts.state = 'posting' AND report_posts.claimed_at < $6 \
                 RETURNING claim",
            )
            .bind(slot_ms)
            .bind(channel)
            .bind(owner)
            .bind(claim.as_str())
            .bind(now)
            .bind(now.saturating_sub(duration_ms(stale)))
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            if won.is_some() {
                tx.commit().await.map_err(query_error(OP))?;
                return Ok(ReportSlotClaim::Claimed { claim });
            }
            let row = sqlx::query("SELECT owner, state FROM report_posts WHERE slot = $1")
                .bind(slot_ms)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(OP))?;
            tx.commit().await.map_err(query_error(OP))?;
            if let Some(row) = row {
                return Ok(ReportSlotClaim::Taken {
                    owner: row.text("owner")?,
                    posted: row.text("state")? == "posted",
                });
            }
        }
        Err(StoreError::Corrupt {
            what: format!("the report slot {slot} kept vanishing while it was claimed"),
        })
    }

    async fn finish_report_slot(
        &self,
        slot: DateTime<Utc>,
        claim: &str,
        posted_ts: Option<&str>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "finish_report_slot";
        let slot_ms = slot.timestamp_millis();
        match posted_ts {
            Some(ts) => {
                let query = sqlx::query(
                    "UPDATE report_posts SET state = 'posted', posted_at = $1, message_ts = $2 \
                     WHERE slot = $3 AND claim = $4 AND state = 'posting'",
                )
                .bind(self.clock.now_ms())
                .bind(ts)
                .bind(slot_ms)
                .bind(claim);
                self.changed_one(query, OP).await
            }
            None => {
                let query = sqlx::query(
                    "DELETE FROM report_posts WHERE slot = $1 AND claim = $2 AND state = 'posting'",
                )
                .bind(slot_ms)
                .bind(claim);
                self.changed_one(query, OP).await
            }
        }
    }

    async fn record_silence(&self, silence: &SilenceRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO silences (silence_id, environment, location, incident_id, created_by, \
             created_by_name, starts_at, ends_at, until_resolved, channel, thread_ts, state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', $12)",
        )
        .bind(silence.silence_id.as_str())
        .bind(silence.key.environment.as_str())
        .bind(silence.key.location.as_str())
        .bind(silence.incident_id.map(|i| i.0))
        .bind(silence.created_by.as_str())
        .bind(silence.created_by_name.as_str())
        .bind(silence.starts_at.timestamp_millis())
        .bind(silence.ends_at.timestamp_millis())
        .bind(i64::from(silence.until_resolved))
        .bind(silence.thread.channel.as_str())
        .bind(silence.thread.ts.as_str())
        .bind(self.clock.now_ms())
        .execute(&self.pool)
        .await
        .map_err(query_error("record_silence"))?;
        Ok(())
    }

    async fn set_silence_message(
        &self,
        silence_id: &str,
        message_ts: &str,
    ) -> Result<bool, StoreError> {
        self.changed_one(
            sqlx::query("UPDATE silences SET message_ts = $1 WHERE silence_id = $2")
                .bind(message_ts)
                .bind(silence_id),
            "set_silence_message",
        )
        .await
    }

    async fn silence_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<SilenceRecord>, StoreError> {
        let sql = format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE channel = $1 AND message_ts = $2 \
             ORDER BY id DESC LIMIT 1"
        );
        Ok(self
            .silences_of(&sql, &[channel, ts], "silence_for_message")
            .await?
            .pop())
    }

    async fn silence(&self, silence_id: &str) -> Result<Option<SilenceRecord>, StoreError> {
        let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE silence_id = $1");
        Ok(self
            .silences_of(&sql, &[silence_id], "silence")
            .await?
            .pop())
    }

    async fn active_silences(
        &self,
        id: IncidentId,
        key: &CheckKey,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        let sql = format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE state = 'active' \
             AND (incident_id = CAST($1 AS BIGINT) OR (incident_id IS NULL \
             AND until_resolved = 1 AND environment = $2 AND location = $3)) ORDER BY id"
        );
        let binds = [
            id.0.to_string(),
            key.environment.to_string(),
            key.location.to_string(),
        ];
        let binds: Vec<&str> = binds.iter().map(String::as_str).collect();
        self.silences_of(&sql, &binds, "active_silences").await
    }

    async fn expire_silence(
        &self,
        silence_id: &str,
        by: &str,
    ) -> Result<Option<SilenceRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE silences SET state = 'expired', expired_by = $1, expired_at = $2 \
             WHERE silence_id = $3 AND state = 'active' RETURNING {SILENCE_COLUMNS}"
        ))
        .bind(by)
        .bind(self.clock.now_ms())
        .bind(silence_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("expire_silence"))?;
        row.as_ref().map(silence_from_row).transpose()
    }

    // ---- Feedback on diagnoses ("Was this right?") ----

    async fn record_vote(&self, vote: &NewVote<'_>) -> Result<Feedback, StoreError> {
        const OP: &str = "record_vote";
        let now = self.clock.now_ms();
        // One row per (message, user): a later vote replaces the earlier one; a 👍 clears the
        // answer of an earlier 👎 form.
        let row = sqlx::query(&format!(
            "INSERT INTO feedback (channel, message_ts, user_id, user_name, check_id, \
             incident_id, environment, location, verdict, vote, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (channel, message_ts, user_id) DO UPDATE SET \
             user_name = COALESCE(excluded.user_name, feedback.user_name), \
             check_id = excluded.check_id, \
             incident_id = COALESCE(excluded.incident_id, feedback.incident_id), \
             environment = excluded.environment, location = excluded.location, \
             verdict = excluded.verdict, vote = excluded.vote, \
             actual_verdict = CASE WHEN excluded.vote = 'up' THEN NULL \
             ELSE feedback.actual_verdict END, \
             comment = CASE WHEN excluded.vote = 'up' THEN NULL ELSE feedback.comment END, \
             updated_at = excluded.updated_at \
             RETURNING {FEEDBACK_COLUMNS}"
        ))
        .bind(vote.message.channel.as_str())
        .bind(vote.message.ts.as_str())
        .bind(vote.user)
        .bind(vote.user_name)
        .bind(vote.check_id.map(|c| c.0))
        .bind(vote.incident_id.map(|i| i.0))
        .bind(vote.key.environment.as_str())
        .bind(vote.key.location.as_str())
        .bind(vote.verdict)
        .bind(vote.vote.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(query_error(OP))?;
        feedback_from_row(&row)
    }

    async fn record_feedback_answer(
        &self,
        message: &MessageRef,
        user: &str,
        actual_verdict: &str,
        comment: Option<&str>,
    ) -> Result<Option<Feedback>, StoreError> {
        const OP: &str = "record_feedback_answer";
        let row = sqlx::query(&format!(
            "UPDATE feedback SET vote = 'down', actual_verdict = $1, comment = $2, \
             updated_at = $3 WHERE channel = $4 AND message_ts = $5 AND user_id = $6 \
             RETURNING {FEEDBACK_COLUMNS}"
        ))
        .bind(actual_verdict)
        .bind(comment)
        .bind(self.clock.now_ms())
        .bind(message.channel.as_str())
        .bind(message.ts.as_str())
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        row.as_ref().map(feedback_from_row).transpose()
    }

    async fn feedback_for_message(
        &self,
        message: &MessageRef,
    ) -> Result<Vec<Feedback>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE channel = $1 AND message_ts = $2 \
             ORDER BY created_at, id"
        ))
        .bind(message.channel.as_str())
        .bind(message.ts.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("feedback_for_message"))?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn open_feedback_form(
        &self,
        token: &str,
        message: &MessageRef,
        user: &str,
        key: &CheckKey,
    ) -> Result<(), StoreError> {
        const OP: &str = "open_feedback_form";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        sqlx::query("DELETE FROM feedback_forms WHERE created_at < $1")
            .bind(now.saturating_sub(duration_ms(FEEDBACK_FORM_RETENTION)))
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
        sqlx::query(
            "INSERT INTO feedback_forms (token, channel, message_ts, user_id, environment, \
             location, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token)
        .bind(message.channel.as_str())
        .bind(message.ts.as_str())
        .bind(user)
        .bind(key.environment.as_str())
        .bind(key.location.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        tx.commit().await.map_err(query_error(OP))
    }

    async fn set_feedback_form_view(&self, token: &str, view_id: &str) -> Result<bool, StoreError> {
        self.changed_one(
            sqlx::query("UPDATE feedback_forms SET view_id = $1 WHERE token = $2")
                .bind(view_id)
                .bind(token),
            "set_feedback_form_view",
        )
        .await
    }

    async fn feedback_form(&self, token: &str) -> Result<Option<FeedbackForm>, StoreError> {
        let oldest = self
            .clock
            .now_ms()
            .saturating_sub(duration_ms(FEEDBACK_FORM_RETENTION));
        let row = sqlx::query(&format!(
            "SELECT {FEEDBACK_FORM_COLUMNS} FROM feedback_forms \
             WHERE token = $1 AND created_at >= $2"
        ))
        .bind(token)
        .bind(oldest)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("feedback_form"))?;
        row.as_ref().map(feedback_form_from_row).transpose()
    }

    async fn take_feedback_form(&self, token: &str) -> Result<bool, StoreError> {
        self.changed_one(
            sqlx::query("DELETE FROM feedback_forms WHERE token = $1").bind(token),
            "take_feedback_form",
        )
        .await
    }

    // --- Storms ---

    async fn storm_fired(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        window: Duration,
        threshold: u32,
    ) -> Result<StormFired, StoreError> {
        const OP: &str = "storm_fired";
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(duration_ms(window));
        let env = key.environment.as_str();
        let mut tx = self.write_tx(OP).await?;
        Self::lock_name(&mut tx, format!("linkbot.storm/{env}"), OP).await?;
        let ended = sqlx::query(&format!(
            "UPDATE storms SET state = 'ended', ended_at = $1 WHERE environment = $2 \
             AND state = 'active' AND last_firing_at < $3 RETURNING {STORM_COLUMNS}"
        ))
        .bind(now)
        .bind(env)
        .bind(cutoff)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?
        .as_ref()
        .map(storm_from_row)
        .transpose()?;
        sqlx::query(
            "INSERT INTO alert_firings (environment, location, fired_at, alert_channel, alert_ts) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (environment, location) DO UPDATE SET \
             fired_at = excluded.fired_at, alert_channel = excluded.alert_channel, \
             alert_ts = excluded.alert_ts",
        )
        .bind(env)
        .bind(key.location.as_str())
        .bind(now)
        .bind(alert.channel.as_str())
        .bind(alert.ts.as_str())
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let active = sqlx::query(&format!(
            "SELECT {STORM_COLUMNS} FROM storms WHERE environment = $1 AND state = 'active'"
        ))
        .bind(env)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?
        .as_ref()
        .map(storm_from_row)
        .transpose()?;
        let firing = if let Some(storm) = active {
            let done = sqlx::query(
                "INSERT INTO storm_locations (storm_id, location, fired_at, alert_channel, \
                 alert_ts) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (storm_id, location) DO NOTHING",
            )
            .bind(storm.id.0)
            .bind(key.location.as_str())
            .bind(now)
            .bind(alert.channel.as_str())
            .bind(alert.ts.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            let new = D::rows_affected(&done) == 1;
            if !new {
                // The location fires again under another alert: that alert waits for its
                // pointer (the location's check, if any, answered the first one).
                sqlx::query(
                    "UPDATE storm_locations SET alert_channel = $1, alert_ts = $2, \
                     answered_at = NULL, pointing_by = NULL, pointing_until = NULL \
                     WHERE storm_id = $3 AND location = $4 \
                     AND (alert_channel <> $1 OR alert_ts <> $2)",
                )
                .bind(alert.channel.as_str())
                .bind(alert.ts.as_str())
                .bind(storm.id.0)
                .bind(key.location.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_error(OP))?;
            }
            let storm = if new {
                let row = sqlx::query(&format!(
                    "UPDATE storms SET last_firing_at = $1 WHERE id = $2 RETURNING {STORM_COLUMNS}"
                ))
                .bind(now)
                .bind(storm.id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error(OP))?;
                storm_from_row(&row)?
            } else {
                storm
            };
            StormFiring::Joined { storm, new }
        } else {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(fired_at) AS first FROM alert_firings \
                 WHERE environment = $1 AND fired_at >= $2",
            )
            .bind(env)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            let count = row.int("n")?;
            if count <= i64::from(threshold) {
                StormFiring::Calm
            } else {
                let first = row.opt_int("first")?.unwrap_or(now);
                let row = sqlx::query(&format!(
                    "INSERT INTO storms (environment, state, declared_at, first_firing_at, \
                     last_firing_at) VALUES ($1, 'active', $2, $3, $2) RETURNING {STORM_COLUMNS}"
                ))
                .bind(env)
                .bind(now)
                .bind(first)
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error(OP))?;
                let storm = storm_from_row(&row)?;
                sqlx::query(
                    "INSERT INTO storm_locations (storm_id, location, fired_at, alert_channel, \
                     alert_ts, checked, answered_at) SELECT $1, location, fired_at, \
                     alert_channel, alert_ts, CASE WHEN location = $2 THEN 0 ELSE 1 END, $5 \
                     FROM alert_firings WHERE environment = $3 AND fired_at >= $4",
                )
                .bind(storm.id.0)
                .bind(key.location.as_str())
                .bind(env)
                .bind(cutoff)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(query_error(OP))?;
                let locations = Self::load_storm_locations(&mut tx, storm.id, None, OP).await?;
                StormFiring::Declared(storm, locations)
            }
        };
        tx.commit().await.map_err(query_error(OP))?;
        Ok(StormFired { firing, ended })
    }

    async fn storm(&self, id: StormId) -> Result<Option<Storm>, StoreError> {
        let row = sqlx::query(&format!("SELECT {STORM_COLUMNS} FROM storms WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("storm"))?;
        row.as_ref().map(storm_from_row).transpose()
    }

    async fn active_storm(&self, environment: Environment) -> Result<Option<Storm>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {STORM_COLUMNS} FROM storms WHERE environment = $1 AND state = 'active'"
        ))
        .bind(environment.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("active_storm"))?;
        row.as_ref().map(storm_from_row).transpose()
    }

    async fn storm_locations(&self, id: StormId) -> Result<Vec<StormLocation>, StoreError> {
        const OP: &str = "storm_locations";
        let mut conn = self.pool.acquire().await.map_err(query_error(OP))?;
        Self::load_storm_locations(&mut conn, id, None, OP).await
    }

    async fn set_storm_message(
        &self,
        id: StormId,
        message: &MessageRef,
    ) -> Result<bool, StoreError> {
        self.changed_one(
            sqlx::query(
                "UPDATE storms SET message_channel = $1, message_ts = $2 \
                 WHERE id = $3 AND message_ts IS NULL",
            )
            .bind(message.channel.as_str())
            .bind(message.ts.as_str())
            .bind(id.0),
            "set_storm_message",
        )
        .await
    }

    async fn set_storm_iam(&self, id: StormId, health: &str) -> Result<(), StoreError> {
        self.changed_one(
            sqlx::query("UPDATE storms SET iam_health = $1 WHERE id = $2")
                .bind(health)
                .bind(id.0),
            "set_storm_iam",
        )
        .await
        .map(drop)
    }

    async fn set_storm_whereabouts(
        &self,
        id: StormId,
        location: &LocationId,
        at: &Whereabouts,
    ) -> Result<(), StoreError> {
        self.changed_one(
            sqlx::query(
                "UPDATE storm_locations SET datacenter = COALESCE(datacenter, $1), \
                 region = COALESCE(region, $2) WHERE storm_id = $3 AND location = $4",
            )
            .bind(at.datacenter.clone())
            .bind(at.region.clone())
            .bind(id.0)
            .bind(location.as_str()),
            "set_storm_whereabouts",
        )
        .await
        .map(drop)
    }

    async fn set_storm_sample(
        &self,
        id: StormId,
        locations: &[LocationId],
    ) -> Result<Vec<StormLocation>, StoreError> {
        const OP: &str = "set_storm_sample";
        let mut tx = self.write_tx(OP).await?;
        let mut to_check = Vec::new();
        for location in locations {
            let before = Self::load_storm_locations(&mut tx, id, Some(location), OP).await?;
            let Some(before) = before.into_iter().next() else {
                continue;
            };
            sqlx::query(
                "UPDATE storm_locations SET sample = 1, checked = 1, \
                 answered_at = COALESCE(answered_at, $3) WHERE storm_id = $1 AND location = $2",
            )
            .bind(id.0)
            .bind(location.as_str())
            .bind(self.clock.now_ms())
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
            if !before.checked {
                to_check.push(StormLocation {
                    sample: true,
                    checked: true,
                    ..before
                });
            }
        }
        tx.commit().await.map_err(query_error(OP))?;
        Ok(to_check)
    }

    async fn storm_verdict(
        &self,
        key: &CheckKey,
        verdict: &str,
        reason: &str,
        reason_text: &str,
        at: &Whereabouts,
    ) -> Result<Option<StormId>, StoreError> {
        let row = sqlx::query(
            "UPDATE storm_locations SET verdict = $1, reason = $2, reason_text = $7, \
             datacenter = COALESCE($3, datacenter), region = COALESCE($4, region) \
             WHERE location = $5 AND storm_id IN \
             (SELECT id FROM storms WHERE environment = $6 AND state = 'active') \
             RETURNING storm_id",
        )
        .bind(verdict)
        .bind(reason)
        .bind(at.datacenter.clone())
        .bind(at.region.clone())
        .bind(key.location.as_str())
        .bind(key.environment.as_str())
        .bind(reason_text)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("storm_verdict"))?;
        row.map(|r| r.int("storm_id").map(StormId)).transpose()
    }

    async fn set_storm_mode(
        &self,
        id: StormId,
        from: &[StormMode],
        to: StormMode,
    ) -> Result<Option<Storm>, StoreError> {
        if from.is_empty() {
            return Ok(None);
        }
        let from: Vec<String> = from.iter().map(|m| format!("'{}'", m.as_str())).collect();
        // Checking the rest starts a new generation, whose checker is not known yet: its
        // heartbeat starts now.
        let bump = if to == StormMode::Budget {
            ", epoch = epoch + 1, pumped_by = NULL, pumped_at = $3"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE storms SET mode = $1{bump} WHERE id = $2 AND state = 'active' \
             AND mode IN ({}) RETURNING {STORM_COLUMNS}",
            from.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(to.as_str()).bind(id.0);
        if to == StormMode::Budget {
            query = query.bind(self.clock.now_ms());
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("set_storm_mode"))?;
        row.as_ref().map(storm_from_row).transpose()
    }

    async fn claim_storm_check(
        &self,
        id: StormId,
        epoch: i64,
        owner: &str,
    ) -> Result<Option<StormLocation>, StoreError> {
        const OP: &str = "claim_storm_check";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        let going = sqlx::query(&format!(
            "SELECT id FROM storms WHERE id = $1 AND state = 'active' AND mode = 'budget' \
             AND epoch = $2{}",
            D::LOCK_FOR_UPDATE
        ))
        .bind(id.0)
        .bind(epoch)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        if going.is_none() {
            return Ok(None);
        }
        let next = sqlx::query(
            "SELECT location FROM storm_locations WHERE storm_id = $1 AND checked = 0 \
             ORDER BY fired_at, location LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let Some(next) = next else {
            return Ok(None);
        };
        let location = location_from_row(&next)?;
        sqlx::query(
            "UPDATE storm_locations SET checked = 1, answered_at = COALESCE(answered_at, $3) \
             WHERE storm_id = $1 AND location = $2",
        )
        .bind(id.0)
        .bind(location.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        // The checker's heartbeat.
        sqlx::query("UPDATE storms SET pumped_by = $1, pumped_at = $2 WHERE id = $3")
            .bind(owner)
            .bind(now)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(query_error(OP))?;
        let claimed = Self::load_storm_locations(&mut tx, id, Some(&location), OP).await?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(claimed.into_iter().next())
    }

    async fn take_storm_pump(
        &self,
        id: StormId,
        owner: &str,
        stale: Duration,
    ) -> Result<Option<Storm>, StoreError> {
        let now = self.clock.now_ms();
        let row = sqlx::query(&format!(
            "UPDATE storms SET epoch = epoch + 1, pumped_by = $1, pumped_at = $2 \
             WHERE id = $3 AND state = 'active' AND mode = 'budget' \
             AND (pumped_at IS NULL OR pumped_at < $4) \
             AND EXISTS (SELECT 1 FROM storm_locations WHERE storm_id = $3 AND checked = 0) \
             RETURNING {STORM_COLUMNS}"
        ))
        .bind(owner)
        .bind(now)
        .bind(id.0)
        .bind(now.saturating_sub(duration_ms(stale)))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("take_storm_pump"))?;
        row.as_ref().map(storm_from_row).transpose()
    }

    async fn storm_point(&self, id: StormId, location: &LocationId) -> Result<(), StoreError> {
        self.changed_one(
            sqlx::query(
                "UPDATE storm_locations SET answered_at = NULL, pointing_by = NULL, \
                 pointing_until = NULL WHERE storm_id = $1 AND location = $2 AND checked = 0",
            )
            .bind(id.0)
            .bind(location.as_str()),
            "storm_point",
        )
        .await
        .map(drop)
    }

    async fn claim_storm_pointer(
        &self,
        id: StormId,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<StormLocation>, StoreError> {
        const OP: &str = "claim_storm_pointer";
        let now = self.clock.now_ms();
        let mut tx = self.write_tx(OP).await?;
        // The storm's row serialises its claims across replicas (PostgreSQL; SQLite's write
        // transaction does already).
        let found = sqlx::query(&format!(
            "SELECT id FROM storms WHERE id = $1{}",
            D::LOCK_FOR_UPDATE
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        if found.is_none() {
            return Ok(None);
        }
        let next = sqlx::query(
            "SELECT location FROM storm_locations WHERE storm_id = $1 AND answered_at IS NULL \
             AND (pointing_until IS NULL OR pointing_until < $2) \
             ORDER BY fired_at, location LIMIT 1",
        )
        .bind(id.0)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let Some(next) = next else {
            return Ok(None);
        };
        let location = location_from_row(&next)?;
        sqlx::query(
            "UPDATE storm_locations SET pointing_by = $1, pointing_until = $2 \
             WHERE storm_id = $3 AND location = $4",
        )
        .bind(owner)
        .bind(now.saturating_add(duration_ms(lease)))
        .bind(id.0)
        .bind(location.as_str())
        .execute(&mut *tx)
        .await
        .map_err(query_error(OP))?;
        let claimed = Self::load_storm_locations(&mut tx, id, Some(&location), OP).await?;
        tx.commit().await.map_err(query_error(OP))?;
        Ok(claimed.into_iter().next())
    }

    async fn storm_pointed(&self, id: StormId, location: &LocationId) -> Result<(), StoreError> {
        self.changed_one(
            sqlx::query(
                "UPDATE storm_locations SET answered_at = COALESCE(answered_at, $1), \
                 pointing_by = NULL, pointing_until = NULL \
                 WHERE storm_id = $2 AND location = $3",
            )
            .bind(self.clock.now_ms())
            .bind(id.0)
            .bind(location.as_str()),
            "storm_pointed",
        )
        .await
        .map(drop)
    }

    async fn release_storm_pointers(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE storm_locations SET pointing_by = NULL, pointing_until = NULL \
             WHERE pointing_by = $1 AND answered_at IS NULL",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(query_error("release_storm_pointers"))?;
        Ok(D::rows_affected(&done))
    }

    async fn storms_to_resume(&self, since: Duration) -> Result<Vec<Storm>, StoreError> {
        let cutoff = self.clock.now_ms().saturating_sub(duration_ms(since));
        let rows = sqlx::query(&format!(
            "SELECT {STORM_COLUMNS} FROM storms WHERE state = 'active' \
             OR (last_firing_at >= $1 AND id IN \
             (SELECT storm_id FROM storm_locations WHERE answered_at IS NULL)) ORDER BY id"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("storms_to_resume"))?;
        rows.iter().map(storm_from_row).collect()
    }

    async fn end_quiet_storm(
        &self,
        id: StormId,
        quiet: Duration,
    ) -> Result<Option<Storm>, StoreError> {
        let now = self.clock.now_ms();
        let row = sqlx::query(&format!(
            "UPDATE storms SET state = 'ended', ended_at = $1 WHERE id = $2 \
             AND state = 'active' AND last_firing_at < $3 RETURNING {STORM_COLUMNS}"
        ))
        .bind(now)
        .bind(id.0)
        .bind(now.saturating_sub(duration_ms(quiet)))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("end_quiet_storm"))?;
        row.as_ref().map(storm_from_row).transpose()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
