-- linkbot store, version 9 (PostgreSQL): a storm survives its replicas. Times are Unix milliseconds.

-- A storm location's alert waits for its storm answer (the one-line pointer to the storm
-- message) while `answered_at` is NULL; a replica posting it claims it first (`pointing_by`
-- until `pointing_until`), so replicas post it once, and a replica that dies while posting
-- leaves a claim that expires. Locations checked in the storm (sampled, checked before it, or
-- within the budget) are answered by their check and are never pointed.
ALTER TABLE storm_locations ADD COLUMN answered_at BIGINT;
ALTER TABLE storm_locations ADD COLUMN pointing_by TEXT;
ALTER TABLE storm_locations ADD COLUMN pointing_until BIGINT;
-- Storms of an earlier version answered their alerts in memory: count those as answered.
UPDATE storm_locations SET answered_at = fired_at;
CREATE INDEX storm_locations_unanswered ON storm_locations (storm_id, fired_at)
    WHERE answered_at IS NULL;

-- The budgeted checker of a storm is a lease: the replica checking the rest (`pumped_by`)
-- renews `pumped_at` with each location it claims; another replica takes over (raising the
-- epoch, which stops the old checker) once that is older than a few build intervals.
ALTER TABLE storms ADD COLUMN pumped_by TEXT;
ALTER TABLE storms ADD COLUMN pumped_at BIGINT;
