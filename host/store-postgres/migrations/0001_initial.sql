-- Tessera storage schema, migration 1: every record family of the Store
-- trait and the plugin state of the StateStore trait.
--
-- Released migrations are never edited: a change is a new file.
--
-- Ids, hashes, keys and values are bytea: the store holds what it is given
-- (ciphertexts, keyed hashes, opaque ids), bytea compares byte by byte as
-- sled's keys do, and it holds any byte an id may contain. Every table but
-- `tenants` and `jobs` begins its primary key with `tenant`, the
-- distribution column for Citus (docs/operations.md); per-subject tables
-- follow it with `subject`.

CREATE TABLE tenants (
    tenant      bytea PRIMARY KEY,
    wrapped_key bytea NOT NULL,
    settings    bytea NOT NULL
);

CREATE TABLE subjects (
    tenant        bytea  NOT NULL,
    subject       bytea  NOT NULL,
    wrapped_key   bytea  NOT NULL,
    created_at_ms bigint NOT NULL,
    data          bytea  NOT NULL,
    PRIMARY KEY (tenant, subject)
);

-- Identity hash -> subject; the second index lists a subject's hashes.
CREATE TABLE identities (
    tenant  bytea NOT NULL,
    hash    bytea NOT NULL,
    subject bytea NOT NULL,
    PRIMARY KEY (tenant, hash)
);
CREATE INDEX identities_by_subject ON identities (tenant, subject, hash);

CREATE TABLE suppressions (
    tenant bytea NOT NULL,
    hash   bytea NOT NULL,
    entry  bytea NOT NULL,
    PRIMARY KEY (tenant, hash)
);

-- Orders events and consents of equal time in the order they were appended.
CREATE SEQUENCE append_order AS bigint;

-- The unique (tenant, source_id) makes ingestion idempotent within a tenant.
CREATE TABLE events (
    tenant    bytea  NOT NULL,
    subject   bytea  NOT NULL,
    at_ms     bigint NOT NULL,
    seq       bigint NOT NULL,
    source_id bytea  NOT NULL,
    data      bytea  NOT NULL,
    PRIMARY KEY (tenant, subject, at_ms, seq),
    UNIQUE (tenant, source_id)
);

CREATE TABLE consents (
    tenant  bytea  NOT NULL,
    subject bytea  NOT NULL,
    at_ms   bigint NOT NULL,
    seq     bigint NOT NULL,
    data    bytea  NOT NULL,
    PRIMARY KEY (tenant, subject, at_ms, seq)
);

-- The audit trail: entries keyed by (tenant, seq), and each tenant's head,
-- which appends move on by compare-and-set and which never goes back.
CREATE TABLE audit (
    tenant bytea  NOT NULL,
    seq    bigint NOT NULL CHECK (seq >= 1),
    entry  bytea  NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE audit_heads (
    tenant bytea  PRIMARY KEY,
    head   bigint NOT NULL CHECK (head >= 1)
);

CREATE TABLE documents (
    tenant bytea NOT NULL,
    kind   bytea NOT NULL,
    id     bytea NOT NULL,
    value  bytea NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);

-- Plugin state, and per scope its version (-1: retired) and usage in bytes.
CREATE TABLE plugin_state (
    tenant bytea NOT NULL,
    plugin bytea NOT NULL,
    key    bytea NOT NULL,
    value  bytea NOT NULL,
    PRIMARY KEY (tenant, plugin, key)
);
CREATE TABLE plugin_scopes (
    tenant  bytea  NOT NULL,
    plugin  bytea  NOT NULL,
    version bigint NOT NULL,
    usage   bigint NOT NULL,
    PRIMARY KEY (tenant, plugin)
);

-- Background jobs, claimed with FOR UPDATE SKIP LOCKED; a lease is a worker
-- and the time it ends.
CREATE TABLE jobs (
    id             bytea   PRIMARY KEY,
    kind           bytea   NOT NULL,
    not_before_ms  bigint  NOT NULL,
    payload        bytea   NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    lease_worker   bytea,
    lease_until_ms bigint
);
CREATE INDEX jobs_due ON jobs (kind, not_before_ms, id);
