//! A snapshot is a board's TOP-K at one moment, for one shard, one group or
//! the whole board, with a versioned binary codec.
//!
//! Shard agents write snapshots to the store and group agents and the gateway
//! read them back, possibly from another process or another release, so the
//! format is explicit, versioned and checked: decoding refuses truncated,
//! corrupt or out-of-order bytes with a [`DecodeError`], never a panic.
//!
//! Format 1, little endian:
//!
//! ```text
//! "STSN" | format u8 = 1 | scope kind u8 (0 shard, 1 group, 2 global) | scope index u32
//! | order u8 (0 desc, 1 asc) | version u64 | computed_at_ms u64
//! | board len u8, bytes | period len u8, bytes | count u32
//! | count x (score f64 bits u64, member len u8, member bytes)
//! | crc32 (IEEE) of everything before it, u32
//! ```
//!
//! Format 2 is format 1 with each entry followed by its member's metadata:
//! `meta len u16, bytes` (0: none; the canonical JSON text of a
//! [`crate::Meta`], at most 512 bytes). A snapshot none of whose entries
//! has meta is still written as format 1, byte for byte what the release
//! before meta wrote, so a reader of that release keeps reading the
//! snapshots of boards that use no meta during a rolling upgrade; both
//! formats decode.
//!
//! Format 3 is format 2 with each entry's [`Entry::tie`] after its meta,
//! `tie u64`: what orders equal scores on a `first_achiever` board. It is
//! written only when some entry has a tie, so `shared` boards keep
//! writing formats 1 and 2.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::board::Board;
use crate::keyspace::Scope;
use crate::store::{Store, StoreError};
use crate::types::{BoardName, Entry, InvalidInput, MemberId, Meta, Order, Score};

const MAGIC: &[u8; 4] = b"STSN";
/// The format without metadata.
const FORMAT_1: u8 = 1;
/// The format with metadata per entry.
const FORMAT_2: u8 = 2;
/// The format with metadata and a tie per entry.
const FORMAT_3: u8 = 3;

/// A sorted TOP-K list with where and when it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The board it ranks.
    pub board: BoardName,
    /// The board period it belongs to.
    pub period: Arc<str>,
    /// Shard, group or global.
    pub scope: Scope,
    /// The board order its entries follow.
    pub order: Order,
    /// Moves whenever the underlying data moved: a shard's write counter, a
    /// group's sum of shard versions, the global sum of group versions.
    pub version: u64,
    /// Milliseconds since the Unix epoch when it was computed.
    pub computed_at_ms: u64,
    /// Best first, in the board's total order.
    pub entries: Vec<Entry>,
}

/// Why bytes are not a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the structure does.
    #[error("snapshot truncated at byte {0}")]
    Truncated(usize),
    /// Not a snapshot at all.
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// Written by a newer release.
    #[error("unknown snapshot format {0}")]
    UnknownFormat(u8),
    /// The checksum does not match: corrupt in store or in transit.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// Structurally readable but holding an invalid value.
    #[error("invalid snapshot: {0}")]
    Invalid(String),
}

impl From<InvalidInput> for DecodeError {
    fn from(e: InvalidInput) -> Self {
        DecodeError::Invalid(e.to_string())
    }
}

impl Snapshot {
    /// Serialises the snapshot: format 3 when some entry has a tie, else
    /// format 2 when some entry has meta, else format 1.
    pub fn encode(&self) -> Bytes {
        let member_bytes: usize = self.entries.iter().map(|e| e.member.as_str().len()).sum();
        let meta_bytes: usize = self
            .entries
            .iter()
            .filter_map(|e| e.meta.as_ref())
            .map(|m| m.as_str().len())
            .sum();
        let with_ties = self.entries.iter().any(|e| e.tie != 0);
        let with_meta = with_ties || self.entries.iter().any(|e| e.meta.is_some());
        let per_entry = match (with_meta, with_ties) {
            (_, true) => 19,
            (true, false) => 11,
            (false, false) => 9,
        };
        let mut buf = BytesMut::with_capacity(
            40 + member_bytes + meta_bytes + self.entries.len() * per_entry,
        );
        buf.put_slice(MAGIC);
        buf.put_u8(match (with_meta, with_ties) {
            (_, true) => FORMAT_3,
            (true, false) => FORMAT_2,
            (false, false) => FORMAT_1,
        });
        let (kind, index) = match self.scope {
            Scope::Shard(s) => (0, s),
            Scope::Group(g) => (1, g),
            Scope::Global => (2, 0),
        };
        buf.put_u8(kind);
        buf.put_u32_le(index);
        buf.put_u8(match self.order {
            Order::Desc => 0,
            Order::Asc => 1,
        });
        buf.put_u64_le(self.version);
        buf.put_u64_le(self.computed_at_ms);
        put_short_str(&mut buf, self.board.as_str());
        put_short_str(&mut buf, &self.period);
        buf.put_u32_le(self.entries.len() as u32);
        for entry in &self.entries {
            buf.put_u64_le(entry.score.to_bits());
            put_short_str(&mut buf, entry.member.as_str());
            if with_meta {
                let meta = entry.meta.as_ref().map_or("", |m| m.as_str());
                buf.put_u16_le(meta.len() as u16);
                buf.put_slice(meta.as_bytes());
            }
            if with_ties {
                buf.put_u64_le(entry.tie);
            }
        }
        let crc = crc32fast::hash(&buf);
        buf.put_u32_le(crc);
        buf.freeze()
    }

    /// Parses and checks bytes written by [`Snapshot::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(if bytes.len() < 4 {
                DecodeError::Truncated(bytes.len())
            } else {
                DecodeError::BadMagic
            });
        }
        let mut r = Reader { bytes, pos: 4 };
        let format = r.u8()?;
        if !matches!(format, FORMAT_1 | FORMAT_2 | FORMAT_3) {
            return Err(DecodeError::UnknownFormat(format));
        }
        if bytes.len() < r.pos + 4 {
            return Err(DecodeError::Truncated(bytes.len()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader {
            bytes: body,
            pos: r.pos,
        };
        let snapshot = read_body(&mut r, format != FORMAT_1, format == FORMAT_3)?;
        if r.pos != body.len() {
            return Err(DecodeError::Invalid("trailing bytes".into()));
        }
        Ok(snapshot)
    }
}

fn read_body(
    r: &mut Reader<'_>,
    with_meta: bool,
    with_ties: bool,
) -> Result<Snapshot, DecodeError> {
    let kind = r.u8()?;
    let index = r.u32()?;
    let scope = match kind {
        0 => Scope::Shard(index),
        1 => Scope::Group(index),
        2 => Scope::Global,
        k => return Err(DecodeError::Invalid(format!("scope kind {k}"))),
    };
    let order = match r.u8()? {
        0 => Order::Desc,
        1 => Order::Asc,
        o => return Err(DecodeError::Invalid(format!("order {o}"))),
    };
    let version = r.u64()?;
    let computed_at_ms = r.u64()?;
    let board = BoardName::new(r.short_str()?)?;
    let period: Arc<str> = Arc::from(r.short_str()?);
    let count = r.u32()? as usize;
    // Each entry takes at least 10 bytes: a count beyond that is corrupt, and
    // checking first keeps a bad count from reserving gigabytes.
    if count > r.remaining() / 10 {
        return Err(DecodeError::Truncated(r.bytes.len()));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    for _ in 0..count {
        let score = Score::new(f64::from_bits(r.u64()?))?;
        let member = MemberId::new(r.short_str()?)?;
        let meta = if with_meta { r.meta()? } else { None };
        let tie = if with_ties { r.u64()? } else { 0 };
        let entry = Entry::with_meta(member, score, meta).with_tie(tie);
        if let Some(prev) = entries.last() {
            if order.cmp_entries(prev, &entry) != std::cmp::Ordering::Less {
                return Err(DecodeError::Invalid("entries out of order".into()));
            }
        }
        entries.push(entry);
    }
    Ok(Snapshot {
        board,
        period,
        scope,
        order,
        version,
        computed_at_ms,
        entries,
    })
}

fn put_short_str(buf: &mut BytesMut, s: &str) {
    // Board names, periods and member ids are all at most 128 bytes.
    debug_assert!(s.len() <= u8::MAX as usize);
    buf.put_u8(s.len() as u8);
    buf.put_slice(s.as_bytes());
}

/// A bounds-checked cursor: every read fails with `Truncated` instead of
/// panicking when the bytes run out.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated(self.bytes.len()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A format 2 entry's meta: length 0 is none.
    fn meta(&mut self) -> Result<Option<Meta>, DecodeError> {
        let len = self.u16()? as usize;
        if len == 0 {
            return Ok(None);
        }
        let text = std::str::from_utf8(self.take(len)?)
            .map_err(|_| DecodeError::Invalid("meta is not UTF-8".into()))?;
        Ok(Some(Meta::from_stored(text)?))
    }

    fn short_str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u8()? as usize;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| DecodeError::Invalid("string is not UTF-8".into()))
    }
}

/// Why a stored snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed; the caller retries on its next tick.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored bytes did not decode.
    #[error("snapshot {scope:?} of board {board}: {source}")]
    Decode {
        /// Which board.
        board: String,
        /// Which snapshot.
        scope: Scope,
        /// Why it did not decode.
        source: DecodeError,
    },
}

/// Reads and decodes the snapshot of `scope`; `None` when none was stored
/// yet. Group agents and the gateway's refresher both read snapshots this
/// way, so a bad snapshot is reported the same everywhere.
pub async fn load(
    store: &dyn Store,
    board: &Board,
    scope: Scope,
) -> Result<Option<Snapshot>, LoadError> {
    let Some(bytes) = store.get_snapshot(board, scope).await? else {
        return Ok(None);
    };
    Snapshot::decode(&bytes)
        .map(Some)
        .map_err(|source| LoadError::Decode {
            board: board.name.to_string(),
            scope,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(entries: Vec<Entry>, order: Order) -> Snapshot {
        Snapshot {
            board: BoardName::new("global").unwrap(),
            period: Arc::from("all"),
            scope: Scope::Group(3),
            order,
            version: 812,
            computed_at_ms: 1_790_000_000_000,
            entries,
        }
    }

    fn sorted_entries(raw: Vec<(String, f64)>, order: Order) -> Vec<Entry> {
        let mut entries: Vec<Entry> = raw
            .into_iter()
            .map(|(m, s)| Entry::new(MemberId::new(&m).unwrap(), Score::new(s).unwrap()))
            .collect();
        entries.sort_by(|a, b| order.cmp_entries(a, b));
        entries.dedup_by(|a, b| a.member == b.member);
        entries
    }

    #[test]
    fn refuses_corruption() {
        let snap = sample(
            sorted_entries(vec![("a".into(), 1.0)], Order::Desc),
            Order::Desc,
        );
        let bytes = snap.encode();
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snap);
        let mut flipped = bytes.to_vec();
        flipped[20] ^= 1;
        assert_eq!(Snapshot::decode(&flipped), Err(DecodeError::Checksum));
        assert_eq!(Snapshot::decode(b"NOPEnope"), Err(DecodeError::BadMagic));
        assert!(Snapshot::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Snapshot::decode(&[]).is_err());
    }

    fn meta(text: &str) -> Option<Meta> {
        Some(Meta::parse(text).unwrap())
    }

    #[test]
    fn metas_round_trip_in_format_2_and_none_keeps_format_1() {
        let mut entries = sorted_entries(
            vec![("a".into(), 3.0), ("b".into(), 2.0), ("c".into(), 1.0)],
            Order::Desc,
        );
        let plain = sample(entries.clone(), Order::Desc).encode();
        assert_eq!(plain[4], 1, "no meta: format 1");
        entries[0].meta = meta(r#"{"name":"Ann","lvl":3}"#);
        entries[2].meta = meta(&format!(r#"{{"k":"{}"}}"#, "x".repeat(500)));
        let snap = sample(entries, Order::Desc);
        let bytes = snap.encode();
        assert_eq!(bytes[4], 2, "meta: format 2");
        let back = Snapshot::decode(&bytes).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.entries[1].meta, None);
        assert_eq!(
            back.entries[0].meta.as_ref().unwrap().as_str(),
            r#"{"lvl":3,"name":"Ann"}"#
        );
    }

    #[test]
    fn ties_round_trip_in_format_3_and_keep_their_order() {
        // Equal scores of a first_achiever board: "a" reached 5 before "z",
        // so it lists first although its bytes are smaller.
        let order = Order::Desc;
        let entries = vec![
            Entry::stored(MemberId::new("m").unwrap(), 6.0).with_tie(order.tie_at(300)),
            Entry::stored(MemberId::new("a").unwrap(), 5.0).with_tie(order.tie_at(100)),
            Entry::stored(MemberId::new("z").unwrap(), 5.0).with_tie(order.tie_at(200)),
        ];
        let snap = sample(entries.clone(), order);
        let bytes = snap.encode();
        assert_eq!(bytes[4], 3, "ties: format 3");
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snap);
        // The same entries in the member-bytes order are out of order here.
        let mut swapped = entries;
        swapped.swap(1, 2);
        let bad = sample(swapped, order).encode();
        assert!(matches!(
            Snapshot::decode(&bad),
            Err(DecodeError::Invalid(_))
        ));
    }

    /// Bytes written by the release before meta (format 1), pinned: they
    /// must keep decoding, not fail forever.
    #[test]
    fn format_1_written_before_meta_still_decodes() {
        let entries = sorted_entries(vec![("a".into(), 2.0), ("b".into(), 1.0)], Order::Desc);
        let mut old = BytesMut::new();
        old.put_slice(b"STSN");
        old.put_u8(1);
        old.put_u8(1);
        old.put_u32_le(3);
        old.put_u8(0);
        old.put_u64_le(812);
        old.put_u64_le(1_790_000_000_000);
        put_short_str(&mut old, "global");
        put_short_str(&mut old, "all");
        old.put_u32_le(2);
        for (m, s) in [("a", 2.0f64), ("b", 1.0)] {
            old.put_u64_le(s.to_bits());
            put_short_str(&mut old, m);
        }
        let crc = crc32fast::hash(&old);
        old.put_u32_le(crc);
        let snap = sample(entries, Order::Desc);
        assert_eq!(Snapshot::decode(&old).unwrap(), snap);
        assert_eq!(
            snap.encode(),
            old.freeze(),
            "meta-less snapshots are written as before"
        );
    }

    #[test]
    fn refuses_broken_meta() {
        let mut entries = sorted_entries(vec![("a".into(), 1.0)], Order::Desc);
        entries[0].meta = meta(r#"{"a":1}"#);
        let bytes = sample(entries, Order::Desc).encode().to_vec();
        // Turn `{"a":1}` into `["a":1}` and fix the checksum.
        let at = bytes.iter().rposition(|&b| b == b'{').unwrap();
        let mut bad = bytes[..bytes.len() - 4].to_vec();
        bad[at] = b'[';
        let crc = crc32fast::hash(&bad);
        bad.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Snapshot::decode(&bad),
            Err(DecodeError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn round_trips(raw in prop::collection::vec(("[a-z]{1,12}", -1e6f64..1e6), 0..200),
                       asc in any::<bool>()) {
            let order = if asc { Order::Asc } else { Order::Desc };
            let snap = sample(sorted_entries(raw, order), order);
            prop_assert_eq!(Snapshot::decode(&snap.encode()).unwrap(), snap);
        }

        #[test]
        fn never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Snapshot::decode(&bytes);
            let mut with_magic = b"STSN\x01".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = Snapshot::decode(&with_magic);
        }

        #[test]
        fn never_panics_on_mutated_snapshots(pos in any::<prop::sample::Index>(), byte in any::<u8>(),
                                              cut in any::<prop::sample::Index>()) {
            let entries = sorted_entries((0..20).map(|i| (format!("m{i}"), i as f64)).collect(), Order::Desc);
            let bytes = sample(entries, Order::Desc).encode().to_vec();
            let mut mutated = bytes.clone();
            mutated[pos.index(bytes.len())] = byte;
            let _ = Snapshot::decode(&mutated);
            let _ = Snapshot::decode(&bytes[..cut.index(bytes.len())]);
        }
    }
}
