-- The read cache's epoch (crates/guise-store/src/read_cache.rs): every change to a
-- client or a client grant, by this process or any other on the same file (the guise
-- CLI next to a running server), moves it in the same transaction. A node serves a
-- cached client or grant only while the epoch it read is the one the entry was
-- loaded under.
CREATE TABLE cache_epoch (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO cache_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER clients_cache_insert AFTER INSERT ON clients
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER clients_cache_update AFTER UPDATE ON clients
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER clients_cache_delete AFTER DELETE ON clients
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER client_grants_cache_insert AFTER INSERT ON client_grants
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER client_grants_cache_update AFTER UPDATE ON client_grants
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER client_grants_cache_delete AFTER DELETE ON client_grants
BEGIN UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1; END;
