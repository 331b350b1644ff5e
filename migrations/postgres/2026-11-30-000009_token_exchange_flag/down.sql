ALTER TABLE clients DROP COLUMN allow_token_exchange;
