//! [`PgKeyStore`]: wrapped subject keys in the table `subject_keys`, shared by every node.
//! An erasure must be committed before it returns; a slot is never handed out twice.
//!
//! Each call is one statement in its own transaction, committed before the
//! call returns, so [`KeyStore::sync`] has nothing left to do. Slots come
//! from the sequence `subject_key_slots`: unique across nodes without a
//! lock, and never reused (an erased slot stays empty), so a key cached by
//! slot can never be mistaken for a later subject's.
//!
//! What a deleted row means physically (dead tuples until VACUUM, the WAL
//! and backups) is in docs/operations.md and docs/privacy.md.

use std::fmt;

use r2d2_postgres::postgres::Client;
use tessera_privacy::{KeyStore, KeyStoreError, WrappedSubjectKey};

use crate::{PgStore, error_detail, off_runtime};

const NONCE_LEN: usize = 12;

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
    fn location(&self) -> String {
        format!("{}, table subject_keys", self.store.target())
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
            // Autocommit: the row is gone for every node once this returns.
            let deleted = client
                .execute("DELETE FROM subject_keys WHERE slot = $1", &[&param])
                .map_err(|error| erase_error(format!("PostgreSQL: {}", error_detail(&error))))?;
            Ok(deleted > 0)
        })
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
