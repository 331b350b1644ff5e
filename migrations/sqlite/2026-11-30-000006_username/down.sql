DROP INDEX users_username;
ALTER TABLE users DROP COLUMN username;
