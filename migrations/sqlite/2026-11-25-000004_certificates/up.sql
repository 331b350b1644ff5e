-- Signing keys carry a self-signed X.509 certificate for SAML and WS-Federation metadata.
ALTER TABLE signing_keys ADD COLUMN certificate_pem TEXT;
