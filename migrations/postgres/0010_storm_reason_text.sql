-- linkbot store, version 10: the reason a storm location's verdict was reached, as the report
-- said it (`reason_text`), next to its location-neutral form (`reason`, digits read as `#`).
-- `reason` stays what the sample is compared by; `reason_text` is what the storm message shows
-- (a digit-stripped "IAM answered HTTP #" tells on-call nothing). NULL for verdicts recorded
-- before this version: the message then shows the comparison form.
ALTER TABLE storm_locations ADD COLUMN reason_text TEXT;
