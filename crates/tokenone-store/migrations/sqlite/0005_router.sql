-- What routing would have saved on calls delivered natively in shadow mode.
ALTER TABLE calls ADD COLUMN shadow_savings_tokens BIGINT NOT NULL DEFAULT 0;
