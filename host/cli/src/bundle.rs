//! `tessera bundle` and `tessera keys publisher`: a partner builds and signs
//! a bundle of plugins; an operator inspects and verifies one against the
//! publisher keys they trust. Verification refusals exit 1 and name the
//! reason; bad input (missing files, unreadable keys) exits 2.

use std::io::Read as _;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_bundle::{
    Bundle, BundleError, MAX_BUNDLE_BYTES, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, Manifest,
    PublicKey, PublisherKey, SourceManifest,
};
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Build an unsigned bundle from a directory of components and a manifest
    /// (TOML or JSON); each plugin's `component` is a file in the directory.
    Build(BuildArgs),
    /// Sign a bundle in place with a publisher secret key.
    Sign(SignArgs),
    /// Show a bundle's manifest, permissions and signature (nothing is trusted).
    Inspect(InspectArgs),
    /// Verify a bundle against trusted publisher keys: exit 0 if verified,
    /// 1 if refused (with the reason), 2 on bad input.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory holding the components.
    dir: PathBuf,
    /// The manifest (`.toml` or `.json`) [default: DIR/bundle.toml].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Where to write the bundle.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The bundle, replaced by its signed version.
    bundle: PathBuf,
    /// The publisher secret key file (from `tessera keys publisher new`).
    #[arg(long)]
    key: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    bundle: PathBuf,
    /// A trusted publisher key: a `.pub` file, or the key itself
    /// (`tessera-publisher:<hex>` or 64 hex digits). Repeat for several.
    #[arg(long = "trust", value_name = "KEYFILE_OR_HEX")]
    trust: Vec<String>,
    /// DEVELOPMENT ONLY: accept an unsigned bundle if its contents are
    /// consistent. Signed bundles are checked in full regardless.
    #[arg(long)]
    allow_unsigned: bool,
}

#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Create a publisher key pair: DIR/publisher.key (secret, mode 0600)
    /// and DIR/publisher.pub (the public key operators trust).
    New(NewKeyArgs),
    #[command(flatten)]
    Server(crate::plugin::TrustCommand),
}

#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// The directory to write the key files to (created if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: BundleCommand) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Build(args) => build(&args),
        BundleCommand::Sign(args) => sign(&args),
        BundleCommand::Inspect(args) => inspect(&args),
        BundleCommand::Verify(args) => verify(&args),
    }
}

/// A refusal: the reason on stderr, exit 1.
fn refused(error: &BundleError) -> ExitCode {
    eprintln!("refused ({}): {error}", error.reason());
    ExitCode::from(1)
}

/// Reads a file no longer than `cap` bytes, checking before reading it all.
fn read_capped(path: &Path, cap: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the {what} {}", path.display()))?;
    let len = file.metadata()?.len();
    if len > cap {
        bail!(
            "the {what} {} is {len} bytes; the limit is {cap}",
            path.display()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if bytes.len() as u64 > cap {
        bail!("the {what} {} grew past {cap} bytes", path.display());
    }
    Ok(bytes)
}

fn read_bundle(path: &Path) -> anyhow::Result<Result<Bundle, BundleError>> {
    let bytes = read_capped(path, MAX_BUNDLE_BYTES, "bundle")?;
    Ok(Bundle::read(&bytes))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half a bundle.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn build(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| args.dir.join("bundle.toml"));
    let text = read_capped(&manifest_path, MAX_MANIFEST_BYTES as u64, "manifest")?;
    let text = String::from_utf8(text).context("the manifest is not UTF-8")?;
    let source: SourceManifest = if manifest_path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    } else {
        toml::from_str(&text).map_err(anyhow::Error::from)
    }
    .with_context(|| format!("cannot read the manifest {}", manifest_path.display()))?;
    let mut components = Vec::with_capacity(source.plugins.len());
    for plugin in &source.plugins {
        let relative = Path::new(&plugin.component);
        if !relative
            .components()
            .all(|c| matches!(c, PathComponent::Normal(_)))
        {
            bail!(
                "plugin `{}`: component `{}` must be a path inside {}",
                plugin.name,
                plugin.component,
                args.dir.display()
            );
        }
        components.push(read_capped(
            &args.dir.join(relative),
            MAX_COMPONENT_BYTES as u64,
            "component",
        )?);
    }
    let bundle = Bundle::build(source, components)?;
    write_atomically(&args.out, &bundle.to_bytes())?;
    println!(
        "built {} (unsigned; sign it with `tessera bundle sign`)",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let text = Zeroizing::new(
        std::fs::read_to_string(&args.key)
            .with_context(|| format!("cannot read the key {}", args.key.display()))?,
    );
    let key = PublisherKey::parse(&text)?;
    let mut bundle = match read_bundle(&args.bundle)? {
        Ok(bundle) => bundle,
        Err(error) => return Ok(refused(&error)),
    };
    // Only a bundle whose contents agree with its manifest gets signed.
    if let Err(error) = bundle.manifest().and_then(|_| {
        let mut unsigned = bundle.clone();
        unsigned.sign(&key);
        unsigned.verify(&[key.public()]).map(|_| ())
    }) {
        return Ok(refused(&error));
    }
    bundle.sign(&key);
    write_atomically(&args.bundle, &bundle.to_bytes())?;
    println!(
        "signed {} with publisher key {}",
        args.bundle.display(),
        key.public().key_id()
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let bundle = match read_bundle(&args.bundle)? {
        Ok(bundle) => bundle,
        Err(error) => return Ok(refused(&error)),
    };
    let manifest = match bundle.manifest() {
        Ok(manifest) => manifest,
        Err(error) => return Ok(refused(&error)),
    };
    match bundle.signature() {
        Some(block) => println!(
            "signature: by publisher key {} (not checked here: use `tessera bundle verify`)",
            block
                .key_id()
                .unwrap_or_else(|| "<not a public key>".into())
        ),
        None => println!("signature: NONE (unsigned)"),
    }
    print_manifest(&manifest);
    Ok(ExitCode::SUCCESS)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn print_manifest(manifest: &Manifest) {
    println!("publisher: {}", manifest.publisher);
    println!("version: {}", manifest.version);
    for plugin in &manifest.plugins {
        println!();
        println!(
            "plugin {} ({} · tessera:plugin@{})",
            plugin.name,
            plugin.kind.as_str(),
            plugin.wit_version
        );
        if !plugin.description.is_empty() {
            println!("  {}", plugin.description);
        }
        println!(
            "  component: {} bytes, sha256 {}",
            plugin.component.size, plugin.component.sha256
        );
        let p = &plugin.permissions;
        println!("  requests:");
        println!("    traits: {}", list(&p.traits));
        println!("    events: {}", list(&p.events));
        let pii: Vec<String> = p.pii.iter().map(|c| c.as_str().to_string()).collect();
        println!("    PII classes: {}", list(&pii));
        println!("    purposes: {}", list(&p.purposes));
        if plugin.kind == tessera_bundle::Kind::Connector {
            println!("    outbound hosts: {}", list(&p.outbound_hosts));
        }
        println!("    state quota: {} bytes", p.state_quota);
        let limits = serde_json::to_value(&plugin.limits).unwrap_or_default();
        let limits: Vec<String> = limits
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        println!(
            "  limits: {}",
            if limits.is_empty() {
                "host defaults".into()
            } else {
                limits.join(", ")
            }
        );
        for param in &plugin.parameters {
            println!(
                "  parameter {} ({}{})",
                param.name,
                serde_json::to_value(param.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                if param.required { "; required" } else { "" }
            );
        }
    }
}

fn trusted_key(arg: &str) -> anyhow::Result<PublicKey> {
    if let Ok(key) = PublicKey::parse(arg) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("`--trust {arg}` is neither a public key nor a readable key file")
    })?;
    PublicKey::parse(&text).with_context(|| format!("the key file {arg}"))
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = args
        .trust
        .iter()
        .map(|arg| trusted_key(arg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if trusted.is_empty() && !args.allow_unsigned {
        bail!("no trusted publisher key: give at least one `--trust KEYFILE_OR_HEX`");
    }
    let bundle = match read_bundle(&args.bundle)? {
        Ok(bundle) => bundle,
        Err(error) => return Ok(refused(&error)),
    };
    let result = if args.allow_unsigned {
        bundle.verify_allowing_unsigned(&trusted)
    } else {
        bundle.verify(&trusted)
    };
    let verified = match result {
        Ok(verified) => verified,
        Err(error) => return Ok(refused(&error)),
    };
    match verified.publisher_key {
        Some(key) => println!(
            "verified: {} {} signed by trusted publisher key {}",
            verified.manifest.publisher,
            verified.manifest.version,
            key.key_id()
        ),
        None => {
            tracing::warn!(
                bundle = %args.bundle.display(),
                "accepted an UNSIGNED bundle under --allow-unsigned (development only)"
            );
            eprintln!(
                "WARNING: {} IS NOT SIGNED. Accepted only because of --allow-unsigned, a \
                 DEVELOPMENT flag: nobody vouches for this code. Never use it in production.",
                args.bundle.display()
            );
            println!(
                "verified (UNSIGNED, development only): {} {}",
                verified.manifest.publisher, verified.manifest.version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn publisher(command: PublisherCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        PublisherCommand::New(args) => args,
        PublisherCommand::Server(command) => return crate::plugin::trust(command),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let secret_path = args.out.join("publisher.key");
    let public_path = args.out.join("publisher.pub");
    if public_path.exists() {
        bail!(
            "{} exists; a key is never overwritten",
            public_path.display()
        );
    }
    let key = PublisherKey::generate()?;
    write_secret(&secret_path, &key.to_secret_text())?;
    std::fs::write(&public_path, format!("{}\n", key.public()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    println!("public key: {}", key.public());
    println!("key id: {}", key.public().key_id());
    println!(
        "wrote {} (secret, keep it private) and {} (give it to operators)",
        secret_path.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates the secret key file, readable by its owner only; never overwrites.
pub(crate) fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (a key is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}
