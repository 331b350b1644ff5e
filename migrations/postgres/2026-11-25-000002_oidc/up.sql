-- OpenID Connect: browser sessions, pending authorization requests, consents, codes,
-- refresh-token families, issued access tokens (for revocation) and login throttling.
-- Secrets (session cookies, codes, refresh tokens) are stored as SHA-256 hashes only.

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    sid TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    auth_time BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    source_ip TEXT,
    user_agent TEXT,
    ended_at BIGINT,
    impersonator_id TEXT,
    impersonation_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE authorization_requests (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    sid TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    sid TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT,
    code_hash TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    family_expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_code ON refresh_tokens (code_hash);
CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);

CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sid TEXT NOT NULL,
    family_id TEXT,
    code_hash TEXT,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_family ON access_tokens (family_id);
CREATE INDEX access_tokens_code ON access_tokens (code_hash);
CREATE INDEX access_tokens_sid ON access_tokens (sid);

CREATE TABLE login_throttle (
    throttle_key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    window_started_at BIGINT NOT NULL,
    locked_until BIGINT
);
