-- linkbot store, version 5 (postgres): the Alertmanager silences linkbot created from Slack.
-- A row is written only after Alertmanager accepted the silence (`silence_id` is its id), so the
-- store never holds a silence that does not exist; `message_ts` is the thread message showing it
-- with its Unsilence button (a click is authorized against the row of that message). A silence
-- is expired once (`UPDATE … WHERE state = 'active'`), by a person or by linkbot when its
-- incident resolves. Times are Unix milliseconds.
CREATE TABLE silences (
    id              BIGSERIAL PRIMARY KEY,
    silence_id      TEXT    NOT NULL UNIQUE,
    environment     TEXT    NOT NULL,
    location        TEXT    NOT NULL,
    incident_id     BIGINT  REFERENCES incidents (id) ON DELETE SET NULL,
    created_by      TEXT    NOT NULL,
    created_by_name TEXT    NOT NULL,
    starts_at       BIGINT  NOT NULL,
    ends_at         BIGINT  NOT NULL,
    until_resolved  BIGINT  NOT NULL CHECK (until_resolved IN (0, 1)),
    channel         TEXT    NOT NULL,
    thread_ts       TEXT    NOT NULL,
    message_ts      TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'expired')),
    expired_by      TEXT,
    expired_at      BIGINT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX silences_by_incident ON silences (incident_id, state);
CREATE INDEX silences_by_message ON silences (channel, message_ts);

-- The audit log gains `silence` and `unsilence`.
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check
    CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence'));
