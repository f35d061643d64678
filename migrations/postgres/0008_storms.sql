-- linkbot store, version 8 (postgres): storms. When more than `[storm] threshold` distinct
-- locations fire within `window_secs` in one environment, one storm is declared: at most one is
-- active per environment (a unique partial index, like incidents' "one open per key"), so
-- replicas sharing the store declare it once. Times are Unix milliseconds.

-- The latest first firing of each (environment, location): what the threshold counts.
CREATE TABLE alert_firings (
    environment TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    fired_at    BIGINT  NOT NULL,
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
    id              BIGSERIAL PRIMARY KEY,
    environment     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'ended')),
    mode            TEXT    NOT NULL DEFAULT 'sample' CHECK (mode IN ('sample', 'budget', 'stopped')),
    epoch           BIGINT  NOT NULL DEFAULT 0,
    declared_at     BIGINT  NOT NULL,
    first_firing_at BIGINT  NOT NULL,
    last_firing_at  BIGINT  NOT NULL,
    message_channel TEXT,
    message_ts      TEXT,
    iam_health      TEXT,
    ended_at        BIGINT
);
CREATE UNIQUE INDEX storms_one_active_per_environment ON storms (environment)
    WHERE state = 'active';

-- Every location of a storm: its alert, where it is (once looked up or checked), whether it is
-- in the sample, whether a check was started for it, and its verdict with a one-line reason.
CREATE TABLE storm_locations (
    storm_id      BIGINT  NOT NULL REFERENCES storms (id) ON DELETE CASCADE,
    location      TEXT    NOT NULL,
    fired_at      BIGINT  NOT NULL,
    alert_channel TEXT    NOT NULL,
    alert_ts      TEXT    NOT NULL,
    datacenter    TEXT,
    region        TEXT,
    sample        BIGINT  NOT NULL DEFAULT 0,
    checked       BIGINT  NOT NULL DEFAULT 0,
    verdict       TEXT,
    reason        TEXT,
    PRIMARY KEY (storm_id, location)
);
CREATE INDEX storm_locations_unchecked ON storm_locations (storm_id, checked, fired_at);

-- The audit log gains the `storm` kind (a storm's end, with every location; Check all / Stop).
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check
    CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence', 'feedback', 'storm'));
