-- API tokens for the HTTP API and the review console. Only the SHA-256 digest of a secret is
-- kept; the secret is shown once when the token is made. A revoked token stays (revoked_at
-- set) so the audit trail's reviewer names keep meaning something; a name is unique among
-- live tokens. Times are RFC 3339 UTC. Common SQL of SQLite and PostgreSQL.
CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
