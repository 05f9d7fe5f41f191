-- The delivery ledger doubles as a durable per-sink outbox. A sink that is down (its last
-- delivery ran out of retries) does not hold the events after it: their deliveries to that sink
-- are parked here in state 'queued', in `queue_seq` order, claimed by the parking worker (whose
-- lease on them it renews), and a background dispatcher sends them one by one. A worker that
-- died leaves its queued rows to expire and be adopted by another worker's dispatcher.
ALTER TABLE alert_deliveries ADD COLUMN queue_seq BIGINT;
CREATE INDEX alert_deliveries_outbox ON alert_deliveries (sink, state, queue_seq);
