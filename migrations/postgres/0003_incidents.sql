-- linkbot store, version 3 (postgres): incidents. An incident is one alert for one (environment,
-- location) from its first firing to its resolution; at most one is open per key (a unique
-- partial index, like running checks), so repeats join it and a resolve closes it once.
CREATE TABLE incidents (
    id                  BIGSERIAL PRIMARY KEY,
    environment         TEXT    NOT NULL,
    location            TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('open', 'resolved')),
    alert_channel       TEXT    NOT NULL,
    alert_ts            TEXT    NOT NULL,
    fired_at            BIGINT  NOT NULL,
    check_id            BIGINT REFERENCES checks (id) ON DELETE SET NULL,
    diagnosis_channel   TEXT,
    diagnosis_ts        TEXT,
    verdict             TEXT,
    diagnosed_at        BIGINT,
    repeat_count        BIGINT  NOT NULL DEFAULT 0,
    last_repeat_at      BIGINT,
    fixed_at            BIGINT,
    resolved_at         BIGINT,
    resolve_channel     TEXT,
    resolve_ts          TEXT,
    pagerduty_dedup_key TEXT,
    github_repo         TEXT,
    github_number       BIGINT
);
CREATE UNIQUE INDEX incidents_one_open_per_location
    ON incidents (environment, location) WHERE state = 'open';
CREATE INDEX incidents_by_location ON incidents (location, fired_at);
CREATE INDEX incidents_by_check ON incidents (check_id);

-- The timeline of an incident: fired, check, verdict, repeats, escalations, pages, re-runs,
-- fixed, resolved — in the order they happened.
CREATE TABLE incident_events (
    id          BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT,
    detail      TEXT
);
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, at, id);
