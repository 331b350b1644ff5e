-- The support console's sessions (guise's own first-party OIDC client at /console).
-- A row is keyed by the SHA-256 of the browser's cookie and holds the agent's
-- Management API access token sealed (ChaCha20-Poly1305) under a key derived from that
-- cookie: the database alone can neither find a session's cookie nor read its token.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    label TEXT NOT NULL,
    sealed_token TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
