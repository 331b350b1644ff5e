ALTER TABLE clients DROP COLUMN backchannel_logout_session_required;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
DROP TABLE session_clients;
DROP TABLE outbox;
DROP TABLE webhooks;
