//! Signed plugin bundles: one file holding a manifest, the components it
//! names, and a publisher's ed25519 signature over a canonical digest of
//! both. [`Bundle::verify`] fails closed and says why: a bundle is accepted
//! only when its contents are the ones a trusted publisher signed.
//!
//! The container (docs/plugins.md, "Bundle format"):
//!
//! ```text
//! header   magic "\x89TSB\r\n\x1a\n" · format u16 = 1 · total length u64   (little-endian)
//! section  tag u8 · length u32 · body
//!   1 manifest   JSON (exactly one, first)
//!   2 component  name length u8 · name · SHA-256 of the bytes (32) · bytes  (one per plugin, in manifest order)
//!   3 signature  public key (32) · digest (32) · ed25519 signature (64)      (at most one, last)
//! ```

mod keys;
mod manifest;

use ed25519_dalek::Signature;
use sha2::{Digest as _, Sha256};
use tessera_runtime::{detect_kind, detect_version};

pub use keys::{PUBLIC_PREFIX, PublicKey, PublisherKey, SECRET_PREFIX};
pub use manifest::{
    ComponentRef, Kind, MAX_LIST, MAX_NAME, MAX_PLUGINS, MAX_TEXT, Manifest, ParamSpec,
    Permissions, PiiClass, PluginEntry, RequestedLimits, SourceManifest, ValueKind,
};

/// The first bytes of every bundle. The high byte and the CR LF / EOF bytes
/// catch a file mangled by a text-mode transfer, as PNG's do.
pub const MAGIC: [u8; 8] = *b"\x89TSB\r\n\x1a\n";
/// The container format this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Largest bundle file.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;
/// Largest manifest.
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;
/// Largest component.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

const HEADER_LEN: usize = 8 + 2 + 8;
const SECTION_HEADER_LEN: usize = 1 + 4;
const TAG_MANIFEST: u8 = 1;
const TAG_COMPONENT: u8 = 2;
const TAG_SIGNATURE: u8 = 3;
const SIGNATURE_BODY_LEN: usize = 32 + 32 + 64;
const DIGEST_DOMAIN: &[u8] = b"tessera-bundle/v1 digest\0";
const SIGNATURE_DOMAIN: &[u8] = b"tessera-bundle/v1 signature\0";

/// Why a bundle was refused or could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file ends before the length its header (or a section) declares.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The file is not a well-formed bundle.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A size limit would be exceeded (checked before anything is allocated).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The manifest is not valid (fields, names, versions, permissions).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A component is not what the manifest says it is (kind, WIT version).
    #[error("component does not match the manifest: {0}")]
    ComponentMismatch(String),
    /// The bundle carries no signature.
    #[error("unsigned: the bundle carries no publisher signature")]
    Unsigned,
    /// Bytes changed after signing: the manifest, or a component in place.
    #[error("tampered: {0}")]
    Tampered(String),
    /// A whole, intact component that is not the one the signed manifest
    /// lists (taken from another bundle or another version).
    #[error(
        "component swapped: plugin `{plugin}` carries a component with SHA-256 {found}, \
         but the manifest lists {expected}"
    )]
    ComponentSwapped {
        plugin: String,
        expected: String,
        found: String,
    },
    /// The signature does not verify under the key the bundle names.
    #[error("wrong key: the signature does not verify under the publisher key {key_id} it names")]
    WrongKey { key_id: String },
    /// A valid signature by a key that is not trusted.
    #[error("unknown publisher: signed by key {key_id}, which is not a trusted publisher key")]
    UnknownPublisher { key_id: String },
    /// A key could not be read or made.
    #[error("bad key: {0}")]
    BadKey(String),
}

impl BundleError {
    /// A short name for the reason (`tampered`, `wrong-key`, …), for
    /// messages and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::Truncated(_) => "truncated",
            BundleError::Malformed(_) => "malformed",
            BundleError::TooLarge(_) => "too-large",
            BundleError::InvalidManifest(_) => "invalid-manifest",
            BundleError::ComponentMismatch(_) => "component-mismatch",
            BundleError::Unsigned => "unsigned",
            BundleError::Tampered(_) => "tampered",
            BundleError::ComponentSwapped { .. } => "component-swapped",
            BundleError::WrongKey { .. } => "wrong-key",
            BundleError::UnknownPublisher { .. } => "unknown-publisher",
            BundleError::BadKey(_) => "bad-key",
        }
    }
}

/// One component as stored: its name (the plugin's), the SHA-256 recorded
/// next to it, and its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub recorded_sha256: [u8; 32],
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("sha256", &hex::encode(self.recorded_sha256))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The signature block: who signed, what, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlock {
    /// The publisher key the bundle names (not yet trusted or checked).
    pub public_key: [u8; 32],
    /// The canonical digest that was signed.
    pub digest: [u8; 32],
    pub signature: [u8; 64],
}

impl SignatureBlock {
    /// The short id of the named key, if the bytes are a key at all.
    pub fn key_id(&self) -> Option<String> {
        PublicKey::from_bytes(&self.public_key)
            .ok()
            .map(|k| k.key_id())
    }
}

/// A bundle as read from a file or just built: not trusted until verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    manifest_bytes: Vec<u8>,
    components: Vec<Component>,
    signature: Option<SignatureBlock>,
}

/// What verification accepted.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// The trusted key that signed it; `None` for an unsigned bundle accepted
    /// under the development flag.
    pub publisher_key: Option<PublicKey>,
}

impl Verified {
    /// Whether the bundle was accepted without a signature (development only).
    pub fn is_unsigned(&self) -> bool {
        self.publisher_key.is_none()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The canonical digest: SHA-256 over a domain label, the manifest bytes
/// and each component's name and SHA-256, in stored order, every field
/// length-prefixed.
fn canonical_digest<'a>(
    manifest: &[u8],
    components: impl ExactSizeIterator<Item = (&'a str, [u8; 32])>,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_DOMAIN);
    hasher.update((manifest.len() as u64).to_le_bytes());
    hasher.update(manifest);
    hasher.update((components.len() as u64).to_le_bytes());
    for (name, digest) in components {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(digest);
    }
    hasher.finalize().into()
}

fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(digest);
    message
}

/// A cursor over the file that checks every length against what is left
/// before it hands out a slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BundleError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(BundleError::Malformed(format!(
                "{what} at offset {} claims {n} bytes, but only {left} are left",
                self.at
            )));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

impl Bundle {
    /// Builds an unsigned bundle from a source manifest and the bytes of
    /// each plugin's component, in manifest order. Checks the manifest, the
    /// size limits, and that each component is the kind and contract version
    /// the manifest says.
    pub fn build(source: SourceManifest, components: Vec<Vec<u8>>) -> Result<Bundle, BundleError> {
        source.validate()?;
        if components.len() != source.plugins.len() {
            return Err(BundleError::InvalidManifest(format!(
                "{} plugins but {} components",
                source.plugins.len(),
                components.len()
            )));
        }
        let mut plugins = Vec::with_capacity(source.plugins.len());
        let mut stored = Vec::with_capacity(components.len());
        for (plugin, bytes) in source.plugins.into_iter().zip(components) {
            if bytes.len() > MAX_COMPONENT_BYTES {
                return Err(BundleError::TooLarge(format!(
                    "the component of `{}` is {} bytes; the limit is {MAX_COMPONENT_BYTES}",
                    plugin.name,
                    bytes.len()
                )));
            }
            check_component(&plugin.name, plugin.kind, &plugin.wit_version, &bytes)?;
            let digest = sha256(&bytes);
            let entry = PluginEntry {
                name: plugin.name,
                kind: plugin.kind,
                wit_version: plugin.wit_version,
                description: plugin.description,
                component: ComponentRef {
                    sha256: hex::encode(digest),
                    size: bytes.len() as u64,
                },
                permissions: plugin.permissions,
                limits: plugin.limits,
                parameters: plugin.parameters,
            };
            stored.push(Component {
                name: entry.name.clone(),
                recorded_sha256: digest,
                bytes,
            });
            plugins.push(entry);
        }
        let manifest = Manifest {
            publisher: source.publisher,
            version: source.version,
            plugins,
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
        if manifest_bytes.len() > MAX_MANIFEST_BYTES {
            return Err(BundleError::TooLarge(format!(
                "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                manifest_bytes.len()
            )));
        }
        let bundle = Bundle {
            manifest_bytes,
            components: stored,
            signature: None,
        };
        let total = bundle.encoded_len();
        if total > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge(format!(
                "the bundle would be {total} bytes; the limit is {MAX_BUNDLE_BYTES}"
            )));
        }
        Ok(bundle)
    }

    /// Parses a bundle file. Checks the framing and every length (before
    /// anything is copied) but trusts nothing: call [`Bundle::verify`].
    pub fn read(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(bytes) {
                BundleError::Truncated(format!(
                    "{} bytes, shorter than the bundle header",
                    bytes.len()
                ))
            } else {
                BundleError::Malformed("not a Tessera bundle (wrong magic bytes)".into())
            });
        }
        if bytes[..MAGIC.len()] != MAGIC {
            return Err(BundleError::Malformed(
                "not a Tessera bundle (wrong magic bytes)".into(),
            ));
        }
        if bytes.len() < HEADER_LEN {
            return Err(BundleError::Truncated(format!(
                "{} bytes, shorter than the bundle header",
                bytes.len()
            )));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(BundleError::Malformed(format!(
                "bundle format {version}; this Tessera reads format {FORMAT_VERSION}"
            )));
        }
        let mut total = [0u8; 8];
        total.copy_from_slice(&bytes[10..18]);
        let total = u64::from_le_bytes(total);
        if total > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge(format!(
                "the header declares {total} bytes; the limit is {MAX_BUNDLE_BYTES}"
            )));
        }
        if (bytes.len() as u64) < total {
            return Err(BundleError::Truncated(format!(
                "the header declares {total} bytes, but the file has {}",
                bytes.len()
            )));
        }
        if (bytes.len() as u64) > total {
            return Err(BundleError::Malformed(format!(
                "{} bytes after the declared end of the bundle",
                bytes.len() as u64 - total
            )));
        }

        let mut reader = Reader {
            bytes,
            at: HEADER_LEN,
        };
        let mut manifest_bytes: Option<Vec<u8>> = None;
        let mut components: Vec<Component> = Vec::new();
        let mut signature = None;
        while !reader.done() {
            let head = reader.take(SECTION_HEADER_LEN, "a section header")?;
            let tag = head[0];
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if signature.is_some() {
                return Err(BundleError::Malformed(
                    "a section after the signature".into(),
                ));
            }
            match tag {
                TAG_MANIFEST => {
                    if manifest_bytes.is_some() || !components.is_empty() {
                        return Err(BundleError::Malformed(
                            "the manifest must be the one first section".into(),
                        ));
                    }
                    if len > MAX_MANIFEST_BYTES {
                        return Err(BundleError::TooLarge(format!(
                            "the manifest section declares {len} bytes; the limit is \
                             {MAX_MANIFEST_BYTES}"
                        )));
                    }
                    manifest_bytes = Some(reader.take(len, "the manifest")?.to_vec());
                }
                TAG_COMPONENT => {
                    if manifest_bytes.is_none() {
                        return Err(BundleError::Malformed(
                            "a component before the manifest".into(),
                        ));
                    }
                    if components.len() == MAX_PLUGINS {
                        return Err(BundleError::TooLarge(format!(
                            "more than {MAX_PLUGINS} components"
                        )));
                    }
                    if len > MAX_COMPONENT_BYTES + 1 + 255 + 32 {
                        return Err(BundleError::TooLarge(format!(
                            "a component section declares {len} bytes; the limit is \
                             {MAX_COMPONENT_BYTES} per component"
                        )));
                    }
                    let body = reader.take(len, "a component section")?;
                    components.push(parse_component(body)?);
                }
                TAG_SIGNATURE => {
                    if len != SIGNATURE_BODY_LEN {
                        return Err(BundleError::Malformed(format!(
                            "a signature section of {len} bytes; it is {SIGNATURE_BODY_LEN}"
                        )));
                    }
                    let body = reader.take(len, "the signature")?;
                    let mut block = SignatureBlock {
                        public_key: [0; 32],
                        digest: [0; 32],
                        signature: [0; 64],
                    };
                    block.public_key.copy_from_slice(&body[..32]);
                    block.digest.copy_from_slice(&body[32..64]);
                    block.signature.copy_from_slice(&body[64..]);
                    signature = Some(block);
                }
                other => {
                    return Err(BundleError::Malformed(format!(
                        "unknown section type {other}"
                    )));
                }
            }
        }
        let manifest_bytes = manifest_bytes
            .ok_or_else(|| BundleError::Malformed("the bundle has no manifest".into()))?;
        if components.is_empty() {
            return Err(BundleError::Malformed("the bundle has no component".into()));
        }
        Ok(Bundle {
            manifest_bytes,
            components,
            signature,
        })
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let total = self.encoded_len();
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        let section = |out: &mut Vec<u8>, tag: u8, len: usize| {
            out.push(tag);
            out.extend_from_slice(&(len as u32).to_le_bytes());
        };
        section(&mut out, TAG_MANIFEST, self.manifest_bytes.len());
        out.extend_from_slice(&self.manifest_bytes);
        for c in &self.components {
            section(&mut out, TAG_COMPONENT, component_body_len(c));
            out.push(c.name.len() as u8);
            out.extend_from_slice(c.name.as_bytes());
            out.extend_from_slice(&c.recorded_sha256);
            out.extend_from_slice(&c.bytes);
        }
        if let Some(sig) = &self.signature {
            section(&mut out, TAG_SIGNATURE, SIGNATURE_BODY_LEN);
            out.extend_from_slice(&sig.public_key);
            out.extend_from_slice(&sig.digest);
            out.extend_from_slice(&sig.signature);
        }
        debug_assert_eq!(out.len() as u64, total);
        out
    }

    fn encoded_len(&self) -> u64 {
        let mut total = (HEADER_LEN + SECTION_HEADER_LEN + self.manifest_bytes.len()) as u64;
        for c in &self.components {
            total += (SECTION_HEADER_LEN + component_body_len(c)) as u64;
        }
        if self.signature.is_some() {
            total += (SECTION_HEADER_LEN + SIGNATURE_BODY_LEN) as u64;
        }
        total
    }

    /// The canonical digest of what is stored now (manifest bytes, and each
    /// component's name and recorded SHA-256).
    pub fn digest(&self) -> [u8; 32] {
        canonical_digest(
            &self.manifest_bytes,
            self.components
                .iter()
                .map(|c| (c.name.as_str(), c.recorded_sha256)),
        )
    }

    /// Signs the bundle with a publisher key, replacing any signature.
    pub fn sign(&mut self, key: &PublisherKey) {
        let digest = self.digest();
        self.signature = Some(SignatureBlock {
            public_key: key.public().to_bytes(),
            digest,
            signature: key.sign(&signed_message(&digest)),
        });
    }

    /// Assembles a bundle from its parts, unchecked: for tools that
    /// repackage bundles and for tests that forge them. Nothing assembled is
    /// trusted until [`Bundle::verify`] accepts it.
    pub fn from_parts(
        manifest_bytes: Vec<u8>,
        components: Vec<Component>,
        signature: Option<SignatureBlock>,
    ) -> Bundle {
        Bundle {
            manifest_bytes,
            components,
            signature,
        }
    }

    pub fn signature(&self) -> Option<&SignatureBlock> {
        self.signature.as_ref()
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The stored manifest bytes.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The manifest, parsed and validated, but not verified: for showing a
    /// bundle, never for trusting one.
    pub fn manifest(&self) -> Result<Manifest, BundleError> {
        let manifest: Manifest = serde_json::from_slice(&self.manifest_bytes)
            .map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
        manifest.validate()?;
        manifest.validate_components()?;
        Ok(manifest)
    }

    /// Verifies a signed bundle against the trusted publisher keys.
    ///
    /// In order: every component's bytes match the SHA-256 recorded next to
    /// them (else [`BundleError::Tampered`]); a signature is present
    /// ([`BundleError::Unsigned`]); the stored contents give the signed
    /// digest ([`BundleError::ComponentSwapped`] if the manifest is the
    /// signed one but a component is not the one it lists, else
    /// [`BundleError::Tampered`]); the signature verifies under the key it
    /// names ([`BundleError::WrongKey`]); that key is trusted
    /// ([`BundleError::UnknownPublisher`]); the manifest is valid and each
    /// component is what the manifest says.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<Verified, BundleError> {
        self.verify_inner(trusted, false)
    }

    /// Like [`Bundle::verify`], but an unsigned bundle is accepted if its
    /// contents are consistent. For development only: callers must say so
    /// loudly. A signed bundle is checked exactly as by `verify`.
    pub fn verify_allowing_unsigned(&self, trusted: &[PublicKey]) -> Result<Verified, BundleError> {
        self.verify_inner(trusted, true)
    }

    fn verify_inner(
        &self,
        trusted: &[PublicKey],
        allow_unsigned: bool,
    ) -> Result<Verified, BundleError> {
        for c in &self.components {
            let actual = sha256(&c.bytes);
            if actual != c.recorded_sha256 {
                return Err(BundleError::Tampered(format!(
                    "the bytes of component `{}` changed (SHA-256 {}, recorded {})",
                    c.name,
                    hex::encode(actual),
                    hex::encode(c.recorded_sha256)
                )));
            }
        }
        let publisher_key = match &self.signature {
            None if allow_unsigned => None,
            None => return Err(BundleError::Unsigned),
            Some(block) => Some(self.check_signature(block, trusted)?),
        };
        let manifest = self.manifest()?;
        self.check_components(&manifest)?;
        Ok(Verified {
            manifest,
            publisher_key,
        })
    }

    fn check_signature(
        &self,
        block: &SignatureBlock,
        trusted: &[PublicKey],
    ) -> Result<PublicKey, BundleError> {
        if self.digest() != block.digest {
            // Is the manifest the signed one, with a component that is not
            // the one it lists? Then the digest over the hashes the manifest
            // lists is the signed digest, and the signature over it holds.
            if let Ok(manifest) = self.manifest()
                && manifest.plugins.len() == self.components.len()
            {
                let listed: Vec<(&str, [u8; 32])> = manifest
                    .plugins
                    .iter()
                    .map(|p| {
                        let mut digest = [0u8; 32];
                        let _ = hex::decode_to_slice(&p.component.sha256, &mut digest);
                        (p.name.as_str(), digest)
                    })
                    .collect();
                let signature_holds = PublicKey::from_bytes(&block.public_key).is_ok_and(|key| {
                    key.0
                        .verify_strict(
                            &signed_message(&block.digest),
                            &Signature::from_bytes(&block.signature),
                        )
                        .is_ok()
                });
                if signature_holds
                    && canonical_digest(&self.manifest_bytes, listed.iter().copied())
                        == block.digest
                {
                    self.check_components(&manifest)?;
                }
            }
            return Err(BundleError::Tampered(
                "the manifest or the list of components changed after signing".into(),
            ));
        }
        let key = PublicKey::from_bytes(&block.public_key).map_err(|_| {
            BundleError::Malformed("the signature names bytes that are not a public key".into())
        })?;
        let signature = Signature::from_bytes(&block.signature);
        key.0
            .verify_strict(&signed_message(&block.digest), &signature)
            .map_err(|_| BundleError::WrongKey {
                key_id: key.key_id(),
            })?;
        if !trusted.contains(&key) {
            return Err(BundleError::UnknownPublisher {
                key_id: key.key_id(),
            });
        }
        Ok(key)
    }

    /// Each stored component is the one the manifest lists for that plugin
    /// (name, order, SHA-256, size), and is the kind and contract version
    /// the manifest says.
    fn check_components(&self, manifest: &Manifest) -> Result<(), BundleError> {
        if manifest.plugins.len() != self.components.len() {
            return Err(BundleError::Malformed(format!(
                "the manifest lists {} plugins, the bundle holds {} components",
                manifest.plugins.len(),
                self.components.len()
            )));
        }
        for (plugin, c) in manifest.plugins.iter().zip(&self.components) {
            if plugin.name != c.name {
                return Err(BundleError::Malformed(format!(
                    "component `{}` stands where the manifest lists plugin `{}`",
                    c.name, plugin.name
                )));
            }
            let found = hex::encode(c.recorded_sha256);
            if plugin.component.sha256 != found || plugin.component.size != c.bytes.len() as u64 {
                return Err(BundleError::ComponentSwapped {
                    plugin: plugin.name.clone(),
                    expected: plugin.component.sha256.clone(),
                    found,
                });
            }
            check_component(&plugin.name, plugin.kind, &plugin.wit_version, &c.bytes)?;
        }
        Ok(())
    }
}

fn component_body_len(c: &Component) -> usize {
    1 + c.name.len() + 32 + c.bytes.len()
}

fn parse_component(body: &[u8]) -> Result<Component, BundleError> {
    let mut reader = Reader { bytes: body, at: 0 };
    let name_len = reader.take(1, "a component name length")?[0] as usize;
    let name = reader.take(name_len, "a component name")?;
    let name = std::str::from_utf8(name)
        .map_err(|_| BundleError::Malformed("a component name is not UTF-8".into()))?
        .to_string();
    let mut recorded_sha256 = [0u8; 32];
    recorded_sha256.copy_from_slice(reader.take(32, "a component digest")?);
    let bytes = &body[reader.at..];
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(BundleError::TooLarge(format!(
            "component `{name}` is {} bytes; the limit is {MAX_COMPONENT_BYTES}",
            bytes.len()
        )));
    }
    Ok(Component {
        name,
        recorded_sha256,
        bytes: bytes.to_vec(),
    })
}

/// A component is the kind and contract version the manifest says, read
/// from its exports and its `tessera:wit-version` marker by the runtime's
/// own readers.
fn check_component(
    name: &str,
    kind: Kind,
    wit_version: &str,
    bytes: &[u8],
) -> Result<(), BundleError> {
    let version = detect_version(bytes)
        .map_err(|e| BundleError::ComponentMismatch(format!("`{name}`: {e}")))?;
    if version.as_str() != wit_version {
        return Err(BundleError::ComponentMismatch(format!(
            "`{name}`: the manifest says WIT version {wit_version}, the component was built \
             against {}",
            version.as_str()
        )));
    }
    match detect_kind(bytes) {
        Some(found) if found == kind.runtime() => Ok(()),
        Some(found) => Err(BundleError::ComponentMismatch(format!(
            "`{name}`: the manifest says {}, the component is a {}",
            kind.as_str(),
            found.as_str()
        ))),
        None => Err(BundleError::ComponentMismatch(format!(
            "`{name}`: the component exports none of the connector, segment or strategy worlds"
        ))),
    }
}

#[cfg(test)]
mod tests;
