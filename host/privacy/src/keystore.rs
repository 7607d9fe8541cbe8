//! A file of fixed-size slots holding wrapped subject keys, where erasing a key overwrites it in place.
//! It must never leave an erased key in the file, report an erasure before it is durable, or be shared by two processes.
//!
//! # Why a file of its own
//!
//! Crypto-shredding a subject means destroying every copy of its
//! [`WrappedSubjectKey`]. Log-structured stores (sled among them) write a
//! deleted value's tombstone somewhere new and leave the value itself in an
//! old log segment until compaction gets to it, perhaps never, so a subject
//! key deleted there is not gone. The key store keeps each wrapped key in a
//! fixed slot of one file and erases it by writing zeros over that slot, so
//! the key's bytes are replaced where they lay. It is kept outside the data
//! directory; records refer to their subject's key by slot number.
//!
//! # Format
//!
//! - A 64-byte header: the magic `TESSERA-SUBJECT-KEYS` (20 bytes), the
//!   format version (u32, big-endian, = 1), the slot size (u32, big-endian,
//!   = 96), then zeros.
//! - Slots of 96 bytes, numbered from 0: a state byte (0 = free, 1 = used),
//!   the wrapped key's 12-byte nonce and 48-byte ciphertext (the 32-byte key
//!   and the 16-byte AES-GCM tag), then zeros. A free slot is all zeros.
//!
//! There is no checksum: a damaged used slot fails to unwrap, because the
//! AES-GCM tag covers the key. The file only grows, one slot at a time, and
//! erased slots are reused before it grows; slot numbers never change.
//!
//! # Guarantees
//!
//! - [`insert`](SubjectKeyStore::insert) is not durable until
//!   [`sync`](SubjectKeyStore::sync) returns: callers insert a batch, sync,
//!   and only then commit the records that refer to the new slots. A crash in
//!   between leaves slots that no record refers to; they stay used until the
//!   caller erases them (this module cannot know which slots are referenced).
//! - [`erase`](SubjectKeyStore::erase) overwrites the whole slot with zeros
//!   and flushes it to disk (fdatasync) before it returns. If it returns an
//!   error or the process dies first, the subject is not erased: erase it
//!   again. [`open`](SubjectKeyStore::open) zeroes any free slot that still
//!   holds bytes, which finishes an erasure cut short by a crash.
//! - Only one process uses the file: `open` takes an exclusive advisory lock
//!   (`flock`) and refuses if another process holds it. Programs that do not
//!   take the lock (`cp`, backup tools) are not stopped by it, and network file
//!   systems may not honour it.
//! - The file is created with mode 0600. The wrapped keys in it are sealed
//!   under tenant keys, so the file alone reveals no subject key.
//!
//! # Limits: what "overwritten" means
//!
//! Writing over existing blocks of a file replaces them in place on ext4
//! (in its default `data=ordered` mode) and xfs, which is what this relies on.
//! It is not enough everywhere, and operators must know where:
//!
//! - Copy-on-write and log-structured file systems (btrfs, ZFS, bcachefs,
//!   f2fs) write the zeros to new blocks and leave the old ones until they
//!   are reused; ext4 with `data=journal` also keeps copies in its journal
//!   until it wraps.
//! - Snapshots (of the file system, the LVM volume, the virtual machine's
//!   disk or the storage array) keep the old blocks for as long as they live.
//! - SSDs remap writes for wear levelling; the old cells may stay readable to
//!   someone with the drive and the tools to read it raw.
//!
//! Operators who need stronger erasure put the key store on a file system
//! without snapshots and copy-on-write, and on an encrypted volume, so that
//! stale blocks on the device are ciphertext.
//!
//! # Backups
//!
//! A backup of the key store restores erased keys. Back it up separately from
//! the data directory (whose backups are harmless once the keys are gone), and
//! keep key store backups no longer than the deadline for honouring a deletion
//! request: a subject is only erased for good when the last backup that holds
//! its key has expired. Restore the key store only from its own backups.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::crypto::{KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::KeyStoreError;
use crate::keys::{self, WrappedSubjectKey};

/// The first bytes of every key store file.
pub const MAGIC: &[u8; 20] = b"TESSERA-SUBJECT-KEYS";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the header at the start of the file.
pub const HEADER_LEN: u64 = 64;
/// Length of one slot; slot `n` starts at `HEADER_LEN + n * SLOT_LEN`.
pub const SLOT_LEN: u64 = 96;

const SLOT_BYTES: usize = SLOT_LEN as usize;
const STATE_FREE: u8 = 0;
const STATE_USED: u8 = 1;
/// The wrapped key's ciphertext: the key and its AES-GCM tag.
const CIPHERTEXT_LEN: usize = KEY_LEN + TAG_LEN;
const NONCE_AT: usize = 1;
const CIPHERTEXT_AT: usize = NONCE_AT + NONCE_LEN;
/// Slots read at once when scanning the file at open.
const SCAN_SLOTS: u64 = 1024;

const _: () = assert!(CIPHERTEXT_AT + CIPHERTEXT_LEN <= SLOT_BYTES);
const _: () = assert!(MAGIC.len() + 8 <= HEADER_LEN as usize);

/// The subject key store: wrapped subject keys in fixed slots of one file,
/// erased by overwriting. See the [module documentation](self) for what it
/// guarantees and what it cannot.
///
/// Every method takes `&self`; it can be shared between threads.
pub struct SubjectKeyStore {
    file: File,
    path: PathBuf,
    slots: Mutex<Slots>,
}

/// What the store knows of its slots; the file is the truth, this mirrors it.
struct Slots {
    /// Number of slots in the file.
    count: u64,
    /// Free slots, all zeros on disk; the lowest is reused first.
    free: BTreeSet<u64>,
}

impl SubjectKeyStore {
    /// Opens the key store at `path`, creating it (mode 0600) if it does not
    /// exist; its directory must exist.
    ///
    /// Refuses a file that is already open (by another process, or by another
    /// `SubjectKeyStore` in this one), that is not a key store,
    /// is of another format version, or whose length is not the header plus
    /// whole slots.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KeyStoreError> {
        let path = path.as_ref();
        let file = match open_existing(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                create(path)?;
                open_existing(path)
            }
            opened => opened,
        }
        .map_err(|source| KeyStoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(KeyStoreError::Locked {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(path, "lock", source)),
        }
        let count = check_header(&file, path)?;
        let free = scan(&file, path, count)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            slots: Mutex::new(Slots { count, free }),
        })
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `wrapped` in a free slot (an erased one if there is any,
    /// otherwise a new one at the end) and returns the slot's number.
    ///
    /// The key is written but not flushed: call [`sync`](Self::sync) before
    /// committing anything that refers to the slot.
    pub fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError> {
        if wrapped.ciphertext.len() != CIPHERTEXT_LEN {
            return Err(KeyStoreError::WrongWrappedKeyLength {
                len: wrapped.ciphertext.len(),
            });
        }
        let mut bytes = [0u8; SLOT_BYTES];
        bytes[0] = STATE_USED;
        bytes[NONCE_AT..CIPHERTEXT_AT].copy_from_slice(&wrapped.nonce);
        bytes[CIPHERTEXT_AT..CIPHERTEXT_AT + CIPHERTEXT_LEN].copy_from_slice(&wrapped.ciphertext);

        let slot = self.allocate()?;
        // No lock is needed to write: the slot is ours alone until we return it.
        if let Err(source) = self.file.write_all_at(&bytes, slot_offset(slot)) {
            // Best effort to leave the slot all zeros; either way it is
            // handed out again, and whatever it holds is overwritten then.
            let _ = self.file.write_all_at(&[0; SLOT_BYTES], slot_offset(slot));
            self.lock().free.insert(slot);
            return Err(io_error(&self.path, "write a key to", source));
        }
        Ok(slot)
    }

    /// Flushes every inserted key to disk (fdatasync).
    pub fn sync(&self) -> Result<(), KeyStoreError> {
        self.file
            .sync_data()
            .map_err(|source| io_error(&self.path, "flush", source))
    }

    /// The wrapped key in `slot`; `None` if the slot is free (its subject was
    /// erased) or does not exist.
    pub fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError> {
        if slot >= self.lock().count {
            return Ok(None);
        }
        let mut bytes = [0u8; SLOT_BYTES];
        self.file
            .read_exact_at(&mut bytes, slot_offset(slot))
            .map_err(|source| io_error(&self.path, "read", source))?;
        match bytes[0] {
            STATE_FREE => Ok(None),
            STATE_USED => {
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&bytes[NONCE_AT..CIPHERTEXT_AT]);
                let ciphertext = bytes[CIPHERTEXT_AT..CIPHERTEXT_AT + CIPHERTEXT_LEN].to_vec();
                Ok(Some(WrappedSubjectKey { nonce, ciphertext }))
            }
            state => Err(KeyStoreError::DamagedSlot {
                path: self.path.clone(),
                slot,
                state,
            }),
        }
    }

    /// Crypto-shreds the key in `slot`: overwrites the whole slot with zeros
    /// and flushes it to disk before returning. Returns `false`, and writes
    /// nothing, if the slot is already free or does not exist.
    ///
    /// Inserts wait while an erasure flushes.
    pub fn erase(&self, slot: u64) -> Result<bool, KeyStoreError> {
        // Held until the zeros are on disk: the slot must not be handed out
        // before then, and a failed erasure must leave it used so that it
        // can be retried.
        let mut slots = self.lock();
        if slot >= slots.count || slots.free.contains(&slot) {
            return Ok(false);
        }
        let erase_error = |source| KeyStoreError::Erase {
            path: self.path.clone(),
            slot,
            source,
        };
        self.file
            .write_all_at(&[0; SLOT_BYTES], slot_offset(slot))
            .map_err(erase_error)?;
        self.file.sync_data().map_err(erase_error)?;
        slots.free.insert(slot);
        Ok(true)
    }

    /// Crypto-shreds every key at once (after they were moved elsewhere):
    /// overwrites every slot with zeros and flushes once. Returns how many
    /// slots held a key.
    pub fn erase_all(&self) -> Result<u64, KeyStoreError> {
        let mut slots = self.lock();
        let used = slots.count - slots.free.len() as u64;
        let zeros = vec![0u8; SLOT_BYTES * 1024];
        let erase_error = |slot, source| KeyStoreError::Erase {
            path: self.path.clone(),
            slot,
            source,
        };
        let mut slot = 0;
        while slot < slots.count {
            let n = (slots.count - slot).min(1024);
            let bytes = &zeros[..SLOT_BYTES * n as usize];
            self.file
                .write_all_at(bytes, slot_offset(slot))
                .map_err(|source| erase_error(slot, source))?;
            slot += n;
        }
        self.file
            .sync_data()
            .map_err(|source| erase_error(0, source))?;
        let count = slots.count;
        slots.free.extend(0..count);
        Ok(used)
    }

    /// Number of slots in the file, used and free.
    pub fn len(&self) -> u64 {
        self.lock().count
    }

    /// Whether the file has no slots at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots holding a key (including damaged ones, which are
    /// never reused).
    pub fn used(&self) -> u64 {
        let slots = self.lock();
        slots.count - slots.free.len() as u64
    }

    /// A free slot, growing the file by one zeroed slot if there is none.
    fn allocate(&self) -> Result<u64, KeyStoreError> {
        let mut slots = self.lock();
        if let Some(slot) = slots.free.pop_first() {
            return Ok(slot);
        }
        let slot = slots.count;
        // Growing with set_len keeps the length whole slots even if the
        // write that follows fails or is cut short.
        self.file
            .set_len(slot_offset(slot + 1))
            .map_err(|source| io_error(&self.path, "grow", source))?;
        slots.count += 1;
        Ok(slot)
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock, so its data is never half-updated.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SubjectKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.lock();
        f.debug_struct("SubjectKeyStore")
            .field("path", &self.path)
            .field("slots", &slots.count)
            .field("free", &slots.free.len())
            .finish()
    }
}

fn slot_offset(slot: u64) -> u64 {
    HEADER_LEN + slot * SLOT_LEN
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> KeyStoreError {
    KeyStoreError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

fn damaged(path: &Path, problem: String) -> KeyStoreError {
    KeyStoreError::Damaged {
        path: path.to_owned(),
        problem,
    }
}

fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[20..24].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    header[24..28].copy_from_slice(&(SLOT_LEN as u32).to_be_bytes());
    header
}

/// Creates an empty key store at `path`, whole or not at all: the header is
/// written and flushed to a temporary file, which is then hard-linked to
/// `path`. If another process created `path` meanwhile, that one is kept.
fn create(path: &Path) -> Result<(), KeyStoreError> {
    let create_error = |source| KeyStoreError::Create {
        path: path.to_owned(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        create_error(io::Error::new(
            ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let dir = keys::parent_dir(path);
    let temporary = keys::temporary_path(dir, file_name);
    let file = keys::create_private(&temporary).map_err(create_error)?;
    let linked = keys::write_and_link(file, &header(), &temporary, path);
    // A leftover temporary holds only a header; failing to remove it is harmless.
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => keys::sync_dir(dir).map_err(create_error),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(create_error(e)),
    }
}

/// Checks the header and the length; returns the number of slots.
fn check_header(file: &File, path: &Path) -> Result<u64, KeyStoreError> {
    let len = file
        .metadata()
        .map_err(|source| io_error(path, "read", source))?
        .len();
    if len < HEADER_LEN {
        return Err(damaged(
            path,
            format!("it is {len} bytes long, shorter than its {HEADER_LEN}-byte header"),
        ));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|source| io_error(path, "read", source))?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(KeyStoreError::NotAKeyStore {
            path: path.to_owned(),
        });
    }
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = word(20);
    if version != FORMAT_VERSION {
        return Err(KeyStoreError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    let slot_len = word(24);
    if u64::from(slot_len) != SLOT_LEN {
        return Err(damaged(
            path,
            format!(
                "its header gives a slot size of {slot_len} bytes, where version 1 has {SLOT_LEN}"
            ),
        ));
    }
    if header[28..].iter().any(|&b| b != 0) {
        return Err(damaged(
            path,
            "the reserved bytes of its header are not zero".to_owned(),
        ));
    }
    if !(len - HEADER_LEN).is_multiple_of(SLOT_LEN) {
        return Err(damaged(
            path,
            format!(
                "its length, {len} bytes, is not the {HEADER_LEN}-byte header plus whole \
                 {SLOT_LEN}-byte slots (it was truncated or appended to)"
            ),
        ));
    }
    Ok((len - HEADER_LEN) / SLOT_LEN)
}

/// Reads every slot and returns the free ones. A free slot that is not all
/// zeros (an erasure cut short by a crash) is zeroed and flushed.
fn scan(file: &File, path: &Path, count: u64) -> Result<BTreeSet<u64>, KeyStoreError> {
    let mut free = BTreeSet::new();
    let mut unfinished = Vec::new();
    let mut buf = vec![0u8; (SCAN_SLOTS * SLOT_LEN) as usize];
    let mut first = 0;
    while first < count {
        let n = (count - first).min(SCAN_SLOTS);
        let chunk = &mut buf[..(n * SLOT_LEN) as usize];
        file.read_exact_at(chunk, slot_offset(first))
            .map_err(|source| io_error(path, "read", source))?;
        for (i, slot) in (first..).zip(chunk.chunks_exact(SLOT_BYTES)) {
            if slot[0] == STATE_FREE {
                free.insert(i);
                if slot.iter().any(|&b| b != 0) {
                    unfinished.push(i);
                }
            }
        }
        first += n;
    }
    if !unfinished.is_empty() {
        for &slot in &unfinished {
            file.write_all_at(&[0; SLOT_BYTES], slot_offset(slot))
                .map_err(|source| io_error(path, "finish an interrupted erasure in", source))?;
        }
        file.sync_data()
            .map_err(|source| io_error(path, "finish an interrupted erasure in", source))?;
    }
    Ok(free)
}
