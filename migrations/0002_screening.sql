-- Suppliers and the stored Entity List snapshot. Written in the SQL common to SQLite and
-- PostgreSQL (TEXT, BIGINT; no SERIAL, AUTOINCREMENT or BOOLEAN): one migration set serves both.
-- Lists and maps are JSON kept as TEXT, timestamps RFC 3339 TEXT, so both databases hold the
-- same bytes and neither needs a JSON type.

-- The customer's supplier master, upserted by the customer's own id.
CREATE TABLE suppliers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- JSON array of strings.
    aliases TEXT NOT NULL,
    -- ISO 3166-1 alpha-2, or NULL when not given.
    country TEXT,
    address TEXT,
    -- JSON object of the file's other columns. Not named `references`: that is a reserved
    -- word in both dialects.
    reference_fields TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The list as last known: one row per entity key (`CC/folded-name`, as in change events).
-- Removed entries stay as tombstones (removed_at set) so a later re-listing is a revival with
-- a higher version, and an alert can still name what was removed.
CREATE TABLE listed_entries (
    entity_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- JSON arrays of strings (countries: ISO codes).
    aliases TEXT NOT NULL,
    addresses TEXT NOT NULL,
    countries TEXT NOT NULL,
    license_requirement TEXT,
    license_policy TEXT,
    federal_register_citation TEXT,
    -- The CSL list name, e.g. "Entity List (EL) - Bureau of Industry and Security".
    source_list TEXT NOT NULL,
    -- 1 when first stored, incremented by every revision, removal and revival.
    version BIGINT NOT NULL,
    -- What wrote the current version: `snapshot`, or a change action (`added`, `revised`,
    -- `removed`) with the Federal Register document that made it, so a re-delivered change
    -- event is recognised and not counted twice.
    last_action TEXT NOT NULL,
    last_document TEXT,
    updated_at TEXT NOT NULL,
    removed_at TEXT
);

CREATE INDEX listed_entries_current ON listed_entries (removed_at, entity_key);
