ALTER TABLE sessions DROP COLUMN impersonation_minted_by;
