-- When a second redemption of the code was detected: the mark the winning exchange
-- checks after recording its tokens (reuse detection across nodes).
ALTER TABLE authorization_codes ADD COLUMN replayed_at BIGINT;
