-- The outbox: deliveries (webhooks, email notices, back-channel and SAML logouts)
-- written in the transaction of the audited change that causes them, then delivered
-- by a worker, one attempt at a time across nodes (a lease), with retries and backoff.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    -- whsec_<base64>: the Standard Webhooks signing secret (needed to sign, so kept).
    secret TEXT NOT NULL,
    -- JSON array of event types; empty: every event type.
    event_types TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    -- The message id (webhook-id, logout token jti), the same on every attempt.
    id TEXT PRIMARY KEY NOT NULL,
    -- webhook, email, backchannel_logout, saml_logout
    kind TEXT NOT NULL,
    -- The webhook id, the client id, or the user id an email goes to.
    target TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The audit event that caused it, when one did.
    audit_seq BIGINT,
    payload TEXT NOT NULL,
    -- pending, delivered, failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    -- While an attempt is under way: until when it holds the row.
    leased_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_target ON outbox (target, created_at);

-- Which clients a browser session logged into (back-channel and SAML logout).
CREATE TABLE session_clients (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    -- For SAML logins: the NameID asserted (a transient one cannot be recomputed).
    saml_name_id TEXT,
    saml_name_id_format TEXT,
    PRIMARY KEY (sid, client_id)
);

ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;
