//! What the registry keeps in the store, per tenant, as documents: the
//! trusted publisher keys, one record per installed plugin with its version
//! history, and each component's bytes by content hash.

use serde::{Deserialize, Serialize};
use tessera_bundle::{Kind, Permissions, RequestedLimits};

/// Document kind of a trusted publisher key (id: the key id).
pub(crate) const KIND_PUBLISHER: &str = "publisher";
/// Document kind of a plugin record (id: the plugin name).
pub(crate) const KIND_PLUGIN: &str = "plugin";
/// Document kind of a component's bytes (id: its SHA-256, hex).
pub(crate) const KIND_COMPONENT: &str = "plugin_component";

/// A publisher key the tenant trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublisherRecord {
    /// The short id bundles name the key by.
    pub key_id: String,
    /// The public key, `tessera-publisher-public:…`.
    pub public_key: String,
    /// Who the operator says this is (shown next to bundles it signed).
    pub name: String,
    pub added_at_ms: i64,
    pub added_by: String,
}

/// One installed plugin of a tenant: every version uploaded for it, which
/// one runs, which one waits for approval, and whether it is quarantined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub kind: Kind,
    /// The host's id of the installation: scopes the plugin's state, and
    /// stays the same across upgrades and rollbacks.
    pub installation: String,
    /// Oldest first.
    pub versions: Vec<VersionRecord>,
    /// Index of the version that runs; `None` until one is approved.
    pub active: Option<usize>,
    /// Index of a version waiting for approval.
    pub pending: Option<usize>,
    /// Set by an operator; calls are refused until released.
    pub quarantine: Option<QuarantineRecord>,
    pub created_at_ms: i64,
}

/// One uploaded version of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The plugin's own version, as its manifest and `describe` report it.
    pub version: String,
    pub bundle_version: String,
    pub publisher: String,
    /// The trusted key that signed the bundle; `None`: accepted unsigned
    /// under the development flag.
    pub key_id: Option<String>,
    /// The bundle's canonical digest, hex.
    pub bundle_digest: String,
    /// SHA-256 of the component, hex (the `plugin_component` document).
    pub component: String,
    pub wit_version: String,
    pub description: String,
    pub requested: Permissions,
    pub requested_limits: RequestedLimits,
    /// What the operator granted; `None` while the version is pending.
    pub granted: Option<Permissions>,
    pub granted_limits: Option<RequestedLimits>,
    pub uploaded_at_ms: i64,
    pub uploaded_by: String,
    pub approved_at_ms: Option<i64>,
    pub approved_by: Option<String>,
}

/// Why and by whom a plugin was quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineRecord {
    pub reason: String,
    pub at_ms: i64,
    pub by: String,
}
