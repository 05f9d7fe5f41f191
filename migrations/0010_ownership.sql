-- Ownership (issue 16, the BIS Affiliates rule). Common SQL of SQLite and PostgreSQL, like the
-- other migrations: TEXT and BIGINT only, timestamps RFC 3339 TEXT.

-- Entities that own suppliers or other owners, as the ownership file names them. An owner
-- whose id is also a supplier's is the same entity (it is screened as the supplier).
CREATE TABLE owners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- ISO 3166-1 alpha-2, or NULL when not given or not recognised.
    country TEXT,
    updated_at TEXT NOT NULL
);

-- One holding: owner_id holds `share` of owned_id (a supplier's or an owner's id). The share
-- is in hundredths of a percent, an integer, so sums are exact.
CREATE TABLE ownership_edges (
    owned_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    share BIGINT NOT NULL,
    as_of TEXT,
    source TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owned_id, owner_id)
);

CREATE INDEX ownership_edges_by_owner ON ownership_edges (owner_id);

-- The affiliate alert each supplier currently stands under: which listed entries (and their
-- versions) are behind it and the alert sent for them, so a fall below the threshold can be
-- cleared, and a change of the set alerts again.
CREATE TABLE affiliate_state (
    supplier_id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    -- JSON array of [entity_key, version], sorted.
    listed TEXT NOT NULL,
    share BIGINT NOT NULL,
    -- The alert JSON, from which the clearing notice is made.
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
