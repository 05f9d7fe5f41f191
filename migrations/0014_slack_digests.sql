-- Slack digests. A batch (one document, list sync or supplier import) that raises more than
-- --slack-digest-over alerts for a Slack sink reaches it as one digest. Until its batch is
-- decided, an alert for such a sink is *held* in the ledger (state 'held', `digest_group` the
-- batch); then either every held alert is queued in the outbox to go singly (state 'queued',
-- as today), or a digest row is written and every alert it carries marked 'digested' with its
-- `digest_id`, in one transaction. Once the sink accepted the digest, the digest and its
-- alerts are 'delivered' together, so an alert carried in a sent digest is never sent again on
-- its own, and a restart mid-digest resends the same digest (same id, same alerts).
ALTER TABLE alert_deliveries ADD COLUMN digest_group TEXT;
ALTER TABLE alert_deliveries ADD COLUMN digest_id TEXT;
CREATE INDEX alert_deliveries_held ON alert_deliveries (sink, state, digest_group);
CREATE INDEX alert_deliveries_digest ON alert_deliveries (digest_id);

-- A batch whose alerts are held: decided once closed (the rule's document event, the end of
-- an import) or once no event of it was handled for a while (a list sync has no document
-- event; a Kafka worker may see the document event before another's last changes).
CREATE TABLE digest_groups (
    group_key TEXT NOT NULL PRIMARY KEY,
    opened_at TEXT NOT NULL,
    -- Milliseconds since the Unix epoch: the last event of the batch handled.
    last_activity_ms BIGINT NOT NULL,
    closed_at_ms BIGINT
);

-- One digest for one sink: its own ledger entry, claimed like an alert's delivery (a lease the
-- sender renews; a dead sender's digest is adopted once it ran out) and marked delivered once.
CREATE TABLE alert_digests (
    digest_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    group_key TEXT NOT NULL,
    alert_count BIGINT NOT NULL,
    -- The digest's JSON as sent (`alerts::Digest`), so a resend is the same message.
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    claimed_by TEXT,
    lease_until_ms BIGINT,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (digest_id, sink)
);
