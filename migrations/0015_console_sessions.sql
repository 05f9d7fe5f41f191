-- Sessions of the review console: a browser signs in with an API token once and then holds
-- only a random session id in an HttpOnly cookie. Only the id's SHA-256 digest is kept, so a
-- copy of the database signs no one in; the token itself is never stored here or sent back.
-- A session ends at `expires_at`, on sign-out (the row is deleted), or when its token is
-- revoked (lookups join the live token). `csrf_token` is the per-session value every console
-- form carries. Times are RFC 3339 UTC to the second, so text order is time order. Common SQL
-- of SQLite and PostgreSQL.
CREATE TABLE console_sessions (
    session_digest TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
