-- Every review of an alert, append-only: the audit trail of who decided what about which
-- alert, when and why. The latest review of an alert is its state (open until the first).
-- `reviewed_at` is RFC 3339 UTC with microseconds, so text order is time order. Common SQL of
-- SQLite and PostgreSQL.
CREATE TABLE alert_reviews (
    alert_id TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    supplier_id TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    entry_version BIGINT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    PRIMARY KEY (alert_id, reviewed_at)
);
CREATE INDEX alert_reviews_by_time ON alert_reviews (reviewed_at);
-- Alerts are listed from the alert topic's ledger rows, newest first.
CREATE INDEX alert_deliveries_by_sink_time ON alert_deliveries (sink, state, delivered_at);
