//! Audiences: people sent through a destination connector, each at an
//! address of theirs (a segment's members exported, a campaign's decisions
//! sent). What every such sender needs of the destination is here once:
//! the grant that bounds what leaves Tessera, and one delivery run per page
//! of people.

use tessera_plugins::{Permissions, PiiClass};
use tessera_runtime::api::records::Action;
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, IdentityKind};

use crate::deliver::{Deliverer, DeliveryError, DeliveryRun, DeliverySpec};

/// The PII class of addresses of `kind`, which a destination must be
/// granted to receive them (member ids and external ids carry none).
fn address_class(kind: &IdentityKind) -> Option<PiiClass> {
    match kind {
        IdentityKind::Email => Some(PiiClass::Email),
        IdentityKind::Phone => Some(PiiClass::Phone),
        IdentityKind::DeviceId => Some(PiiClass::DeviceId),
        IdentityKind::MemberId | IdentityKind::External(_) => None,
    }
}

/// What a destination granted `granted` lacks to receive people processed
/// for `purpose` at addresses of `recipient` (`None`: nothing), in words.
fn refusal(granted: &Permissions, purpose: &str, recipient: &IdentityKind) -> Option<String> {
    if !granted.purposes.iter().any(|p| p == purpose) {
        return Some(format!("purpose {purpose:?}"));
    }
    match address_class(recipient) {
        Some(class) if !granted.pii.contains(&class) => {
            Some(format!("the PII class of {} addresses", recipient.label()))
        }
        _ => None,
    }
}

impl Deliverer {
    /// Checks that the destination connector `connector` may receive an
    /// audience processed for `purpose` and addressed by `recipient`: it
    /// must be granted the purpose and the addresses' PII class (`refused`
    /// turns what it lacks into the caller's error), and take `params`.
    /// Returns the parameters as the connector validated them. Nothing is
    /// read of anyone, nothing is stored.
    pub fn audience_destination<E: From<DeliveryError>>(
        &self,
        tenant: &str,
        connector: &str,
        params: &[FieldValue],
        purpose: &str,
        recipient: &IdentityKind,
        refused: impl FnOnce(String) -> E,
    ) -> Result<Vec<FieldValue>, E> {
        let live = self.destination(tenant, connector)?;
        if let Some(what) = refusal(&live.granted, purpose, recipient) {
            return Err(refused(what));
        }
        Ok(live
            .plugin
            .validate(params)
            .map_err(|e| DeliveryError::Params(e.to_string()))?)
    }

    /// Delivers one page of an audience as one delivery run: the run is
    /// stored ([`Deliverer::begin`]), its id given to `started` (which
    /// notes it in the caller's own record, so that the record names the
    /// run before anything is sent), and its actions sent
    /// ([`Deliverer::finish`]). The run returned is completed: each action
    /// delivered or a dead letter.
    pub fn deliver_page<E: From<DeliveryError>>(
        &self,
        tenant: &str,
        spec: DeliverySpec,
        actions: Vec<Action>,
        actor: &Actor,
        started: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<DeliveryRun, E> {
        let begun = self.begin(tenant, spec, actions, actor)?;
        started(&begun.run().id)?;
        Ok(self.finish(begun)?)
    }
}
