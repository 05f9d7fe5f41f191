-- Watcher checkpoint. Written in the SQL common to SQLite and PostgreSQL so that one migration
-- set serves both stores.

-- Every Federal Register document the watcher has fully handled: its events are published and
-- confirmed. A document is written here only after that, so a crash re-publishes, never skips.
CREATE TABLE processed_documents (
    document_number TEXT PRIMARY KEY,
    publication_date TEXT,
    outcome TEXT NOT NULL,
    change_count BIGINT NOT NULL,
    warning_count BIGINT NOT NULL,
    processed_at TEXT NOT NULL
);

-- Public-inspection filings already reported as early warnings.
CREATE TABLE public_inspection_seen (
    document_number TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);

-- Small named values: the publication-date watermark, the last successful poll.
CREATE TABLE watch_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
