ALTER TABLE clients DROP COLUMN client_metadata;
ALTER TABLE clients DROP COLUMN logo_uri;
ALTER TABLE clients DROP COLUMN oidc_conformant;
ALTER TABLE clients DROP COLUMN allowed_origins;
ALTER TABLE clients DROP COLUMN web_origins;
