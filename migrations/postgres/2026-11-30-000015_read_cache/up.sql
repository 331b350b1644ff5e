-- The read cache's epoch (crates/guise-store/src/read_cache.rs): every change to a
-- client or a client grant moves it in the same transaction and, at commit, tells every
-- node listening on the channel guise_cache (each node keeps one LISTEN connection and
-- drops its cached clients and grants when told). The same table and column as on
-- SQLite, where the epoch itself is read instead.
CREATE TABLE cache_epoch (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO cache_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION guise_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1;
    PERFORM pg_notify('guise_cache', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER clients_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION guise_cache_changed();
CREATE TRIGGER client_grants_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON client_grants
    FOR EACH STATEMENT EXECUTE FUNCTION guise_cache_changed();
