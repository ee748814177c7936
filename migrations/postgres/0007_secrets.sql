-- Each tenant's secrets: what `env("NAME")` reads in its jobs. Values are encrypted with the
-- host's key (XChaCha20-Poly1305; the associated data binds a row to its tenant and name), so
-- the database alone never shows one. `key_id` names the key a row was encrypted with (the
-- first 8 hex digits of the key's SHA-256), so rotated keys can still decrypt old rows;
-- `nonce` and `ciphertext` are base64.
CREATE TABLE secrets (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
