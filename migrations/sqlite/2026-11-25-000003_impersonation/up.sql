-- Impersonation: bewit keys (rotating, shared by every node) and the replay store that
-- makes each impersonation URL single-use across the cluster.

CREATE TABLE bewit_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    key_material TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE bewit_redemptions (
    jti TEXT PRIMARY KEY NOT NULL,
    redeemed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sessions_impersonator ON sessions (impersonator_id);
