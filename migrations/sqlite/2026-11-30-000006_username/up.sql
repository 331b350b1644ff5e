-- Users may have a username: a second login identifier, unique when present (NULLs
-- do not collide), stored lower-cased.
ALTER TABLE users ADD COLUMN username TEXT;
CREATE UNIQUE INDEX users_username ON users (username);
