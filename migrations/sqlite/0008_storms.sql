-- linkbot store, version 8 (sqlite): storms. When more than `[storm] threshold` distinct
-- locations fire within `window_secs` in one environment, one storm is declared: at most one is
-- active per environment (a unique partial index, like incidents' "one open per key"), so
-- replicas sharing the store declare it once. Times are Unix milliseconds.

-- The latest first firing of each (environment, location): what the threshold counts.
CREATE TABLE alert_firings (
    environment TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    fired_at    INTEGER NOT NULL,
    alert_channel TEXT  NOT NULL,
    alert_ts    TEXT    NOT NULL,
    PRIMARY KEY (environment, location)
);
CREATE INDEX alert_firings_by_time ON alert_firings (environment, fired_at);

-- A storm: its message, what it is doing (`sample`: waiting for the sample's verdicts;
-- `budget`: checking the rest within the build budget; `stopped`: checking no more), and the
-- generation of its budgeted checking (`epoch`, raised each time checking starts, so one
-- checker runs at a time across replicas).
CREATE TABLE storms (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'ended')),
    mode            TEXT    NOT NULL DEFAULT 'sample' CHECK (mode IN ('sample', 'budget', 'stopped')),
    epoch           INTEGER NOT NULL DEFAULT 0,
    declared_at     INTEGER NOT NULL,
    first_firing_at INTEGER NOT NULL,
    last_firing_at  INTEGER NOT NULL,
    message_channel TEXT,
    message_ts      TEXT,
    iam_health      TEXT,
    ended_at        INTEGER
);
CREATE UNIQUE INDEX storms_one_active_per_environment ON storms (environment)
    WHERE state = 'active';

-- Every location of a storm: its alert, where it is (once looked up or checked), whether it is
-- in the sample, whether a check was started for it, and its verdict with a one-line reason.
CREATE TABLE storm_locations (
    storm_id      INTEGER NOT NULL REFERENCES storms (id) ON DELETE CASCADE,
    location      TEXT    NOT NULL,
    fired_at      INTEGER NOT NULL,
    alert_channel TEXT    NOT NULL,
    alert_ts      TEXT    NOT NULL,
    datacenter    TEXT,
    region        TEXT,
    sample        INTEGER NOT NULL DEFAULT 0,
    checked       INTEGER NOT NULL DEFAULT 0,
    verdict       TEXT,
    reason        TEXT,
    PRIMARY KEY (storm_id, location)
);
CREATE INDEX storm_locations_unchecked ON storm_locations (storm_id, checked, fired_at);

-- The audit log gains the `storm` kind (a storm's end, with every location; Check all / Stop).
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt with its rows (ids kept).
CREATE TABLE audit_v8 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence', 'feedback', 'storm')),
    actor       TEXT,
    channel     TEXT,
    location    TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    verdict     TEXT,
    target      TEXT,
    link        TEXT,
    detail      TEXT,
    check_id    INTEGER UNIQUE REFERENCES checks (id)
);
INSERT INTO audit_v8 (id, at, kind, actor, channel, location, environment, verdict, target, link,
                      detail, check_id)
    SELECT id, at, kind, actor, channel, location, environment, verdict, target, link, detail,
           check_id
    FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v8 RENAME TO audit;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_location ON audit (location, at);
