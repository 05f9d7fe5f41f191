-- Claims on alert deliveries. A worker claims (alert, sink) before calling the sink and marks
-- it delivered after: a second worker handed the same event by a rebalance finds the claim and
-- waits instead of sending too. A claim is a lease the sender renews while it sends; a sender
-- that died leaves it to expire and be taken over. Rows from before this migration were all
-- written after delivery, hence the default.
ALTER TABLE alert_deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'delivered';
ALTER TABLE alert_deliveries ADD COLUMN claimed_by TEXT;
-- Milliseconds since the Unix epoch, by the claiming worker's clock.
ALTER TABLE alert_deliveries ADD COLUMN lease_until_ms BIGINT;
