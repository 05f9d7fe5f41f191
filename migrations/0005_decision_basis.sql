-- A screening decision is a function of (supplier record, entry version, matcher version):
-- `basis` names the matcher version and the supplier record's screened fields it was made on.
-- A re-handled event (a replay, a rebalance) finds the decision on the same basis and reuses
-- it instead of scoring again; a changed supplier record or matcher is a new basis, hence a
-- new decision beside the old one (the audit trail keeps both). Rows from before this
-- migration have the empty basis. Common SQL of SQLite and PostgreSQL; SQLite cannot change a
-- primary key in place, so the table is rebuilt.
CREATE TABLE decisions_by_basis (
    supplier_id TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    entry_version BIGINT NOT NULL,
    basis TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    decision TEXT NOT NULL,
    explanation TEXT NOT NULL,
    document_number TEXT,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (supplier_id, entity_key, entry_version, basis)
);
INSERT INTO decisions_by_basis (supplier_id, entity_key, entry_version, basis, score, decision,
    explanation, document_number, decided_at)
SELECT supplier_id, entity_key, entry_version, '', score, decision, explanation,
    document_number, decided_at FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_by_basis RENAME TO decisions;
