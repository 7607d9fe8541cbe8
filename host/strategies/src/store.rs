//! How campaign records are kept: sealed documents of the tenant, JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StrategyError;

/// A campaign (id: its name).
pub(crate) const KIND_CAMPAIGN: &str = "campaign";
/// A campaign's running counts (id: its name).
pub(crate) const KIND_COUNTS: &str = "campaign_counts";
/// A logged decision (id `<campaign>/<subject>/<decision id>`).
pub(crate) const KIND_DECISION: &str = "decision";
/// Where a decision is logged (id: the decision id; content: the id of
/// its [`KIND_DECISION`] document).
pub(crate) const KIND_DECISION_INDEX: &str = "decision_index";
/// Feedback on a decision (id `<campaign>/<subject>/<decision id>/<kind>/<key>`).
pub(crate) const KIND_FEEDBACK: &str = "feedback";
/// A send of a campaign through a destination (id `<campaign>/<send id>`).
pub(crate) const KIND_SEND: &str = "campaign_send";
/// Feedback the strategy has not learned from yet (id
/// `<campaign>/<time, 20 digits>-<random>`; content: the feedback
/// document's id).
pub(crate) const KIND_LEARN_QUEUE: &str = "feedback_pending";

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StrategyError> {
    serde_json::to_vec(value).map_err(|e| StrategyError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrategyError> {
    serde_json::from_slice(bytes).map_err(|e| StrategyError::Corrupt(e.to_string()))
}

/// `<prefix>-<ms, 13 digits>-<8 random hex digits>`: ordered by time.
pub(crate) fn new_id(prefix: &str, now_ms: i64) -> Result<String, StrategyError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StrategyError::Corrupt(format!("no randomness for an id: {e}")))?;
    Ok(format!(
        "{prefix}-{:013}-{}",
        now_ms.max(0),
        hex::encode(bytes)
    ))
}

/// 16 random bytes, hex: a campaign's holdout salt.
pub(crate) fn new_salt() -> Result<String, StrategyError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StrategyError::Corrupt(format!("no randomness for a salt: {e}")))?;
    Ok(hex::encode(bytes))
}
