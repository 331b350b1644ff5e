ALTER TABLE signing_keys DROP COLUMN certificate_pem;
