-- RFC 8693 token exchange is a deliberate switch on the client (allow_token_exchange),
-- no longer implied by listing the grant type; clients that listed it keep it.
ALTER TABLE clients ADD COLUMN allow_token_exchange BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE clients SET allow_token_exchange = TRUE
    WHERE grant_types LIKE '%urn:ietf:params:oauth:grant-type:token-exchange%';
