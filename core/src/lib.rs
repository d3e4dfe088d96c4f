//! Standings core: the domain types, the shard function and keyspace, the
//! snapshot codec, the top-K merge, and the `Store` trait with its backends.
//!
//! Everything here is shared by the agents and the gateway, so that a shard
//! list, a merge and a rank all agree on one total order (see
//! [`types::Order::cmp_entries`]).

pub mod blend;
pub mod board;
pub mod events;
pub mod keyspace;
pub mod merge;
pub mod meta;
pub mod ostree;
pub mod page;
pub mod period;
pub mod rank;
pub mod snapshot;
pub mod store;
pub mod types;

pub use blend::{Blend, BlendPart};
pub use board::{Board, ShardBy};
pub use keyspace::Scope;
pub use meta::{Meta, MetaInput, MAX_META_BYTES};
pub use period::{Period, PeriodError, PeriodKind, Timezone};
pub use snapshot::{DecodeError, Snapshot};
pub use store::{MemoryStore, Store, StoreError, Write, WriteOutcome};
pub use types::{BoardName, Entry, InputCode, InvalidInput, MemberId, Op, Order, Score, Ties};
