DROP INDEX sessions_impersonator;
DROP TABLE bewit_redemptions;
DROP TABLE bewit_keys;
