-- linkbot store, version 7 (PostgreSQL): the 👎 feedback form, and feedback in the audit log.

-- One row per feedback form (modal) linkbot opened: the random token it put in the view's
-- private_metadata, the diagnosis message and the user it was opened for, and the view id Slack
-- gave it. A submission is accepted only for a token found here, from that user and that view,
-- and only once (the row is deleted when the answer is taken). Times are Unix milliseconds.
CREATE TABLE feedback_forms (
    token       TEXT    PRIMARY KEY,
    channel     TEXT    NOT NULL,
    message_ts  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    view_id     TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX feedback_forms_by_time ON feedback_forms (created_at);

-- The audit log gains the `feedback` kind (and keeps 0005's `silence`, `unsilence`).
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check
    CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence', 'feedback'));
