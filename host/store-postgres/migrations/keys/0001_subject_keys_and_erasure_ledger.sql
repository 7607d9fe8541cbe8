-- A key database of its own (storage.keys_url): the wrapped subject keys
-- and the erasure ledger, as in the records' migrations 2 and 3, and
-- nothing of the records. Each object is created only if missing.
--
-- Released migrations are never edited: a change is a new file.

CREATE SEQUENCE IF NOT EXISTS subject_key_slots AS bigint MINVALUE 0 START WITH 0;

CREATE TABLE IF NOT EXISTS subject_keys (
    slot       bigint PRIMARY KEY,
    nonce      bytea  NOT NULL,
    ciphertext bytea  NOT NULL
);

CREATE TABLE IF NOT EXISTS erased_key_slots (
    position  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot      bigint      NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    cause     text        NOT NULL
);
