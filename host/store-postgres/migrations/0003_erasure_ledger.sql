-- The erasure ledger (docs/operations.md, "Backups, restores and erasure"):
-- one row per destroyed subject key, written in the statement that deletes
-- the key. It holds nothing personal: the slot, when, and why. When the
-- subject keys live in a database of their own (storage.keys_url), the
-- ledger that counts is that database's, and this table stays empty.
--
-- The index finds the subjects that name a slot, so that after a restore
-- of the records from a backup the people erased since are erased again
-- without reading every subject.

CREATE TABLE erased_key_slots (
    position  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot      bigint      NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    cause     text        NOT NULL
);

CREATE INDEX subjects_by_key ON subjects (tenant, wrapped_key);
