//! Sealed tenant-level documents: data of a tenant that holds personal data
//! but belongs to no one subject (an import's dead letters and reports).
//! They are sealed with the tenant's document key, bound to tenant, kind and
//! id; the store never sees them in clear.
//!
//! A subject's erasure does not reach them (they are not under a subject
//! key): whoever keeps such documents expires or purges them.

use tessera_privacy::envelope::{self, DocumentAad};

use crate::error::VaultError;
use crate::normalize::IdentityKind;
use crate::vault::Vault;

impl Vault {
    /// Stores `plain` sealed as the document `kind`/`id` of `tenant`
    /// (replacing one of that name).
    pub fn put_sealed_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        plain: &[u8],
    ) -> Result<(), VaultError> {
        let tenant = self.tenant(tenant)?;
        let aad = DocumentAad {
            tenant: &tenant.id,
            kind,
            id,
        };
        let sealed = envelope::seal_document(&tenant.document_key, &aad, plain)?;
        self.store.put_document(&tenant.id, kind, id, &sealed)?;
        Ok(())
    }

    /// Stores several documents sealed, each `(kind, id, plain)`, all at
    /// once: all of them or none.
    pub fn put_sealed_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), VaultError> {
        self.seal_documents(tenant, documents, |store, tenant, entries| {
            store.put_documents(tenant, entries)
        })
    }

    /// Stores several documents sealed, one after another
    /// ([`tessera_store::Store::put_documents_in_order`]): after an error
    /// or a crash, a document may be stored without those after it, never
    /// without those before it.
    pub fn put_sealed_documents_in_order(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), VaultError> {
        self.seal_documents(tenant, documents, |store, tenant, entries| {
            store.put_documents_in_order(tenant, entries)
        })
    }

    fn seal_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
        put: impl FnOnce(
            &dyn tessera_store::Store,
            &str,
            &[(&str, &str, &[u8])],
        ) -> Result<(), tessera_store::StoreError>,
    ) -> Result<(), VaultError> {
        let tenant = self.tenant(tenant)?;
        let sealed = documents
            .iter()
            .map(|(kind, id, plain)| {
                let aad = DocumentAad {
                    tenant: &tenant.id,
                    kind,
                    id,
                };
                envelope::seal_document(&tenant.document_key, &aad, plain)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entries: Vec<(&str, &str, &[u8])> = documents
            .iter()
            .zip(&sealed)
            .map(|((kind, id, _), sealed)| (*kind, *id, sealed.as_slice()))
            .collect();
        put(self.store.as_ref(), &tenant.id, &entries)?;
        Ok(())
    }

    /// The sealed document `kind`/`id`, opened; `None` if there is none.
    pub fn sealed_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, VaultError> {
        let tenant_id = tenant;
        let Some(sealed) = self.store.document(tenant_id, kind, id)? else {
            return Ok(None);
        };
        self.open_document(tenant_id, kind, id, &sealed).map(Some)
    }

    /// At most `limit` sealed documents of a kind, opened, as `(id, plain)`,
    /// ordered by id, after the id `after` (as [`Store::documents`]).
    ///
    /// [`Store::documents`]: tessera_store::Store::documents
    pub fn sealed_documents(
        &self,
        tenant: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, VaultError> {
        self.store
            .documents(tenant, kind, after, limit)?
            .into_iter()
            .map(|(id, sealed)| {
                let plain = self.open_document(tenant, kind, &id, &sealed)?;
                Ok((id, plain))
            })
            .collect()
    }

    /// Calls `each` with every sealed document of a kind, opened, by id, a
    /// page at a time (so it may delete the document it is given).
    pub fn for_each_sealed_document<E: From<VaultError>>(
        &self,
        tenant: &str,
        kind: &str,
        mut each: impl FnMut(&str, Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut after: Option<String> = None;
        loop {
            let page = self.sealed_documents(tenant, kind, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (id, plain) in page {
                each(&id, plain)?;
            }
        }
    }

    /// At most `limit` sealed documents of a kind whose ids start with
    /// `prefix`, opened, by id, after the id `after` (from the first when
    /// `after` is absent or lacks the prefix).
    pub fn sealed_documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, VaultError> {
        // Only the documents under the prefix are read: a page of a small
        // prefix ends at the first id outside it.
        self.store
            .documents_under(tenant, kind, prefix, after, limit)?
            .into_iter()
            .map(|(id, sealed)| {
                let plain = self.open_document(tenant, kind, &id, &sealed)?;
                Ok((id, plain))
            })
            .collect()
    }

    /// Removes a sealed document; `false` if there was none.
    pub fn delete_sealed_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
    ) -> Result<bool, VaultError> {
        Ok(self.store.delete_document(tenant, kind, id)?)
    }

    /// Whether any of `identities` belongs to an erased person (its keyed
    /// hash is on the suppression list). For data kept outside subject
    /// records, which an erasure does not shred (an import's dead letters):
    /// their keeper removes what names an erased person. Identities that do
    /// not normalise name no one and are skipped.
    pub fn any_suppressed(
        &self,
        tenant: &str,
        identities: &[(IdentityKind, String)],
    ) -> Result<bool, VaultError> {
        let tenant = self.tenant(tenant)?;
        for (kind, raw) in identities {
            let Ok((_, hash)) = tenant.identity(kind, raw) else {
                continue;
            };
            if self.store.suppression(&tenant.id, hash)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn open_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let tenant = self.tenant(tenant)?;
        let aad = DocumentAad {
            tenant: &tenant.id,
            kind,
            id,
        };
        envelope::open_document(&tenant.document_key, &aad, sealed).map_err(|source| {
            VaultError::OpenDocument {
                kind: kind.to_owned(),
                id: id.to_owned(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tessera_privacy::MasterKey;

    use crate::{Actor, TenantSettings, Vault, VaultError};

    #[test]
    fn documents_are_walked_whole_or_by_prefix_and_a_walk_may_delete() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().unwrap(),
        )
        .unwrap();
        let actor = Actor::new("operator", "test");
        vault
            .create_tenant("acme", TenantSettings::default(), &actor)
            .unwrap();
        let mut ids = Vec::new();
        for import in ["a", "b", "c"] {
            for n in 0..300 {
                let id = format!("{import}:{n:04}");
                vault
                    .put_sealed_document("acme", "letter", &id, id.as_bytes())
                    .unwrap();
                ids.push(id);
            }
        }
        // More than a page of `b`, from its start and after one of its ids;
        // an `after` of another prefix starts at the prefix.
        let under = |after: Option<&str>, limit| -> Vec<String> {
            vault
                .sealed_documents_under("acme", "letter", "b:", after, limit)
                .unwrap()
                .into_iter()
                .map(|(id, plain)| {
                    assert_eq!(plain, id.as_bytes());
                    id
                })
                .collect()
        };
        assert_eq!(under(None, 1000), ids[300..600]);
        assert_eq!(under(Some("b:0297"), 10), ["b:0298", "b:0299"]);
        assert_eq!(under(Some("a:0005"), 2), ["b:0000", "b:0001"]);

        // Every document, over several pages, deleting every other one.
        let mut seen = Vec::new();
        vault
            .for_each_sealed_document("acme", "letter", |id, plain| {
                assert_eq!(plain, id.as_bytes());
                seen.push(id.to_owned());
                if seen.len() % 2 == 0 {
                    vault.delete_sealed_document("acme", "letter", id)?;
                }
                Ok::<_, VaultError>(())
            })
            .unwrap();
        assert_eq!(seen, ids);
        let mut left = 0;
        vault
            .for_each_sealed_document("acme", "letter", |_, _| {
                left += 1;
                Ok::<_, VaultError>(())
            })
            .unwrap();
        assert_eq!(left, ids.len() / 2);
    }

    #[test]
    fn a_sealed_document_opens_only_under_its_own_tenant_kind_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().unwrap(),
        )
        .unwrap();
        let actor = Actor::new("operator", "test");
        for tenant in ["acme", "globex"] {
            vault
                .create_tenant(tenant, TenantSettings::default(), &actor)
                .unwrap();
        }
        let plain = b"ana@example.com,2024-02-30";
        vault
            .put_sealed_document("acme", "dead_letter", "i1:1", plain)
            .unwrap();
        let stored = vault
            .store()
            .document("acme", "dead_letter", "i1:1")
            .unwrap()
            .unwrap();
        assert!(!stored.windows(plain.len()).any(|w| w == plain));
        assert_eq!(
            vault
                .sealed_document("acme", "dead_letter", "i1:1")
                .unwrap()
                .unwrap(),
            plain
        );
        for (tenant, kind, id) in [
            ("acme", "dead_letter", "i1:2"),
            ("acme", "import", "i1:1"),
            ("globex", "dead_letter", "i1:1"),
        ] {
            vault
                .store()
                .put_document(tenant, kind, id, &stored)
                .unwrap();
            assert!(
                vault.sealed_document(tenant, kind, id).is_err(),
                "opened as {tenant}/{kind}/{id}"
            );
        }
    }
}
