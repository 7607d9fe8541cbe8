//! Deterministic holdout assignment: which arm a subject is in for a campaign.
//! A pure function of (campaign salt, subject id, holdout share): no state,
//! no randomness, the same answer on every machine and after every restart.

use sha2::{Digest, Sha256};

/// Which side of a campaign's holdout a subject is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    /// Receives the campaign.
    Treatment,
    /// Held out: receives nothing, and is the baseline the campaign is measured against.
    Control,
}

/// Domain separation: this hash is for holdout assignment only, so a salt
/// reused elsewhere never yields the same numbers.
const DOMAIN: &[u8] = b"tessera-holdout-v1";

/// The subject's position in `[0, 1)` for this campaign.
///
/// SHA-256 of `DOMAIN ‖ len(salt) as u64 little-endian ‖ salt ‖ subject`
/// (UTF-8); the first 8 bytes of the digest, big-endian, keep their top 53
/// bits and are divided by 2⁵³. The length prefix keeps `("ab", "c")` and
/// `("a", "bc")` apart. SHA-256 output is indistinguishable from uniform, so
/// positions are uniform on `[0, 1)` and positions under different salts are
/// independent. Changing this function reassigns every running campaign:
/// it is pinned by regression tests.
pub fn position(campaign_salt: &[u8], subject: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update((campaign_salt.len() as u64).to_le_bytes());
    hasher.update(campaign_salt);
    hasher.update(subject.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether `subject` is held out of the campaign salted `campaign_salt`:
/// true when its [`position`] is below `holdout`, the share of subjects held
/// out.
///
/// Total on every input: a `holdout` of 0 or less (or NaN) holds out no one,
/// 1 or more holds out everyone. Raising the share only moves subjects from
/// treatment into control, never the other way, so growing a holdout
/// mid-campaign keeps everyone already held out. Use a fresh random salt per
/// campaign: campaigns with different salts get independent assignments,
/// so no one is held out of everything.
pub fn in_control(campaign_salt: &[u8], subject: &str, holdout: f64) -> bool {
    position(campaign_salt, subject) < holdout
}

/// [`in_control`] as an [`Arm`].
pub fn arm(campaign_salt: &[u8], subject: &str, holdout: f64) -> Arm {
    if in_control(campaign_salt, subject, holdout) {
        Arm::Control
    } else {
        Arm::Treatment
    }
}
