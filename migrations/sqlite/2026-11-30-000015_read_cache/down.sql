DROP TRIGGER client_grants_cache_delete;
DROP TRIGGER client_grants_cache_update;
DROP TRIGGER client_grants_cache_insert;
DROP TRIGGER clients_cache_delete;
DROP TRIGGER clients_cache_update;
DROP TRIGGER clients_cache_insert;
DROP TABLE cache_epoch;
