//! Audiences: the addresses a destination reaches people at, for a segment
//! exported through a destination connector. Only what the export needs
//! leaves the vault: for each person who consents to the purpose now, one
//! identity value of the kind asked for, and only one that a trusted source
//! asserted (an address someone merely claimed with a public write key is
//! never a place to send a person's data).

use std::collections::BTreeSet;

use crate::error::VaultError;
use crate::normalize::IdentityKind;
use crate::vault::Vault;

/// One person of an audience and where to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The person's root subject.
    pub subject: String,
    /// The normalised identity value (an email address, an E.164 number,
    /// a member id, …).
    pub address: String,
}

/// The audience of a list of subjects, and why the others are not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// One per person, in the order the subjects were given (a merged
    /// subject counts as its root, once).
    pub recipients: Vec<Recipient>,
    /// People who do not consent to the purpose now.
    pub without_consent: u64,
    /// People with no identity of the kind.
    pub without_address: u64,
    /// People whose only identities of the kind no trusted source asserted.
    pub unconfirmed: u64,
    /// Subjects erased or no longer stored.
    pub gone: u64,
}

impl Vault {
    /// Where to reach each of `subjects` (as roots of their merge groups)
    /// by an identity of `kind`, among those who consent to `purpose` now.
    ///
    /// A person's address is the smallest trusted identity value of the kind
    /// in their merge group (so that the same person gets the same address
    /// on every export). Not audited: the caller records the export.
    pub fn audience(
        &self,
        tenant: &str,
        subjects: &[String],
        kind: &IdentityKind,
        purpose: &str,
    ) -> Result<Audience, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.check_purpose(&tenant, purpose)?;
        let label = kind.label();
        let mut out = Audience::default();
        let mut seen = BTreeSet::new();
        for subject in subjects {
            let root = match self.load_root(&tenant, subject) {
                Ok(root) => root,
                Err(VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. }) => {
                    out.gone += 1;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if !seen.insert(root.id.clone()) {
                continue;
            }
            let group = self.load_group(&tenant, root)?;
            if !self.group_consents(&tenant, &group, purpose)? {
                out.without_consent += 1;
                continue;
            }
            let mut any = false;
            let mut trusted: Option<&String> = None;
            for member in &group {
                for identity in member
                    .profile
                    .identities
                    .iter()
                    .filter(|(l, _)| *l == label)
                {
                    any = true;
                    if !member.profile.untrusted.contains(identity)
                        && trusted.is_none_or(|t| identity.1 < *t)
                    {
                        trusted = Some(&identity.1);
                    }
                }
            }
            let trusted = trusted.cloned();
            match trusted {
                Some(address) => out.recipients.push(Recipient {
                    subject: group[0].id.clone(),
                    address,
                }),
                None if any => out.unconfirmed += 1,
                None => out.without_address += 1,
            }
        }
        Ok(out)
    }
}
