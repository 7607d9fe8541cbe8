//! The host-owned cache of compiled components, keyed by a hash of the
//! component bytes and of the engine's compilation settings. Only artifacts
//! this host compiled itself are ever deserialized: each is stored with a
//! digest that is checked before loading, so a corrupted file is recompiled.

use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::InstallError;

/// Compiled components in memory and, if configured, on disk.
#[derive(Debug)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_hash: [u8; 32],
    memory: Mutex<HashMap<[u8; 32], Component>>,
}

/// Feeds `Hash` output into SHA-256 so the engine's settings hash is stable
/// across processes (unlike a `DefaultHasher` with random keys).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    /// A cache for `engine`, persisted under `dir` when given.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, InstallError> {
        if let Some(dir) = &dir {
            fs::create_dir_all(dir).map_err(|e| {
                InstallError::Cache(format!("cannot create {}: {e}", dir.display()))
            })?;
            private_dir(dir)?;
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            dir,
            engine_hash: hasher.0.finalize().into(),
            memory: Mutex::new(HashMap::new()),
        })
    }

    /// The content hash of component bytes (the cache key before the engine hash).
    pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// The compiled component for `bytes`: from memory, from disk, or compiled now.
    /// The second value tells whether it was compiled by this call.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<(Component, bool), InstallError> {
        let key = {
            let mut sha = Sha256::new();
            sha.update(Self::content_hash(bytes));
            sha.update(self.engine_hash);
            <[u8; 32]>::from(sha.finalize())
        };
        if let Some(component) = self.lock().get(&key) {
            return Ok((component.clone(), false));
        }
        let path = self
            .dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.cwasm", hex::encode(key))));
        if let Some(path) = &path {
            match load(engine, path) {
                Ok(Some(component)) => {
                    self.lock().insert(key, component.clone());
                    return Ok((component, false));
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "recompiling a cached component");
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| InstallError::Compile(format!("{e:#}")))?;
        if let Some(path) = &path {
            // A cache that cannot be written costs a recompile next time; it
            // is no reason to refuse a component that compiled.
            if let Err(reason) = store(&component, path) {
                tracing::warn!(path = %path.display(), %reason, "cannot cache a compiled component");
            }
        }
        self.lock().insert(key, component.clone());
        Ok((component, true))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Component>> {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Artifacts in the cache are native code the host will run, so the directory
/// must be the host's alone: it is made private (0700) and refused if anyone
/// else can write to it. The digest in each file catches corruption; this
/// keeps others from planting code in the first place.
#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |why: String| InstallError::Cache(format!("{}: {why}", dir.display()));
    let mode = fs::metadata(dir)
        .map_err(|e| refuse(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            refuse(format!(
                "others can access the compile cache and it cannot be made private ({e})"
            ))
        })?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_dir(_dir: &Path) -> Result<(), InstallError> {
    Ok(())
}

/// File layout: 32 bytes of SHA-256 over the artifact, then the artifact.
fn load(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < 32 {
        return Err("truncated cache file".into());
    }
    let (digest, artifact) = bytes.split_at(32);
    if Sha256::digest(artifact).as_slice() != digest {
        return Err("cache file digest mismatch".into());
    }
    deserialize(engine, artifact).map(Some)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Component, String> {
    // SAFETY: `artifact` was produced by `Component::serialize` of this host
    // (the cache directory is host-owned and never filled from outside), and
    // its SHA-256 digest was verified just before; the cache key includes the
    // engine's compatibility hash, and wasmtime re-checks engine settings.
    unsafe { Component::deserialize(engine, artifact) }.map_err(|e| format!("{e:#}"))
}

/// Writes the artifact to a temporary file unique to this process and call,
/// then renames it into place, so concurrent installs of the same component
/// (threads or processes) never see a partial file.
fn store(component: &Component, path: &Path) -> Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let artifact = component.serialize().map_err(|e| format!("{e:#}"))?;
    let mut bytes = Vec::with_capacity(32 + artifact.len());
    bytes.extend_from_slice(&Sha256::digest(&artifact));
    bytes.extend_from_slice(&artifact);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    let written = fs::write(&tmp, &bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(|e| e.to_string())
}
