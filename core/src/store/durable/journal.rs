//! The journal: what the committer makes durable before a write is
//! acknowledged, and how its rows are encoded.
//!
//! A group commit used to write its batch into `standings.redb`'s tables
//! directly. Those tables are B-trees keyed by board, period, shard and
//! member, so ~30 writes to random members touched ~80 scattered pages,
//! each copied on write, and the commit took about 5 ms where the fsync
//! itself is 0.5 ms. Now the committer appends the whole batch as **one
//! row** to `journal.redb` (a second redb file, one table keyed by a
//! sequence number: each commit touches the rightmost leaf and little
//! else) and acknowledges after that commit; the checkpointer applies the
//! batches to `standings.redb` every quarter second or so in one transaction,
//! where writes to the same pages share them, records the last batch it
//! applied (`applied_through`) in that same transaction, and the
//! committer's next commit deletes the journal rows up to it.
//!
//! At open the rows after `applied_through` are applied to
//! `standings.redb` first ([`super::recover`]), so a crash at any moment
//! leaves exactly the journal's committed batches. Both files are redb:
//! this module only chooses how one batch of [`Mutation`]s is laid out as
//! the bytes of one row.
//!
//! # The row encoding
//!
//! A version byte ([`VERSION`]), then the mutations as a list (a `u32`
//! count and the items), each a tag byte and its fields in declaration order: integers
//! little-endian, `f64` as its bits, text and bytes as a `u32` length and
//! the bytes, `Option` as a `0`/`1` byte and the value, lists as a `u32`
//! count and the items. Text is checked again on decoding (names, member
//! ids, metadata), so a damaged row is refused with a reason, never loaded
//! as a half-valid value.

use std::sync::Arc;

use bytes::Bytes;
use redb::TableDefinition;

use super::Mutation;
use crate::board::StorageName;
use crate::events::{EventId, LikeState};
use crate::store::likes::{EventChange, Seen};
use crate::store::memory::{Applied, IdempotencyRecord, MetaChange, SetChange};
use crate::store::AuditRecord;
use crate::types::{BoardName, MemberId, Meta, Op};

/// `journal.redb`'s one data table: batch number -> encoded batch.
pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// In both files: [`ID`] -> which database this is (a journal is only
/// ever applied to the database it was written for); in `standings.redb`
/// also [`APPLIED_THROUGH`] -> the last batch the checkpointer applied.
pub(super) const STATE: TableDefinition<&str, u64> = TableDefinition::new("journal_state");

/// The [`STATE`] key of the database's identity.
pub(super) const ID: &str = "id";

/// The [`STATE`] key of the last journal batch applied to the tables.
pub(super) const APPLIED_THROUGH: &str = "applied_through";

/// The first byte of a row none of whose set changes has a tie: byte for
/// byte what the release before `first_achiever` boards wrote, so it can
/// still read the journal after a downgrade while no such board is used.
const VERSION: u8 = 1;

/// The first byte of a row with a tie ([`SetChange::tie`]) after each set
/// change's score.
const VERSION_TIES: u8 = 2;

/// The bytes of one journal row holding `batch`.
pub(super) fn encode(batch: &[Mutation]) -> Vec<u8> {
    let version = if batch.iter().any(has_ties) {
        VERSION_TIES
    } else {
        VERSION
    };
    let mut out = Out(Vec::with_capacity(256 * batch.len() + 1), version);
    out.u8(version);
    out.list(batch, mutation);
    out.0
}

/// Whether a mutation moves a member whose tie is not 0.
fn has_ties(m: &Mutation) -> bool {
    let tied = |a: &Applied| a.sets.iter().any(|s| s.tie != 0);
    match m {
        Mutation::Write { applied, .. } => tied(applied),
        Mutation::Event { moves, .. } => moves.iter().any(|(_, a)| tied(a)),
        _ => false,
    }
}

/// The batch of one journal row; `Err` says what was wrong with it.
pub(super) fn decode(row: &[u8]) -> Result<Vec<Mutation>, String> {
    let mut input = In(row, VERSION);
    let version = input.u8()?;
    if version != VERSION && version != VERSION_TIES {
        return Err(format!(
            "journal row version {version}, expected {VERSION} or {VERSION_TIES}"
        ));
    }
    input.1 = version;
    let batch = input.list(read_mutation)?;
    if !input.0.is_empty() {
        return Err(format!(
            "journal row has {} bytes past its end",
            input.0.len()
        ));
    }
    Ok(batch)
}

fn mutation(out: &mut Out, m: &Mutation) {
    match m {
        Mutation::Write { board, applied } => {
            out.u8(0);
            out.str(board.as_str());
            write_applied(out, applied);
        }
        Mutation::Snapshot {
            key,
            seq,
            bytes,
            expires_at_ms,
        } => {
            out.u8(1);
            out.str(key);
            out.u64(*seq);
            out.bytes(bytes);
            out.opt(expires_at_ms.as_ref(), |o, v| o.i64(*v));
        }
        Mutation::Expire { board, shard, sets } => {
            out.u8(2);
            out.str(board.as_str());
            out.u32(*shard);
            out.list(sets, |o, s| o.str(s));
        }
        Mutation::ExpireSnapshots { keys } => {
            out.u8(3);
            out.list(keys, |o, k| o.str(k));
        }
        Mutation::Catalog { name, definition } => {
            out.u8(4);
            out.str(name);
            out.opt(definition.as_ref(), |o, d| o.str(d));
        }
        Mutation::BlendParts {
            board,
            blend,
            shards,
            parts,
        } => {
            out.u8(5);
            out.str(board.as_str());
            out.str(blend);
            out.u32(*shards);
            out.str(parts);
        }
        Mutation::Event { change, moves } => {
            out.u8(6);
            write_event(out, change);
            out.list(moves, |o, (board, applied)| {
                o.str(board.as_str());
                write_applied(o, applied);
            });
        }
        Mutation::Weights { board, json } => {
            out.u8(7);
            out.str(board.as_str());
            out.str(json);
        }
    }
}

fn read_mutation(input: &mut In<'_>) -> Result<Mutation, String> {
    Ok(match input.u8()? {
        0 => Mutation::Write {
            board: storage(input)?,
            applied: read_applied(input)?,
        },
        1 => Mutation::Snapshot {
            key: input.string()?,
            seq: input.u64()?,
            bytes: Bytes::copy_from_slice(input.bytes()?),
            expires_at_ms: input.opt(In::i64)?,
        },
        2 => Mutation::Expire {
            board: storage(input)?,
            shard: input.u32()?,
            sets: input.list(|i| i.str().map(Arc::from))?,
        },
        3 => Mutation::ExpireSnapshots {
            keys: input.list(In::string)?,
        },
        4 => Mutation::Catalog {
            name: input.string()?,
            definition: input.opt(In::string)?,
        },
        5 => Mutation::BlendParts {
            board: storage(input)?,
            blend: Arc::from(input.str()?),
            shards: input.u32()?,
            parts: input.string()?,
        },
        6 => Mutation::Event {
            change: read_event(input)?,
            moves: input.list(|i| Ok((storage(i)?, read_applied(i)?)))?,
        },
        7 => Mutation::Weights {
            board: storage(input)?,
            json: input.string()?,
        },
        tag => return Err(format!("unknown mutation tag {tag}")),
    })
}

fn write_applied(out: &mut Out, a: &Applied) {
    out.u32(a.shard);
    out.u64(a.seq);
    out.f64(a.score);
    out.list(&a.sets, |o, s| {
        o.str(&s.id);
        o.opt(s.score.as_ref(), |o, v| o.f64(*v));
        if o.1 == VERSION_TIES {
            o.u64(s.tie);
        }
        o.u64(s.version);
        o.opt(s.expires_at_ms.as_ref(), |o, v| o.i64(*v));
    });
    out.list(&a.expired, |o, s| o.str(s));
    let r = &a.audit;
    out.str(r.member.as_str());
    out.str(r.op.as_str());
    out.f64(r.value);
    out.f64(r.score);
    out.opt(r.idempotency_key.as_ref(), |o, k| o.str(k));
    out.str(&r.request_id);
    out.u64(r.at_ms);
    out.opt(a.idempotency.as_ref(), |o, i| {
        o.str(&i.key);
        o.u64(i.digest);
        o.f64(i.score);
        o.opt(i.scores.as_ref(), |o, scores| {
            o.list(scores, |o, (id, score)| {
                o.str(id);
                o.f64(*score);
            });
        });
        o.u64(i.expires_at_ms);
    });
    out.opt(a.meta.as_ref(), |o, m| match m {
        MetaChange::Set(meta) => {
            o.u8(0);
            o.str(meta.as_str());
        }
        MetaChange::Remove => o.u8(1),
    });
}

fn read_applied(input: &mut In<'_>) -> Result<Applied, String> {
    let shard = input.u32()?;
    let seq = input.u64()?;
    let score = input.f64()?;
    let sets = input.list(|i| {
        Ok(SetChange {
            id: Arc::from(i.str()?),
            score: i.opt(In::f64)?,
            tie: match i.1 {
                VERSION_TIES => i.u64()?,
                _ => 0,
            },
            version: i.u64()?,
            expires_at_ms: i.opt(In::i64)?,
        })
    })?;
    let expired = input.list(|i| i.str().map(Arc::from))?;
    let audit = AuditRecord {
        member: member(input)?,
        op: Op::parse_audit(input.str()?).map_err(|e| e.to_string())?,
        value: input.f64()?,
        score: input.f64()?,
        idempotency_key: input.opt(In::string)?,
        request_id: input.string()?,
        at_ms: input.u64()?,
    };
    let idempotency = input.opt(|i| {
        Ok(IdempotencyRecord {
            key: i.string()?,
            digest: i.u64()?,
            score: i.f64()?,
            scores: i.opt(|i| {
                let scores = i.list(|i| Ok((Arc::from(i.str()?), i.f64()?)))?;
                Ok(Arc::from(scores))
            })?,
            expires_at_ms: i.u64()?,
        })
    })?;
    let meta = input.opt(|i| match i.u8()? {
        0 => Meta::from_stored(i.str()?)
            .map(MetaChange::Set)
            .map_err(|e| e.to_string()),
        1 => Ok(MetaChange::Remove),
        tag => Err(format!("unknown metadata change {tag}")),
    })?;
    Ok(Applied {
        shard,
        seq,
        score,
        sets,
        expired,
        audit,
        idempotency,
        meta,
    })
}

fn write_event(out: &mut Out, c: &EventChange) {
    debug_assert!(c.moves.is_empty(), "an event's moves travel by board name");
    out.str(c.tenant.as_str());
    out.str(c.seen.0.as_str());
    out.u64(c.seen.1.digest);
    out.opt(c.seen.1.state.as_ref(), |o, s| o.u8(s.code()));
    out.u64(c.seen.1.expires_at_ms);
    out.opt(c.state.as_ref(), |o, (target, actor, state)| {
        o.str(target.as_str());
        o.str(actor.as_str());
        o.u8(state.code());
    });
    out.opt(c.counts.as_ref(), |o, (target, likes, dislikes)| {
        o.str(target.as_str());
        o.u64(*likes);
        o.u64(*dislikes);
    });
    out.opt(c.list.as_ref(), |o, (actor, target, at, trimmed)| {
        o.str(actor.as_str());
        o.str(target.as_str());
        o.opt(at.as_ref(), |o, at| o.u64(*at));
        o.list(trimmed, |o, t| o.str(t.as_str()));
    });
    out.opt(c.owner.as_ref(), |o, (owner, total)| {
        o.str(owner.as_str());
        o.u64(*total);
    });
}

fn read_event(input: &mut In<'_>) -> Result<EventChange, String> {
    let tenant = BoardName::new(input.str()?).map_err(|e| e.to_string())?;
    let id = EventId::new(input.str()?).map_err(|e| e.to_string())?;
    let seen = Seen {
        digest: input.u64()?,
        state: input.opt(|i| i.u8().map(LikeState::from_code))?,
        expires_at_ms: input.u64()?,
    };
    let state = input.opt(|i| Ok((member(i)?, member(i)?, LikeState::from_code(i.u8()?))))?;
    let counts = input.opt(|i| Ok((member(i)?, i.u64()?, i.u64()?)))?;
    let list = input.opt(|i| Ok((member(i)?, member(i)?, i.opt(In::u64)?, i.list(member)?)))?;
    let owner = input.opt(|i| Ok((member(i)?, i.u64()?)))?;
    Ok(EventChange {
        tenant,
        seen: (id, seen),
        state,
        counts,
        list,
        owner,
        moves: Vec::new(),
    })
}

fn storage(input: &mut In<'_>) -> Result<StorageName, String> {
    StorageName::parse(input.str()?).map_err(|e| e.to_string())
}

fn member(input: &mut In<'_>) -> Result<MemberId, String> {
    MemberId::new(input.str()?).map_err(|e| e.to_string())
}

/// The bytes of a row being written.
/// A row being written, and its version.
struct Out(Vec<u8>, u8);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }

    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// A length or count. Nothing the store holds comes near 4 GiB (a
    /// snapshot is at most K entries); past it the row could not be read
    /// back, so that is a bug to stop at.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("a journal field under 4 GiB"));
    }

    fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.len(items.len());
        for item in items {
            f(self, item);
        }
    }
}

/// The unread rest of a row, and the row's version.
struct In<'a>(&'a [u8], u8);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "journal row ends early: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }

    fn f64(&mut self) -> Result<f64, String> {
        self.u64().map(f64::from_bits)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("journal text: {e}"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_owned)
    }

    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            flag => Err(format!("journal option flag {flag}")),
        }
    }

    fn list<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let n = self.u32()? as usize;
        // Each item is at least one byte: a count past the row's rest is
        // damage, not a reason to reserve gigabytes.
        if n > self.0.len() {
            return Err(format!(
                "journal list of {n} items in {} bytes",
                self.0.len()
            ));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(f(self)?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(seq: u64) -> Applied {
        Applied {
            shard: 3,
            seq,
            score: 2.5,
            sets: vec![
                SetChange {
                    id: Arc::from("all"),
                    score: Some(2.5),
                    tie: 0,
                    version: seq,
                    expires_at_ms: None,
                },
                SetChange {
                    id: Arc::from("daily/2026-12-02"),
                    score: None,
                    tie: 0,
                    version: 9,
                    expires_at_ms: Some(-4),
                },
            ],
            expired: vec![Arc::from("daily/2026-11-20")],
            audit: AuditRecord {
                member: MemberId::new("user:7").unwrap(),
                op: Op::Incr,
                value: -0.5,
                score: 2.5,
                idempotency_key: Some("k-1".into()),
                request_id: "req".into(),
                at_ms: 17,
            },
            idempotency: Some(IdempotencyRecord {
                key: "k-1".into(),
                digest: u64::MAX,
                score: 2.5,
                scores: Some(Arc::from([(Arc::from("all"), 2.5), (Arc::from("x"), 1.0)])),
                expires_at_ms: 99,
            }),
            meta: Some(MetaChange::Set(
                Meta::from_stored(r#"{"name":"Ann"}"#).unwrap(),
            )),
        }
    }

    fn every_kind() -> Vec<Mutation> {
        let board = StorageName::parse("acme.videos").unwrap();
        let m = |s: &str| MemberId::new(s).unwrap();
        vec![
            Mutation::Write {
                board: board.clone(),
                applied: applied(4),
            },
            Mutation::Write {
                board: board.clone(),
                applied: Applied {
                    idempotency: None,
                    meta: Some(MetaChange::Remove),
                    ..applied(5)
                },
            },
            Mutation::Snapshot {
                key: "snap:x".into(),
                seq: 3,
                bytes: Bytes::from_static(b"\x00\x01 bytes"),
                expires_at_ms: Some(123),
            },
            Mutation::Expire {
                board: board.clone(),
                shard: 2,
                sets: vec![Arc::from("hourly/1")],
            },
            Mutation::ExpireSnapshots {
                keys: vec!["a".into(), "b".into()],
            },
            Mutation::Catalog {
                name: "x".into(),
                definition: None,
            },
            Mutation::Catalog {
                name: "y".into(),
                definition: Some("{}".into()),
            },
            Mutation::BlendParts {
                board: board.clone(),
                blend: Arc::from("hot"),
                shards: 16,
                parts: "daily=0.7".into(),
            },
            Mutation::Event {
                change: EventChange {
                    tenant: BoardName::new("acme").unwrap(),
                    seen: (
                        EventId::new("e-1").unwrap(),
                        Seen {
                            digest: 5,
                            state: Some(LikeState::Liked),
                            expires_at_ms: 8,
                        },
                    ),
                    state: Some((m("t:1"), m("a:1"), LikeState::Disliked)),
                    counts: Some((m("t:1"), 3, 4)),
                    list: Some((m("a:1"), m("t:1"), None, vec![m("t:0")])),
                    owner: Some((m("o:1"), 12)),
                    moves: Vec::new(),
                },
                moves: vec![(board.clone(), applied(6))],
            },
            Mutation::Weights {
                board,
                json: r#"{"like":2}"#.into(),
            },
        ]
    }

    #[test]
    fn every_mutation_round_trips() {
        let batch = every_kind();
        let row = encode(&batch);
        let back = decode(&row).unwrap();
        assert_eq!(format!("{back:?}"), format!("{batch:?}"));
    }

    #[test]
    fn ties_take_the_second_row_version_and_round_trip() {
        let plain = encode(&every_kind());
        assert_eq!(plain[0], VERSION, "no tie: the row of the release before");
        let mut batch = every_kind();
        if let Mutation::Write { applied, .. } = &mut batch[0] {
            applied.sets[0].tie = 8_000_000_000_000_001;
        }
        let row = encode(&batch);
        assert_eq!(row[0], VERSION_TIES);
        let back = decode(&row).unwrap();
        assert_eq!(format!("{back:?}"), format!("{batch:?}"));
    }

    #[test]
    fn a_damaged_row_is_refused_with_a_reason() {
        let row = encode(&every_kind());
        for cut in [1, 5, row.len() / 2, row.len() - 1] {
            let err = decode(&row[..cut]).unwrap_err();
            assert!(err.contains("journal"), "cut at {cut}: {err}");
        }
        let mut bad = row.clone();
        bad[0] = 9;
        assert!(decode(&bad).unwrap_err().contains("version 9"));
        let mut bad = row.clone();
        bad[5] = 200;
        assert!(decode(&bad).unwrap_err().contains("tag 200"));
        let mut long = row;
        long.push(0);
        assert!(decode(&long).unwrap_err().contains("past its end"));
        assert!(decode(&[]).is_err(), "an empty row has no version");
    }
}
