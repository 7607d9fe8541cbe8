//! [`PgKeyStore`]: wrapped subject keys in the table `subject_keys`, shared by every node.
//! An erasure must be committed before it returns; a slot is never handed out twice.
//!
//! Each call is one statement in its own transaction, committed before the
//! call returns, so [`KeyStore::sync`] has nothing left to do. Slots come
//! from the sequence `subject_key_slots`: unique across nodes without a
//! lock, and never reused (an erased slot stays empty), so a key cached by
//! slot can never be mistaken for a later subject's.
//!
//! Erasing a key also writes its slot, the time and the cause to the
//! erasure ledger `erased_key_slots`, in the same statement: after a
//! restore of the records from a backup, the ledger names the people erased
//! since, to be erased again ([`KeyStore::erasures_after`]).
//!
//! The keys may live in the records' database (the default, [`PgStore::key_store`])
//! or in a database of their own ([`PgKeyStore::open`], `storage.keys_url`),
//! which is then migrated with [`KEY_MIGRATIONS`](crate::KEY_MIGRATIONS) only.
//!
//! What a deleted row means physically (dead tuples until VACUUM, the WAL
//! and backups) is in docs/operations.md and docs/privacy.md.

use std::fmt;

use r2d2_postgres::postgres::Client;
use tessera_privacy::{
    Erasure, ErasureCause, KeyStore, KeyStoreError, LedgerRead, WrappedSubjectKey,
};
use tessera_store::StoreError;

use crate::{PgOptions, PgStore, error_detail, off_runtime};

const NONCE_LEN: usize = 12;

/// How old a ledger entry must be before a reader may take it as settled:
/// an erasure commits within one statement, far sooner, so no entry can
/// still appear below one that old (see [`LedgerRead::settled`]).
const SETTLE_SECONDS: i64 = 300;

/// The subject key store in the database of a [`PgStore`] (same pool,
/// same schema). Cheap to clone.
#[derive(Clone)]
pub struct PgKeyStore {
    store: PgStore,
}

impl fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKeyStore")
            .field("target", &self.store.target())
            .finish()
    }
}

impl PgStore {
    /// The subject key store in this store's database and schema.
    pub fn key_store(&self) -> PgKeyStore {
        PgKeyStore {
            store: self.clone(),
        }
    }
}

impl PgKeyStore {
    /// The subject key store in a database of its own (another server, in
    /// practice, with its own backups): its schema gets the key tables and
    /// the erasure ledger, and nothing of the records.
    pub fn open(options: &PgOptions) -> Result<Self, StoreError> {
        Ok(Self {
            store: PgStore::connect(options, crate::migrate::migrate_keys)?,
        })
    }

    /// The database's user, host, port, name and schema (no password).
    pub fn target(&self) -> &str {
        self.store.target()
    }

    fn location(&self) -> String {
        format!("{}, table subject_keys", self.store.target())
    }

    /// Stores `keys` in the slots given (moving a key file into the table:
    /// records name their key by slot), in one transaction, and moves the
    /// slot sequence past the highest. Run again over keys already there
    /// (an interrupted move), it stores only the missing ones. Refused, with
    /// nothing stored, if a slot holds a different key or the table holds a
    /// key in a slot `keys` does not name (another deployment's keys).
    /// Returns how many keys were stored now.
    pub fn import(&self, keys: &[(u64, WrappedSubjectKey)]) -> Result<u64, KeyStoreError> {
        for (_, key) in keys {
            check_length(key)?;
        }
        let mut slots = Vec::with_capacity(keys.len());
        for (slot, _) in keys {
            slots.push(i64::try_from(*slot).map_err(|_| KeyStoreError::Backend {
                location: self.location(),
                action: "store keys in",
                detail: format!("slot {slot} is beyond what the table numbers"),
            })?);
        }
        let nonces: Vec<&[u8]> = keys.iter().map(|(_, k)| k.nonce.as_slice()).collect();
        let ciphertexts: Vec<&[u8]> = keys.iter().map(|(_, k)| k.ciphertext.as_slice()).collect();
        let location = self.location();
        let refused = |detail: String| KeyStoreError::Backend {
            location: location.clone(),
            action: "store keys in",
            detail,
        };
        let outcome = self.with_client("store keys in", |client| {
            let mut tx = client.transaction()?;
            tx.batch_execute("LOCK TABLE subject_keys IN EXCLUSIVE MODE")?;
            let foreign: i64 = tx
                .query_one(
                    "SELECT count(*) FROM subject_keys WHERE slot <> ALL($1)",
                    &[&slots],
                )?
                .get(0);
            if foreign > 0 {
                return Ok(Err(format!(
                    "the table already holds {foreign} keys in slots the key file does not \
                     use (another deployment's keys?); nothing was stored"
                )));
            }
            let stored = tx.execute(
                "INSERT INTO subject_keys (slot, nonce, ciphertext)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])
                 ON CONFLICT (slot) DO NOTHING",
                &[&slots, &nonces, &ciphertexts],
            )?;
            let differing: Option<i64> = tx
                .query_one(
                    "SELECT min(g.slot) FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])
                         AS g(slot, nonce, ciphertext)
                     JOIN subject_keys k USING (slot)
                     WHERE k.nonce <> g.nonce OR k.ciphertext <> g.ciphertext",
                    &[&slots, &nonces, &ciphertexts],
                )?
                .get(0);
            if let Some(slot) = differing {
                return Ok(Err(format!(
                    "slot {slot} already holds a different key; nothing was stored"
                )));
            }
            // The next slot handed out follows every moved one.
            tx.execute(
                "SELECT setval('subject_key_slots', greatest(
                     (SELECT coalesce(max(slot), 0) FROM subject_keys),
                     (SELECT last_value FROM subject_key_slots)))",
                &[],
            )?;
            tx.commit()?;
            Ok(Ok(stored))
        })?;
        outcome.map_err(refused)
    }

    fn with_client<T: Send>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Client) -> Result<T, r2d2_postgres::postgres::Error> + Send,
    ) -> Result<T, KeyStoreError> {
        let location = self.location();
        off_runtime(|| {
            let mut client = self
                .store
                .checkout()
                .map_err(|error| KeyStoreError::Backend {
                    location: location.clone(),
                    action,
                    detail: format!("no connection to the database ({error})"),
                })?;
            work(&mut client).map_err(|error| KeyStoreError::Backend {
                location,
                action,
                detail: format!("PostgreSQL: {}", error_detail(&error)),
            })
        })
    }
}

fn check_length(wrapped: &WrappedSubjectKey) -> Result<(), KeyStoreError> {
    if wrapped.ciphertext.len() != 48 {
        return Err(KeyStoreError::WrongWrappedKeyLength {
            len: wrapped.ciphertext.len(),
        });
    }
    Ok(())
}

fn slot_param(slot: u64) -> Option<i64> {
    i64::try_from(slot).ok()
}

impl KeyStore for PgKeyStore {
    fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError> {
        self.insert_many(std::slice::from_ref(wrapped))?
            .pop()
            .ok_or_else(|| KeyStoreError::Backend {
                location: self.location(),
                action: "store a key in",
                detail: "the database returned no slot".into(),
            })
    }

    fn insert_many(&self, keys: &[WrappedSubjectKey]) -> Result<Vec<u64>, KeyStoreError> {
        for key in keys {
            check_length(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let nonces: Vec<&[u8]> = keys.iter().map(|k| k.nonce.as_slice()).collect();
        let ciphertexts: Vec<&[u8]> = keys.iter().map(|k| k.ciphertext.as_slice()).collect();
        self.with_client("store keys in", move |client| {
            // One statement: each row takes the next number of the
            // sequence, and `ord` gives them back in the order of `keys`.
            let rows = client.query(
                "WITH given AS (
                     SELECT nonce, ciphertext, ord
                     FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS g(nonce, ciphertext, ord)
                 ), numbered AS (
                     SELECT nextval('subject_key_slots') AS slot, nonce, ciphertext, ord
                     FROM (SELECT * FROM given ORDER BY ord) AS ordered
                 ), stored AS (
                     INSERT INTO subject_keys (slot, nonce, ciphertext)
                     SELECT slot, nonce, ciphertext FROM numbered
                     RETURNING slot
                 )
                 SELECT numbered.slot FROM numbered JOIN stored USING (slot) ORDER BY numbered.ord",
                &[&nonces, &ciphertexts],
            )?;
            Ok(rows
                .iter()
                .map(|row| row.get::<_, i64>(0) as u64)
                .collect())
        })
    }

    fn sync(&self) -> Result<(), KeyStoreError> {
        // Every insert committed before it returned.
        Ok(())
    }

    fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError> {
        let Some(param) = slot_param(slot) else {
            return Ok(None);
        };
        let row = self.with_client("read", move |client| {
            client.query_opt(
                "SELECT nonce, ciphertext FROM subject_keys WHERE slot = $1",
                &[&param],
            )
        })?;
        let Some(row) = row else { return Ok(None) };
        let nonce: Vec<u8> = row.get(0);
        let ciphertext: Vec<u8> = row.get(1);
        let nonce: [u8; NONCE_LEN] =
            nonce
                .as_slice()
                .try_into()
                .map_err(|_| KeyStoreError::Backend {
                    location: self.location(),
                    action: "read",
                    detail: format!("slot {slot} holds a {}-byte nonce, not 12", nonce.len()),
                })?;
        Ok(Some(WrappedSubjectKey { nonce, ciphertext }))
    }

    fn erase(&self, slot: u64) -> Result<bool, KeyStoreError> {
        self.erase_for(slot, ErasureCause::Request)
    }

    fn erase_for(&self, slot: u64, cause: ErasureCause) -> Result<bool, KeyStoreError> {
        let Some(param) = slot_param(slot) else {
            return Ok(false);
        };
        let location = self.location();
        off_runtime(|| {
            let erase_error = |detail: String| KeyStoreError::BackendErase {
                location: location.clone(),
                slot,
                detail,
            };
            let mut client = self
                .store
                .checkout()
                .map_err(|error| erase_error(format!("no connection to the database ({error})")))?;
            // One statement, autocommitted: the row is gone for every node,
            // and the ledger names its slot, once this returns; neither
            // without the other.
            let noted = client
                .execute(
                    "WITH gone AS (DELETE FROM subject_keys WHERE slot = $1 RETURNING slot)
                     INSERT INTO erased_key_slots (slot, cause) SELECT slot, $2 FROM gone",
                    &[&param, &cause.as_str()],
                )
                .map_err(|error| erase_error(format!("PostgreSQL: {}", error_detail(&error))))?;
            Ok(noted > 0)
        })
    }

    fn erasures_after(&self, after: u64) -> Result<Option<LedgerRead>, KeyStoreError> {
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let (rows, head) = self.with_client("read the erasure ledger of", move |client| {
            let rows = client.query(
                "SELECT position, slot, (extract(epoch FROM erased_at) * 1000)::bigint, cause,
                        erased_at < now() - make_interval(secs => $2)
                 FROM erased_key_slots WHERE position > $1 ORDER BY position",
                &[&from, &(SETTLE_SECONDS as f64)],
            )?;
            let head: i64 = client
                .query_one(
                    "SELECT coalesce(max(position), 0) FROM erased_key_slots",
                    &[],
                )?
                .get(0);
            Ok((rows, head))
        })?;
        let mut read = LedgerRead {
            entries: Vec::with_capacity(rows.len()),
            settled: after,
            head: u64::try_from(head).unwrap_or(0),
        };
        let mut settling = true;
        for row in &rows {
            let position = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            read.entries.push(Erasure {
                position,
                slot: u64::try_from(row.get::<_, i64>(1)).unwrap_or(u64::MAX),
                erased_at_ms: row.get(2),
                cause: ErasureCause::parse(row.get(3)),
            });
            // Settled up to the first entry that may still have company
            // below it.
            settling = settling && row.get::<_, bool>(4);
            if settling {
                read.settled = position;
            }
        }
        Ok(Some(read))
    }

    fn holds_no_key(&self) -> Result<bool, KeyStoreError> {
        self.with_client("read", |client| {
            let row = client.query_one("SELECT NOT EXISTS (SELECT 1 FROM subject_keys)", &[])?;
            Ok(row.get(0))
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        PgKeyStore::location(self)
    }
}
