-- linkbot store, version 1 (PostgreSQL).
-- Times are UTC unix milliseconds (BIGINT). JSON columns hold opaque documents written by
-- linkbot: the Jenkins job handle and the diagnosis report. No secret is ever stored here.
-- Tables are created unqualified, in the first schema of the connection's search_path.

-- One row per check. At most one row per (environment, location) is 'running' at a time.
CREATE TABLE checks (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment          TEXT   NOT NULL,
    location             TEXT   NOT NULL,
    state                TEXT   NOT NULL CHECK (state IN ('running', 'finished')),
    stage                TEXT   NOT NULL,
    job                  JSONB,
    owner                TEXT   NOT NULL,
    lease_expires_at     BIGINT NOT NULL,
    started_at           BIGINT NOT NULL,
    finished_at          BIGINT,
    requested_by_user    TEXT,
    requested_by_channel TEXT,
    requested_by_source  TEXT   NOT NULL,
    verdict              TEXT,
    report               JSONB,
    build_url            TEXT
);

-- "One job per location at a time", enforced by the database itself, across replicas.
CREATE UNIQUE INDEX checks_one_running_per_location
    ON checks (environment, location) WHERE state = 'running';

-- Finding a fresh result to reuse.
CREATE INDEX checks_finished_by_location
    ON checks (environment, location, finished_at) WHERE state = 'finished';

-- Slack messages waiting for a check's verdict (edited in place when it arrives).
CREATE TABLE waiters (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    check_id   BIGINT NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
    channel    TEXT   NOT NULL,
    message_ts TEXT   NOT NULL,
    thread_ts  TEXT,
    user_id    TEXT,
    UNIQUE (check_id, channel, message_ts)
);

-- Slack envelope/event ids already handled, so a redelivery never starts a second check.
CREATE TABLE seen_events (
    event_key TEXT   PRIMARY KEY,
    seen_at   BIGINT NOT NULL
);
CREATE INDEX seen_events_by_time ON seen_events (seen_at);

-- The audit log of checks and escalations. check_id is set for check entries and is unique,
-- so a check is audited exactly once.
CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('check', 'escalation')),
    actor       TEXT,
    channel     TEXT,
    location    TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    verdict     TEXT,
    target      TEXT,
    link        TEXT,
    detail      TEXT,
    check_id    BIGINT UNIQUE REFERENCES checks (id)
);
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_location ON audit (location, at);
