-- The machine client whose token minted an impersonation session, when one did.
ALTER TABLE sessions ADD COLUMN impersonation_minted_by TEXT;
