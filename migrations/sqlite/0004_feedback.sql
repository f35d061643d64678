-- linkbot store, version 4 (sqlite): feedback on diagnoses ("Was this right?"). One row per
-- (diagnosis message, Slack user): a user's second vote replaces the first (UNIQUE + upsert).
-- `verdict` is what the message showed; `actual_verdict` is what the user says it was (a verdict
-- code or 'other'), set when the 👎 modal is submitted. Times are Unix milliseconds.
CREATE TABLE feedback (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    message_ts      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    user_name       TEXT,
    check_id        INTEGER REFERENCES checks (id) ON DELETE SET NULL,
    incident_id     INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    environment     TEXT    NOT NULL,
    location        TEXT    NOT NULL,
    verdict         TEXT    NOT NULL,
    vote            TEXT    NOT NULL CHECK (vote IN ('up', 'down')),
    actual_verdict  TEXT,
    comment         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (channel, message_ts, user_id)
);
CREATE INDEX feedback_by_time ON feedback (updated_at);
