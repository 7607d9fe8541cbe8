-- Wrapped subject keys, shared by every node (docs/operations.md, "Subject
-- keys on PostgreSQL"). A slot is a number handed out once by the sequence,
-- never reused; erasing a subject deletes its row. The table is apart from
-- the records so that an operator can see, vacuum and back it up on its own;
-- it is keyed by slot, not tenant (records name their key by slot).

CREATE SEQUENCE subject_key_slots AS bigint MINVALUE 0 START WITH 0;

CREATE TABLE subject_keys (
    slot       bigint PRIMARY KEY,
    nonce      bytea  NOT NULL,
    ciphertext bytea  NOT NULL
);
