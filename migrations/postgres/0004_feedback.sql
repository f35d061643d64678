-- linkbot store, version 4 (postgres): feedback on diagnoses ("Was this right?"). One row per
-- (diagnosis message, Slack user): a user's second vote replaces the first (UNIQUE + upsert).
-- `verdict` is what the message showed; `actual_verdict` is what the user says it was (a verdict
-- code or 'other'), set when the 👎 modal is submitted. Times are Unix milliseconds.
CREATE TABLE feedback (
    id              BIGSERIAL PRIMARY KEY,
    channel         TEXT    NOT NULL,
    message_ts      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    user_name       TEXT,
    check_id        BIGINT  REFERENCES checks (id) ON DELETE SET NULL,
    incident_id     BIGINT  REFERENCES incidents (id) ON DELETE SET NULL,
    environment     TEXT    NOT NULL,
    location        TEXT    NOT NULL,
    verdict         TEXT    NOT NULL,
    vote            TEXT    NOT NULL CHECK (vote IN ('up', 'down')),
    actual_verdict  TEXT,
    comment         TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (channel, message_ts, user_id)
);
CREATE INDEX feedback_by_time ON feedback (updated_at);
