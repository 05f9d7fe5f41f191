-- The worker's state: the embedded bus log, screening decisions (the audit trail), alert
-- deliveries (the exactly-once ledger) and review decisions. Common SQL of SQLite and PostgreSQL.

-- The in-process bus: an append-only log per topic, so the embedded mode keeps Kafka's promise
-- (nothing published is lost across a restart; consumers resume from their stored position).
CREATE TABLE bus_log (
    topic TEXT NOT NULL,
    position BIGINT NOT NULL,
    message_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (topic, position)
);

-- Where each consumer of the in-process bus has got to: the last position fully handled.
CREATE TABLE bus_positions (
    consumer TEXT NOT NULL,
    topic TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic)
);

-- Every screening decision above the review floor, matched or not: who, against what, how
-- sure, why, prompted by which document, when.
CREATE TABLE decisions (
    supplier_id TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    entry_version BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    decision TEXT NOT NULL,
    explanation TEXT NOT NULL,
    document_number TEXT,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (supplier_id, entity_key, entry_version)
);

-- One row per alert delivered to one sink. The primary key is the exactly-once rule: a sink
-- is called only when no row exists, and the row is written once the sink accepted it.
CREATE TABLE alert_deliveries (
    alert_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    supplier_id TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    entry_version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, sink)
);

CREATE INDEX alert_deliveries_by_entry ON alert_deliveries (entity_key, supplier_id);

-- A reviewer's dismissal of a (supplier, entry) pair, valid until the entry is revised.
CREATE TABLE reviews (
    supplier_id TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    entry_version BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    PRIMARY KEY (supplier_id, entity_key)
);
