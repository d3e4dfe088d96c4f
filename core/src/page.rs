//! Deep pages: the whole board in its total order, a page at a time, past
//! the TOP-K that snapshots keep.
//!
//! A page after a cursor asks every shard for its next `limit + 1` entries
//! after the cursor's entry ([`Store::page_after`], one round trip per
//! node) and merges them with the bounded k-way merge of
//! [`crate::merge`]: every member lives in one shard, so the next `limit`
//! entries of the board are among those lists, and the page is exact. The
//! one entry over `limit` per shard tells whether anything follows, so
//! `next` is `None` exactly after the last entry.
//!
//! Ranks are competition ranks, as everywhere (invariant 3). The shards
//! also answer how many of their entries are not after the cursor, which
//! summed is the board position of the page's first entry: a new score at
//! page index i ranks `position + i + 1`. Only a first entry tied with the
//! cursor's score needs its rank from one more counts fan-out (ties before
//! it sit on an earlier page).
//!
//! # Cursors
//!
//! A cursor is the last entry of a page, bound to the board's storage name
//! and period and checked, as base64url without padding:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | format version ([`CURSOR_VERSION`]) |
//! | 8 | FNV-1a 64 of the board's storage name, big-endian |
//! | 8 | FNV-1a 64 of the period id |
//! | 8 | the score's IEEE 754 bits, big-endian |
//! | 8 | version 2 only: the entry's tie ([`Entry::tie`]), big-endian |
//! | 1..=128 | the member's UTF-8 bytes |
//! | 8 | FNV-1a 64 of every byte before it |
//!
//! Version 2 is the cursor of a `first_achiever` board, whose equal scores
//! are ordered by their ties; a `shared` board's cursors stay version 1.
//! On a `first_achiever` board every rank is a position, so a page's ranks
//! need no counts at all.
//!
//! FNV-1a changes its state on any one changed byte and never returns to
//! the same state after it (each step is a bijection of the state), so a
//! flipped byte always fails the check; length is checked apart. The check
//! is not keyed: a cursor is not a secret, and a forged one can only name a
//! position on a board the caller may read anyway. Because the cursor holds
//! an entry rather than an offset, a walk of a live board never repeats or
//! skips an entry that did not move; a closed period never moves.

use crate::board::{fnv1a64, Board};
use crate::merge::merge_sorted;
use crate::rank::{rank_of_score, window_ranks, Window};
use crate::store::{Store, StoreError};
use crate::types::{Entry, MemberId, Score, Ties, MAX_MEMBER_LEN};

/// The cursor format of a `shared` board.
pub const CURSOR_VERSION: u8 = 1;

/// The cursor format of a `first_achiever` board: version 1 and the tie.
pub const CURSOR_VERSION_TIES: u8 = 2;

/// The tie's bytes in a version 2 cursor.
const TIE: usize = 8;

/// Version, board hash, period hash, score.
const HEAD: usize = 1 + 8 + 8 + 8;

/// The trailing check.
const CHECK: usize = 8;

/// Longest cursor text: base64 of the longest cursor, without padding.
pub const MAX_CURSOR_LEN: usize = ((HEAD + TIE + MAX_MEMBER_LEN + CHECK) * 4).div_ceil(3);

/// Why a cursor was refused; the gateway answers each as 400
/// `invalid_cursor` naming `after`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor at all: bad base64, wrong length or version, a failed
    /// check, or an entry that is not a valid score and member.
    #[error("after is not a cursor this server wrote ({0}); pass the `next` of a page unchanged")]
    Malformed(&'static str),
    /// A cursor of another board.
    #[error("after is a cursor of another board")]
    OtherBoard,
    /// A cursor of another period of this board.
    #[error("after is a cursor of another period of this board; pass the same period (its id is in the page's period.id)")]
    OtherPeriod,
}

/// The cursor after `last` on `board` (of its [`Board::period`]).
pub fn encode_cursor(board: &Board, last: &Entry) -> String {
    use base64::Engine as _;
    let member = last.member.as_str().as_bytes();
    let tied = board.ties == Ties::FirstAchiever;
    let mut bytes = Vec::with_capacity(HEAD + TIE + member.len() + CHECK);
    bytes.push(if tied {
        CURSOR_VERSION_TIES
    } else {
        CURSOR_VERSION
    });
    bytes.extend_from_slice(&fnv1a64(board.storage_name().as_bytes()).to_be_bytes());
    bytes.extend_from_slice(&fnv1a64(board.period.as_bytes()).to_be_bytes());
    bytes.extend_from_slice(&last.score.to_bits().to_be_bytes());
    if tied {
        bytes.extend_from_slice(&last.tie.to_be_bytes());
    }
    bytes.extend_from_slice(member);
    let check = fnv1a64(&bytes);
    bytes.extend_from_slice(&check.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The entry a cursor of `board` (of its [`Board::period`]) names.
pub fn decode_cursor(board: &Board, text: &str) -> Result<Entry, CursorError> {
    use base64::Engine as _;
    if text.len() > MAX_CURSOR_LEN {
        return Err(CursorError::Malformed("too long"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CursorError::Malformed("not base64url without padding"))?;
    if bytes.len() <= HEAD + CHECK || bytes.len() > HEAD + TIE + MAX_MEMBER_LEN + CHECK {
        return Err(CursorError::Malformed("wrong length"));
    }
    let (body, check) = bytes.split_at(bytes.len() - CHECK);
    if fnv1a64(body).to_be_bytes() != check {
        return Err(CursorError::Malformed("check failed"));
    }
    let tie_bytes = match body[0] {
        CURSOR_VERSION => 0,
        CURSOR_VERSION_TIES => TIE,
        _ => return Err(CursorError::Malformed("unknown version")),
    };
    // A cursor holds a tie exactly on a first_achiever board; one without
    // would skip the equals of its score, one with would place a shared
    // board's cursor by a tie its entries do not have.
    if (tie_bytes == TIE) != (board.ties == Ties::FirstAchiever) {
        return Err(CursorError::Malformed("written under another ties setting"));
    }
    if body.len() <= HEAD + tie_bytes || body.len() > HEAD + tie_bytes + MAX_MEMBER_LEN {
        return Err(CursorError::Malformed("wrong length"));
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&body[at..at + 8]);
        u64::from_be_bytes(w)
    };
    if word(1) != fnv1a64(board.storage_name().as_bytes()) {
        return Err(CursorError::OtherBoard);
    }
    if word(9) != fnv1a64(board.period.as_bytes()) {
        return Err(CursorError::OtherPeriod);
    }
    let score =
        Score::new(f64::from_bits(word(17))).map_err(|_| CursorError::Malformed("bad score"))?;
    let tie = match tie_bytes {
        0 => 0,
        _ => word(HEAD),
    };
    let member = std::str::from_utf8(&body[HEAD + tie_bytes..])
        .ok()
        .and_then(|m| MemberId::new(m).ok())
        .ok_or(CursorError::Malformed("bad member"))?;
    Ok(Entry::new(member, score).with_tie(tie))
}

/// One page of a board, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Up to `limit` entries, best first.
    pub entries: Vec<Entry>,
    /// Competition rank of each entry.
    pub ranks: Vec<u64>,
    /// Whether entries follow the last one (then the next page is after
    /// it).
    pub more: bool,
}

/// The `limit` entries after `after` (from the top without it), exact
/// across every shard, with their competition ranks.
pub async fn page(
    store: &dyn Store,
    board: &Board,
    after: Option<&Entry>,
    limit: usize,
) -> Result<Page, StoreError> {
    let per_shard = store
        .page_after(board, &board.all_shards(), after, limit.saturating_add(1))
        .await?;
    let lists: Vec<&[Entry]> = per_shard.iter().map(|p| p.entries.as_slice()).collect();
    let fetched: usize = lists.iter().map(|l| l.len()).sum();
    let window = Window {
        entries: merge_sorted(&lists, limit, board.order),
        start: per_shard.iter().map(|p| p.ahead).sum(),
        total: 0,
    };
    let first_rank = match (window.entries.first(), after, board.ties) {
        // Ties of the cursor's score before this page: count them.
        (Some(first), Some(cursor), Ties::Shared) if first.score == cursor.score => {
            rank_of_score(store, board, first.score).await?.0
        }
        // Everything before the first entry ranks better (on a
        // first_achiever board, always).
        _ => window.start + 1,
    };
    let ranks = window_ranks(board.ties, &window, first_rank);
    Ok(Page {
        more: fetched > window.entries.len(),
        entries: window.entries,
        ranks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Write};
    use crate::types::{BoardName, Op, Order};

    fn board(name: &str) -> Board {
        Board {
            shards: 5,
            groups: 1,
            ..Board::new(BoardName::new(name).unwrap())
        }
    }

    fn e(m: &str, s: f64) -> Entry {
        Entry::new(MemberId::new(m).unwrap(), Score::new(s).unwrap())
    }

    #[test]
    fn cursors_round_trip_and_refuse_everything_else() {
        let b = board("pages");
        for last in [e("m", 0.0), e("user:1", -2.5), e(&"é".repeat(64), 9e15)] {
            let text = encode_cursor(&b, &last);
            assert!(text.len() <= MAX_CURSOR_LEN, "{text}");
            assert_eq!(decode_cursor(&b, &text), Ok(last.clone()));
            // Every one-character change is refused, never misread.
            for at in 0..text.len() {
                for c in ['A', 'z', '-', '_', '0'] {
                    let mut t: Vec<char> = text.chars().collect();
                    if t[at] == c {
                        continue;
                    }
                    t[at] = c;
                    let t: String = t.into_iter().collect();
                    assert!(decode_cursor(&b, &t).is_err(), "{t} was read");
                }
            }
            assert!(decode_cursor(&b, &text[..text.len() - 1]).is_err());
            assert!(decode_cursor(&b, &format!("{text}A")).is_err());
        }
        let text = encode_cursor(&b, &e("m", 1.0));
        assert_eq!(
            decode_cursor(&board("other"), &text),
            Err(CursorError::OtherBoard)
        );
        assert_eq!(
            decode_cursor(&b.at("daily/2026-12-01"), &text),
            Err(CursorError::OtherPeriod)
        );
        for garbage in ["", "!!!", "AAAA", "AAAA=", &"A".repeat(10_000), "bm9wZQ"] {
            assert!(
                matches!(decode_cursor(&b, garbage), Err(CursorError::Malformed(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn first_achiever_cursors_hold_the_tie_and_stay_on_their_kind_of_board() {
        let shared = board("pages");
        let tied = Board {
            ties: Ties::FirstAchiever,
            ..board("pages")
        };
        let last = e("user:1", 5.0).with_tie(8_000_000_000_000_123);
        let text = encode_cursor(&tied, &last);
        assert!(text.len() <= MAX_CURSOR_LEN, "{text}");
        assert_eq!(decode_cursor(&tied, &text), Ok(last.clone()));
        assert!(matches!(
            decode_cursor(&shared, &text),
            Err(CursorError::Malformed(_))
        ));
        let plain = encode_cursor(&shared, &e("user:1", 5.0));
        assert!(matches!(
            decode_cursor(&tied, &plain),
            Err(CursorError::Malformed(_))
        ));
        let longest = e(&"é".repeat(64), 9e15).with_tie(u64::MAX);
        assert!(encode_cursor(&tied, &longest).len() <= MAX_CURSOR_LEN);
    }

    /// The format is a contract with every client holding a cursor across
    /// a release (and the example in `docs/openapi.yaml`): pinned.
    #[test]
    fn cursor_format_is_pinned() {
        let b = Board::new(BoardName::new("global").unwrap());
        let text = encode_cursor(&b, &e("user:70", 120.0));
        assert_eq!(
            text,
            "AX-0NVe1QUnO5vCbGQUZ2qRAXgAAAAAAAHVzZXI6NzCzGrgFkzH9-g"
        );
    }

    /// Walks of a board with many ties, page sizes from 1 up, equal the
    /// sorted oracle with competition ranks, in both orders.
    #[tokio::test]
    async fn walks_equal_the_oracle() {
        for order in [Order::Desc, Order::Asc] {
            let b = Board {
                order,
                ..board("walk")
            };
            let store = MemoryStore::new();
            let mut all = Vec::new();
            for i in 0..157u32 {
                let score = f64::from(i * 7919 % 13);
                let w = Write {
                    member: MemberId::new(&format!("m{i}")).unwrap(),
                    op: Op::Set,
                    value: Score::new(score).unwrap(),
                    idempotency_key: None,
                    request_id: "t".into(),
                    meta: None,
                };
                store.apply(&b, &w).await.unwrap();
                all.push(e(&format!("m{i}"), score));
            }
            all.sort_by(|x, y| order.cmp_entries(x, y));
            let ranks: Vec<u64> = all
                .iter()
                .map(|x| {
                    1 + all
                        .iter()
                        .filter(|o| order.better(o.score, x.score))
                        .count() as u64
                })
                .collect();
            for limit in [1, 2, 3, 10, 156, 157, 1000] {
                let (mut got, mut got_ranks) = (Vec::new(), Vec::new());
                let mut after: Option<Entry> = None;
                loop {
                    let p = page(&store, &b, after.as_ref(), limit).await.unwrap();
                    assert!(p.entries.len() <= limit);
                    got.extend(p.entries.iter().cloned());
                    got_ranks.extend(p.ranks);
                    if !p.more {
                        break;
                    }
                    let text = encode_cursor(&b, p.entries.last().unwrap());
                    after = Some(decode_cursor(&b, &text).unwrap());
                }
                assert_eq!(got, all, "limit {limit} {order:?}");
                assert_eq!(got_ranks, ranks, "ranks, limit {limit} {order:?}");
            }
        }
    }
}
