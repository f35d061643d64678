-- linkbot store, version 7 (SQLite): the 👎 feedback form, and feedback in the audit log.

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
    created_at  INTEGER NOT NULL
);
CREATE INDEX feedback_forms_by_time ON feedback_forms (created_at);

-- The audit log gains the `feedback` kind. SQLite cannot alter a CHECK constraint, so the table
-- is rebuilt with its rows (ids kept) and its indexes, as in 0002. Nothing references `audit`.
CREATE TABLE audit_v7 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('check', 'escalation', 'refused_action', 'silence', 'unsilence', 'feedback')),
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
INSERT INTO audit_v7 (id, at, kind, actor, channel, location, environment, verdict, target, link,
                      detail, check_id)
    SELECT id, at, kind, actor, channel, location, environment, verdict, target, link, detail,
           check_id
    FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v7 RENAME TO audit;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_location ON audit (location, at);
