-- linkbot store, version 6 (sqlite): the weekly report is posted by one replica. One row per
-- week's slot (its time, unix ms, e.g. Monday 09:00 UTC), claimed before posting in one statement
-- so replicas (and a process restarted in the posting minute) post it once. A claim left
-- 'posting' (its holder died) may be taken again after a bound; a failed post deletes its row.
CREATE TABLE report_posts (
    slot        INTEGER PRIMARY KEY,
    channel     TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    claim       TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('posting', 'posted')),
    claimed_at  INTEGER NOT NULL,
    posted_at   INTEGER,
    message_ts  TEXT
);

-- The report reads incidents resolved, checks finished, escalations and pages of a period.
CREATE INDEX incidents_by_fired ON incidents (fired_at);
CREATE INDEX incidents_by_resolved ON incidents (resolved_at);
CREATE INDEX checks_by_finished ON checks (finished_at) WHERE state = 'finished';
CREATE INDEX pages_by_paged ON pages (paged_at) WHERE state = 'paged';
