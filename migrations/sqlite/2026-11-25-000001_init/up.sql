-- guise schema (SQLite). Keep in step with ../../postgres: same tables, same columns.
-- Times are Unix milliseconds; JSON is stored as text.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL UNIQUE,
    email_verified BOOLEAN NOT NULL DEFAULT 0,
    name TEXT,
    given_name TEXT,
    family_name TEXT,
    nickname TEXT,
    picture TEXT,
    password_hash TEXT,
    blocked BOOLEAN NOT NULL DEFAULT 0,
    app_metadata TEXT NOT NULL DEFAULT '{}',
    user_metadata TEXT NOT NULL DEFAULT '{}',
    external_id TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    modified_by TEXT,
    created_on_behalf_by TEXT,
    modified_on_behalf_by TEXT,
    last_login BIGINT,
    last_ip TEXT,
    logins_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    client_secret_hash TEXT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    app_type TEXT NOT NULL,
    is_first_party BOOLEAN NOT NULL DEFAULT 1,
    callbacks TEXT NOT NULL DEFAULT '[]',
    allowed_logout_urls TEXT NOT NULL DEFAULT '[]',
    grant_types TEXT NOT NULL DEFAULT '[]',
    token_endpoint_auth_method TEXT NOT NULL,
    allow_impersonation BOOLEAN NOT NULL DEFAULT 0,
    allow_act_as BOOLEAN NOT NULL DEFAULT 0,
    initiate_login_uri TEXT,
    addons TEXT NOT NULL DEFAULT '{}',
    jwt_configuration TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE client_grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    UNIQUE (client_id, audience)
);

CREATE TABLE roles (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE role_permissions (
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource_server_identifier TEXT NOT NULL,
    permission_name TEXT NOT NULL,
    PRIMARY KEY (role_id, resource_server_identifier, permission_name)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retire_after BIGINT
);

-- One row: the head of the audit chain. Every write transaction updates it first, which
-- serialises appends (and takes SQLite's write lock before any read).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    on_behalf_of TEXT,
    subject_id TEXT,
    client_id TEXT,
    source_ip TEXT,
    description TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_type ON audit_log (event_type, seq);
CREATE INDEX audit_log_subject ON audit_log (subject_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_log_time ON audit_log (occurred_at);
