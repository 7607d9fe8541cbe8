//! The manifest of a bundle: who publishes it, and for each plugin what it
//! is, which contract it was built against, what it asks for and which
//! component holds it. A data model only: the permissions and limits it
//! requests are granted (or not) by the operator when a bundle is installed.

use serde::{Deserialize, Serialize};

use crate::BundleError;

/// Most plugins in one bundle.
pub const MAX_PLUGINS: usize = 16;
/// Most entries in any one list of a manifest (traits, events, hosts, parameters…).
pub const MAX_LIST: usize = 256;
/// Longest name, version, host or identifier, in bytes.
pub const MAX_NAME: usize = 64;
/// Longest free text (descriptions), in bytes.
pub const MAX_TEXT: usize = 4096;

/// The manifest as stored in a bundle: each plugin names its component by
/// digest and size. `C` is what a plugin points at: [`ComponentRef`] in a
/// bundle, a file name in the source manifest `tessera bundle build` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest<C = ComponentRef> {
    /// Who publishes the bundle (shown to operators; trust comes from the key, not this name).
    pub publisher: String,
    /// The bundle's version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// The plugins, in the order their components are stored.
    pub plugins: Vec<PluginEntry<C>>,
}

/// The source manifest `tessera bundle build` reads: each plugin names its
/// component file, relative to the build directory.
pub type SourceManifest = Manifest<String>;

/// One plugin of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry<C = ComponentRef> {
    /// Lowercase letters, digits and `-`, starting with a letter; unique in the bundle.
    pub name: String,
    /// The world the component implements.
    pub kind: Kind,
    /// The contract version the component was built against (e.g. `0.1.0`).
    pub wit_version: String,
    #[serde(default)]
    pub description: String,
    /// The component: its file (source manifest) or its digest (bundle).
    pub component: C,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub limits: RequestedLimits,
    /// The parameters the plugin accepts, as its `describe` reports them.
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
}

/// Which component a plugin is, in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// SHA-256 of the component's bytes, lowercase hex.
    pub sha256: String,
    /// Length of the component in bytes.
    pub size: u64,
}

/// The three plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Connector,
    Segment,
    Strategy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connector => "connector",
            Kind::Segment => "segment",
            Kind::Strategy => "strategy",
        }
    }

    pub(crate) fn runtime(self) -> tessera_runtime::PluginKind {
        match self {
            Kind::Connector => tessera_runtime::PluginKind::Connector,
            Kind::Segment => tessera_runtime::PluginKind::Segment,
            Kind::Strategy => tessera_runtime::PluginKind::Strategy,
        }
    }
}

/// What a plugin asks to see and do. Nothing here is granted by being
/// asked for: the operator grants all or part of it at installation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Permissions {
    /// Profile trait names the plugin reads.
    #[serde(default)]
    pub traits: Vec<String>,
    /// Event types the plugin reads.
    #[serde(default)]
    pub events: Vec<String>,
    /// PII classes the plugin needs (never implied by a trait name).
    #[serde(default)]
    pub pii: Vec<PiiClass>,
    /// Purposes the plugin processes data for; it only sees subjects who
    /// consented to them.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Hosts a connector calls (connectors only): `name[:port]` over HTTPS,
    /// `http://name[:port]` over plain HTTP.
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// Bytes of plugin state (0: none).
    #[serde(default)]
    pub state_quota: u64,
}

/// Classes of personal data a plugin can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PiiClass {
    Email,
    Phone,
    Name,
    Address,
    BirthDate,
    Location,
    DeviceId,
    IpAddress,
    /// Health, religion, ethnicity, sexual orientation, gender and the other
    /// special categories of personal data.
    SpecialCategory,
}

impl PiiClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiClass::Email => "email",
            PiiClass::Phone => "phone",
            PiiClass::Name => "name",
            PiiClass::Address => "address",
            PiiClass::BirthDate => "birth-date",
            PiiClass::Location => "location",
            PiiClass::DeviceId => "device-id",
            PiiClass::IpAddress => "ip-address",
            PiiClass::SpecialCategory => "special-category",
        }
    }
}

/// Limits a plugin asks for; absent ones take the host's defaults. The
/// operator may lower them, and the host's caps bound them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestedLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_base: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_unit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_base_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_per_unit_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
}

/// The type of a parameter (the contract's `value-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueKind {
    Boolean,
    Integer,
    Number,
    Text,
    Timestamp,
    TextList,
}

/// One parameter a plugin accepts (the contract's `param-spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ValueKind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

fn invalid(message: String) -> BundleError {
    BundleError::InvalidManifest(message)
}

/// `a-z`, `0-9`, `-`, starting with a letter, at most [`MAX_NAME`] bytes.
fn check_name(what: &str, name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} `{name}` must be 1-{MAX_NAME} lowercase letters, digits or `-`, starting with a letter"
        )))
    }
}

/// An identifier as used for traits, events, purposes and parameters:
/// ASCII letters, digits, `_`, `-`, `.`, `:`, at most [`MAX_NAME`] bytes.
fn check_ident(what: &str, name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} `{}` must be 1-{MAX_NAME} ASCII letters, digits, `_`, `-`, `.` or `:`",
            name.escape_debug()
        )))
    }
}

/// `MAJOR.MINOR.PATCH`, each a decimal number without leading zeros.
fn check_version(what: &str, version: &str) -> Result<(), BundleError> {
    let parts: Vec<&str> = version.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 9
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} `{}` must be MAJOR.MINOR.PATCH",
            version.escape_debug()
        )))
    }
}

/// A DNS host name (lowercase) with an optional `:port`: no path or wildcard
/// (a connector is granted exact hosts, so that the operator sees every host
/// it may reach). The only scheme is an explicit `http://`, for a host
/// reached over plain HTTP (a webhook receiver on a private link); without
/// it a host is reached over HTTPS only.
fn check_host(host: &str) -> Result<(), BundleError> {
    let bare = host.strip_prefix("http://").unwrap_or(host);
    let (name, port) = match bare.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (bare, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "outbound host `{}` must be a lowercase DNS name with an optional :port, without \
             path or wildcard, and with no scheme but `http://` for plain HTTP (list each host \
             the connector calls)",
            host.escape_debug()
        )))
    }
}

fn check_text(what: &str, text: &str) -> Result<(), BundleError> {
    if text.len() > MAX_TEXT {
        return Err(invalid(format!("{what} is longer than {MAX_TEXT} bytes")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(format!("{what} has control characters")));
    }
    Ok(())
}

fn check_list<T>(what: &str, list: &[T]) -> Result<(), BundleError> {
    if list.len() > MAX_LIST {
        return Err(invalid(format!("{what} has more than {MAX_LIST} entries")));
    }
    Ok(())
}

impl<C> Manifest<C> {
    /// Checks everything that does not depend on the components: names,
    /// versions, lists and which permissions a kind may ask for.
    pub fn validate(&self) -> Result<(), BundleError> {
        if self.publisher.trim().is_empty() || self.publisher.len() > MAX_NAME * 2 {
            return Err(invalid(format!(
                "publisher must be 1-{} bytes",
                MAX_NAME * 2
            )));
        }
        check_text("publisher", &self.publisher)?;
        check_version("bundle version", &self.version)?;
        if self.plugins.is_empty() {
            return Err(invalid("a bundle holds at least one plugin".into()));
        }
        if self.plugins.len() > MAX_PLUGINS {
            return Err(invalid(format!(
                "a bundle holds at most {MAX_PLUGINS} plugins"
            )));
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            check_name("plugin name", &plugin.name)?;
            if self.plugins[..i].iter().any(|p| p.name == plugin.name) {
                return Err(invalid(format!("two plugins are named `{}`", plugin.name)));
            }
            plugin.validate()?;
        }
        Ok(())
    }
}

impl<C> PluginEntry<C> {
    fn validate(&self) -> Result<(), BundleError> {
        let name = &self.name;
        check_version(&format!("{name}: wit_version"), &self.wit_version)?;
        check_text(&format!("{name}: description"), &self.description)?;
        let p = &self.permissions;
        check_list(&format!("{name}: traits"), &p.traits)?;
        check_list(&format!("{name}: events"), &p.events)?;
        check_list(&format!("{name}: purposes"), &p.purposes)?;
        check_list(&format!("{name}: outbound_hosts"), &p.outbound_hosts)?;
        check_list(&format!("{name}: parameters"), &self.parameters)?;
        for t in &p.traits {
            check_ident(&format!("{name}: trait"), t)?;
        }
        for e in &p.events {
            check_ident(&format!("{name}: event type"), e)?;
        }
        for purpose in &p.purposes {
            check_ident(&format!("{name}: purpose"), purpose)?;
        }
        if !p.outbound_hosts.is_empty() && self.kind != Kind::Connector {
            return Err(invalid(format!(
                "{name}: only connectors may ask for outbound hosts; this is a {}",
                self.kind.as_str()
            )));
        }
        for host in &p.outbound_hosts {
            check_host(host)?;
        }
        for (i, param) in self.parameters.iter().enumerate() {
            check_ident(&format!("{name}: parameter"), &param.name)?;
            check_text(
                &format!("{name}: parameter {}", param.name),
                &param.description,
            )?;
            check_list(&format!("{name}: choices"), &param.choices)?;
            if self.parameters[..i].iter().any(|q| q.name == param.name) {
                return Err(invalid(format!(
                    "{name}: two parameters are named `{}`",
                    param.name
                )));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// The plugin entries' component digests must be well-formed.
    pub(crate) fn validate_components(&self) -> Result<(), BundleError> {
        for plugin in &self.plugins {
            let ok = plugin.component.sha256.len() == 64
                && plugin
                    .component
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(invalid(format!(
                    "{}: component.sha256 must be 64 lowercase hex digits",
                    plugin.name
                )));
            }
        }
        Ok(())
    }
}
