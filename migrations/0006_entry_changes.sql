-- Which change made which version of which entry: the rule (or list sync) behind every
-- version, and how the change found the entry (by key, by name within the country, by name
-- across countries, or not at all). Common SQL of SQLite and PostgreSQL.
CREATE TABLE entry_changes (
    entity_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    action TEXT NOT NULL,
    document_number TEXT,
    -- The change event's own key, which differs from entity_key when it was resolved by name.
    change_key TEXT NOT NULL,
    matched_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (entity_key, version)
);
