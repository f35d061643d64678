-- linkbot store, version 5 (sqlite): the Alertmanager silences linkbot created from Slack.
-- A row is written only after Alertmanager accepted the silence (`silence_id` is its id), so the
-- store never holds a silence that does not exist; `message_ts` is the thread message showing it
-- with its Unsilence button (a click is authorized against the row of that message). A silence
-- is expired once (`UPDATE … WHERE state = 'active'`), by a person or by linkbot when its
-- incident resolves. Times are Unix milliseconds.
CREATE TABLE silences (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    silence_id      TEXT    NOT NULL UNIQUE,
    environment     TEXT    NOT NULL,
    location        TEXT    NOT NULL,
    incident_id     INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    created_by      TEXT    NOT NULL,
    created_by_name TEXT    NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    until_resolved  INTEGER NOT NULL CHECK (until_resolved IN (0, 1)),
    channel         TEXT    NOT NULL,
    thread_ts       TEXT    NOT NULL,
    message_ts      TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'expired')),
    expired_by      TEXT,
    expired_at      INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX silences_by_incident ON silences (incident_id, state);
CREATE INDEX silences_by_message ON silences (channel, message_ts);

-- The audit log gains `silence` and `unsilence`. SQLite cannot alter a CHECK constraint, so the
-- table is rebuilt with its rows (ids kept) and its indexes, as in version 2.
CREATE TABLE audit_v5 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL
                CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence')),
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
INSERT INTO audit_v5 (id, at, kind, actor, channel, location, environment, verdict, target, link,
                      detail, check_id)
    SELECT id, at, kind, actor, channel, location, environment, verdict, target, link, detail,
           check_id
    FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v5 RENAME TO audit;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_location ON audit (location, at);
