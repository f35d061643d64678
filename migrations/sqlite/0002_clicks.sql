-- linkbot store, version 2 (SQLite): a click is authorized against the message that showed it,
-- a check result is paged once, and refused clicks are audited.

-- Which check a Slack message shows: a click names its channel and message ts.
CREATE INDEX waiters_by_message ON waiters (channel, message_ts);

-- The audit log gains the `refused_action` kind. SQLite cannot alter a CHECK constraint, so the
-- table is rebuilt with its rows (ids kept) and its indexes. Nothing references `audit`.
CREATE TABLE audit_v2 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('check', 'escalation', 'refused_action')),
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
INSERT INTO audit_v2 (id, at, kind, actor, channel, location, environment, verdict, target, link,
                      detail, check_id)
    SELECT id, at, kind, actor, channel, location, environment, verdict, target, link, detail,
           check_id
    FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v2 RENAME TO audit;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_location ON audit (location, at);

-- One page per check result (the "incident"). The row is claimed before PagerDuty is called, in
-- one statement, so concurrent clicks page once; it says who paged and when. A claim whose page
-- never finished (`paging`, the process died) may be taken again after a bound; a failed page
-- deletes its row so the page can be tried again.
CREATE TABLE pages (
    check_id    INTEGER PRIMARY KEY REFERENCES checks (id) ON DELETE CASCADE,
    environment TEXT    NOT NULL,
    location    TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    paged_by    TEXT    NOT NULL,
    claim       TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('paging', 'paged')),
    claimed_at  INTEGER NOT NULL,
    paged_at    INTEGER,
    link        TEXT
);
