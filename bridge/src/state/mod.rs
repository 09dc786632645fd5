//! Per-match merged state: what makes every published message the whole
//! match rather than the provider's partial update.
//!
//! - [`merge`]: the merge rules (pure);
//! - [`held`]: a match's state with its stream position, rebuilt from the
//!   subject's last stored message;
//! - [`store`]: the matches held, one update at a time per match, bounded;
//! - [`sync`]: one update's turn: load if needed, merge, publish, and what to
//!   do with the stream's answer.

#[cfg(all(test, feature = "service"))]
pub(crate) mod fake;
pub mod held;
pub mod merge;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod sync;

pub use held::{Held, LoadKind, StoredMsg, APPLIED_IDS, HDR_APPLIED};
#[cfg(feature = "service")]
pub use store::{Limits, Link, MatchStates};
#[cfg(feature = "service")]
pub use sync::{apply, Applied, Backend, Mode, Outcome, UpdateJob};
