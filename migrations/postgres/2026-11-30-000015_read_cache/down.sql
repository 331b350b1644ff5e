DROP TRIGGER client_grants_cache ON client_grants;
DROP TRIGGER clients_cache ON clients;
DROP FUNCTION guise_cache_changed();
DROP TABLE cache_epoch;
