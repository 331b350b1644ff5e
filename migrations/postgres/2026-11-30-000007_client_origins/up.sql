-- Auth0's client fields: origins for CORS (web_origins) and cross-origin
-- authentication (allowed_origins), the OIDC-conformant flag, a logo and metadata.
ALTER TABLE clients ADD COLUMN web_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN oidc_conformant BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE clients ADD COLUMN logo_uri TEXT;
ALTER TABLE clients ADD COLUMN client_metadata TEXT NOT NULL DEFAULT '{}';
