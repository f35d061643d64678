-- linkbot store, version 2 (PostgreSQL): a click is authorized against the message that showed
-- it, a check result is paged once, and refused clicks are audited.

-- Which check a Slack message shows: a click names its channel and message ts.
CREATE INDEX waiters_by_message ON waiters (channel, message_ts);

-- The audit log gains the `refused_action` kind (the column's CHECK is named by PostgreSQL's
-- default rule, <table>_<column>_check).
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check
    CHECK (kind IN ('check', 'escalation', 'refused_action'));

-- One page per check result (the "incident"). The row is claimed before PagerDuty is called, in
-- one statement, so concurrent clicks on any replica page once; it says who paged and when. A
-- claim whose page never finished (`paging`, the process died) may be taken again after a
-- bound; a failed page deletes its row so the page can be tried again.
CREATE TABLE pages (
    check_id    BIGINT PRIMARY KEY REFERENCES checks (id) ON DELETE CASCADE,
    environment TEXT   NOT NULL,
    location    TEXT   NOT NULL,
    target      TEXT   NOT NULL,
    paged_by    TEXT   NOT NULL,
    claim       TEXT   NOT NULL,
    state       TEXT   NOT NULL CHECK (state IN ('paging', 'paged')),
    claimed_at  BIGINT NOT NULL,
    paged_at    BIGINT,
    link        TEXT
);
