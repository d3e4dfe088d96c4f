//! The conformance suite of behaviour events and likes: every state
//! transition, counts never negative, repeats and switches, the event id's
//! dedup window, the cooldown, weights in every period and blend of a
//! target-fed board, and what follows from the stream (actors' lists,
//! owners' totals, actor- and owner-fed boards) once the consumer has
//! caught up. Every [`Store`] backend runs it next to
//! [`crate::conformance::run`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use standings_core::blend::{Blend, BlendPart};
use standings_core::board::Board;
use standings_core::events::{
    Event, EventId, EventOutcome, EventSource, EventType, Feed, LikeAction, LikeSpace, LikeState,
    Refusal, Weights,
};
use standings_core::period::PeriodKind;
use standings_core::store::{now_ms_i64, Store};
use standings_core::types::{BoardName, MemberId, Order};

/// Runs every check against `store`. `prefix` must be a valid board-name
/// start, unique per run when the store is shared.
pub async fn run(store: &dyn Store, prefix: &str) {
    every_transition(store, prefix).await;
    repeats_and_conflicts(store, prefix).await;
    counted_types_and_periods(store, prefix).await;
    cooldown(store, prefix).await;
    dedup_window(store, prefix).await;
    stream_followers(store, prefix).await;
    batches_in_order(store, prefix).await;
    tenants_apart(store, prefix).await;
    weights_round_trip(store, prefix).await;
}

/// A likes space of 4 shards, no cooldown, a minute of dedup.
pub fn space(tenant: &str) -> LikeSpace {
    LikeSpace {
        shards: 4,
        cooldown: Duration::ZERO,
        dedup_ttl: Duration::from_secs(60),
        recent_per_actor: 3,
        ..LikeSpace::new(BoardName::new(tenant).expect("tenant id"))
    }
}

/// A 4-shard board of `space`'s tenant fed by `feed` with `weights`.
pub fn fed_board(space: &LikeSpace, name: &str, feed: Feed, weights: &[(&str, f64)]) -> Board {
    let pairs: BTreeMap<String, f64> = weights.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Board {
        shards: space.shards,
        groups: 2,
        top_k: 10,
        order: Order::Desc,
        source: Some(EventSource {
            feed,
            weights: Weights::new(pairs).expect("weights"),
        }),
        ..Board::new(BoardName::new(name).expect("board name")).in_tenant(space.tenant.clone())
    }
}

fn id(text: &str) -> MemberId {
    MemberId::new(text).expect("member id")
}

/// An event of `kind` by `actor` on `target`, owned by `owner`.
pub fn event(eid: &str, kind: &str, actor: &str, target: &str, owner: Option<&str>) -> Event {
    Event {
        id: EventId::new(eid).expect("event id"),
        kind: EventType::parse(kind).expect("event type"),
        actor: id(actor),
        target: id(target),
        owner: owner.map(id),
    }
}

async fn one(store: &dyn Store, space: &LikeSpace, boards: &[Board], e: Event) -> EventOutcome {
    let mut out = store
        .apply_events(space, boards, std::slice::from_ref(&e))
        .await
        .expect("apply_events");
    assert_eq!(out.len(), 1, "one outcome per event");
    out.remove(0)
}

/// The score of `member` in `board`'s addressed period (0 when absent).
pub async fn score(store: &dyn Store, board: &Board, member: &str) -> f64 {
    let m = id(member);
    let shard = board.shard_of(&m).expect("shard");
    store
        .score(board, shard, &m)
        .await
        .expect("score")
        .unwrap_or(0.0)
}

async fn counts(
    store: &dyn Store,
    space: &LikeSpace,
    target: &str,
    actor: Option<&str>,
) -> (u64, u64, LikeState) {
    let a = actor.map(id);
    let c = store
        .like_counts(space, &[id(target)], a.as_ref())
        .await
        .expect("like_counts");
    assert_eq!(c.len(), 1);
    (c[0].likes, c[0].dislikes, c[0].state)
}

/// Runs the stream consumer until nothing is left to follow (bounded).
pub async fn settle(store: &dyn Store, space: &LikeSpace, boards: &[Board]) {
    let shards: Vec<u32> = (0..space.shards).collect();
    for _ in 0..500 {
        store
            .follow_events(space, boards, &shards, "conformance", 500)
            .await
            .expect("follow_events");
        if store.event_lag(space, &shards).await.expect("event_lag") == 0 {
            return;
        }
    }
    panic!("the event stream did not drain in 500 steps");
}

async fn every_transition(store: &dyn Store, prefix: &str) {
    use LikeState as S;
    let space = space(&format!("{prefix}-lt"));
    let board = fed_board(
        &space,
        "clips",
        Feed::Target,
        &[("like", 2.0), ("dislike", -1.0)],
    );
    let boards = [board.clone()];
    let setup: [(S, &[&str]); 3] = [
        (S::None, &[]),
        (S::Liked, &["like"]),
        (S::Disliked, &["dislike"]),
    ];
    let mut n = 0;
    for (from, steps) in setup {
        for action in ["like", "unlike", "dislike", "undislike"] {
            n += 1;
            let target = format!("v:{n}");
            for (i, step) in steps.iter().enumerate() {
                let o = one(
                    store,
                    &space,
                    &boards,
                    event(&format!("s{n}-{i}"), step, "u:1", &target, None),
                )
                .await;
                assert!(o.applied);
            }
            let before = counts(store, &space, &target, Some("u:1")).await;
            assert_eq!(before.2, from);
            let score_before = score(store, &board, &target).await;
            let o = one(
                store,
                &space,
                &boards,
                event(&format!("t{n}"), action, "u:1", &target, None),
            )
            .await;
            let act = match action {
                "like" => LikeAction::Like,
                "unlike" => LikeAction::Unlike,
                "dislike" => LikeAction::Dislike,
                _ => LikeAction::Undislike,
            };
            let want = standings_core::events::transition(from, act);
            assert_eq!(o.refused, None, "{from:?} {action}");
            assert_eq!(o.applied, want.changed(), "{from:?} {action}: applied");
            assert_eq!(o.state, Some(want.state), "{from:?} {action}: state");
            let after = counts(store, &space, &target, Some("u:1")).await;
            assert_eq!(
                (after.0 as i64, after.1 as i64),
                (
                    before.0 as i64 + want.likes,
                    before.1 as i64 + want.dislikes
                ),
                "{from:?} {action}: counts"
            );
            assert_eq!(after.2, want.state);
            let delta = 2.0 * want.likes as f64 - want.dislikes as f64;
            assert_eq!(
                score(store, &board, &target).await,
                score_before + delta,
                "{from:?} {action}: board score"
            );
            // Another actor sees none.
            assert_eq!(counts(store, &space, &target, Some("u:2")).await.2, S::None);
        }
    }
    // Counts never go negative: unlike and undislike of nothing.
    for (i, a) in ["unlike", "undislike", "unlike"].iter().enumerate() {
        let o = one(
            store,
            &space,
            &boards,
            event(&format!("neg{i}"), a, "u:9", "v:neg", None),
        )
        .await;
        assert!(!o.applied);
        assert_eq!(o.state, Some(S::None));
    }
    assert_eq!(counts(store, &space, "v:neg", None).await, (0, 0, S::None));
    assert_eq!(score(store, &board, "v:neg").await, 0.0);
    // A target nobody touched.
    assert_eq!(
        counts(store, &space, "v:never", Some("u:1")).await,
        (0, 0, S::None)
    );
}

async fn repeats_and_conflicts(store: &dyn Store, prefix: &str) {
    let space = space(&format!("{prefix}-lr"));
    let board = fed_board(&space, "clips", Feed::Target, &[("like", 2.0)]);
    let boards = [board.clone()];
    let first = one(
        store,
        &space,
        &boards,
        event("e1", "like", "u:1", "v:1", None),
    )
    .await;
    assert!(first.applied);
    // The same id again: a repeat, nothing moves, the first state answers.
    let again = one(
        store,
        &space,
        &boards,
        event("e1", "like", "u:1", "v:1", None),
    )
    .await;
    assert_eq!(
        again,
        EventOutcome {
            applied: false,
            state: Some(LikeState::Liked),
            refused: None
        }
    );
    // The same id for another event: refused.
    let other = one(
        store,
        &space,
        &boards,
        event("e1", "unlike", "u:1", "v:1", None),
    )
    .await;
    assert!(!other.applied);
    assert_eq!(other.refused, Some(Refusal::Conflict));
    // Liking twice under new ids changes nothing.
    for i in 0..5 {
        let o = one(
            store,
            &space,
            &boards,
            event(&format!("e2-{i}"), "like", "u:1", "v:1", None),
        )
        .await;
        assert!(!o.applied, "liking twice");
        assert_eq!(o.state, Some(LikeState::Liked));
    }
    assert_eq!(counts(store, &space, "v:1", None).await.0, 1);
    assert_eq!(score(store, &board, "v:1").await, 2.0);
    // A switch and back.
    assert!(
        one(
            store,
            &space,
            &boards,
            event("e3", "dislike", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert_eq!(
        counts(store, &space, "v:1", Some("u:1")).await,
        (0, 1, LikeState::Disliked)
    );
    assert_eq!(score(store, &board, "v:1").await, 0.0);
    assert!(
        one(
            store,
            &space,
            &boards,
            event("e4", "like", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert_eq!(
        counts(store, &space, "v:1", Some("u:1")).await,
        (1, 0, LikeState::Liked)
    );
    assert_eq!(score(store, &board, "v:1").await, 2.0);
}

async fn counted_types_and_periods(store: &dyn Store, prefix: &str) {
    let space = space(&format!("{prefix}-lc"));
    let mut board = fed_board(
        &space,
        "posts",
        Feed::Target,
        &[("like", 2.0), ("comment", 3.0), ("share", 5.0)],
    );
    board.periods = Arc::from([PeriodKind::All, "monthly".parse().expect("kind")]);
    board.blends = Arc::from([Blend {
        name: Arc::from("hot"),
        parts: Arc::from([BlendPart {
            kind: PeriodKind::All,
            previous: false,
            weight: 0.5,
        }]),
    }]);
    let boards = [board.clone()];
    let mut want = 0.0;
    for (i, kind) in ["comment", "share", "comment", "like", "view"]
        .iter()
        .enumerate()
    {
        let o = one(
            store,
            &space,
            &boards,
            event(&format!("c{i}"), kind, &format!("u:{i}"), "p:1", None),
        )
        .await;
        assert!(o.applied, "{kind}");
        assert_eq!(
            o.state.is_some(),
            *kind == "like",
            "{kind}: state only for likes"
        );
        want += match *kind {
            "comment" => 3.0,
            "share" => 5.0,
            "like" => 2.0,
            _ => 0.0,
        };
    }
    assert_eq!(want, 13.0);
    assert_eq!(score(store, &board, "p:1").await, want, "all");
    let month = board
        .current_periods(now_ms_i64())
        .into_iter()
        .find(|p| p.kind != PeriodKind::All)
        .expect("the monthly period");
    assert_eq!(
        score(store, &board.at(month.id.clone()), "p:1").await,
        want,
        "period {}",
        month.id
    );
    assert_eq!(
        score(store, &board.at("hot"), "p:1").await,
        want * 0.5,
        "blend"
    );
    // Counted types keep no like counts.
    assert_eq!(
        counts(store, &space, "p:1", None).await,
        (1, 0, LikeState::None)
    );
}

async fn cooldown(store: &dyn Store, prefix: &str) {
    let space = LikeSpace {
        cooldown: Duration::from_secs(30),
        ..space(&format!("{prefix}-lk"))
    };
    let board = fed_board(&space, "clips", Feed::Target, &[("like", 1.0)]);
    let boards = [board.clone()];
    assert!(
        one(
            store,
            &space,
            &boards,
            event("k1", "like", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    let o = one(
        store,
        &space,
        &boards,
        event("k2", "unlike", "u:1", "v:1", None),
    )
    .await;
    assert_eq!(
        o.refused,
        Some(Refusal::Cooldown),
        "a second action within the cooldown"
    );
    assert!(!o.applied);
    assert_eq!(
        counts(store, &space, "v:1", Some("u:1")).await,
        (1, 0, LikeState::Liked)
    );
    // A refused event leaves no dedup record: it is not a repeat later.
    let again = one(
        store,
        &space,
        &boards,
        event("k2", "unlike", "u:1", "v:1", None),
    )
    .await;
    assert_eq!(again.refused, Some(Refusal::Cooldown));
    // The repeat of the applied one still answers as a repeat.
    let repeat = one(
        store,
        &space,
        &boards,
        event("k1", "like", "u:1", "v:1", None),
    )
    .await;
    assert_eq!((repeat.applied, repeat.refused), (false, None));
    // Other pairs are not held up, and counted types have no cooldown.
    assert!(
        one(
            store,
            &space,
            &boards,
            event("k3", "like", "u:2", "v:1", None)
        )
        .await
        .applied
    );
    assert!(
        one(
            store,
            &space,
            &boards,
            event("k4", "like", "u:1", "v:2", None)
        )
        .await
        .applied
    );
    assert!(
        one(
            store,
            &space,
            &boards,
            event("k5", "comment", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert!(
        one(
            store,
            &space,
            &boards,
            event("k6", "comment", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert_eq!(score(store, &board, "v:1").await, 2.0);
}

async fn dedup_window(store: &dyn Store, prefix: &str) {
    let space = LikeSpace {
        dedup_ttl: Duration::from_millis(800),
        ..space(&format!("{prefix}-lw"))
    };
    let board = fed_board(&space, "clips", Feed::Target, &[("share", 1.0)]);
    let boards = [board.clone()];
    assert!(
        one(
            store,
            &space,
            &boards,
            event("w1", "share", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert!(
        !one(
            store,
            &space,
            &boards,
            event("w1", "share", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = one(
        store,
        &space,
        &boards,
        event("w1", "share", "u:1", "v:1", None),
    )
    .await;
    assert!(later.applied, "past the dedup window an id applies again");
    assert_eq!(score(store, &board, "v:1").await, 2.0);
}

async fn stream_followers(store: &dyn Store, prefix: &str) {
    let space = space(&format!("{prefix}-lf"));
    let by_target = fed_board(&space, "videos", Feed::Target, &[("like", 1.0)]);
    let by_actor = fed_board(
        &space,
        "fans",
        Feed::Actor,
        &[("like", 1.0), ("comment", 2.0)],
    );
    let by_owner = fed_board(
        &space,
        "creators",
        Feed::Owner,
        &[("like", 10.0), ("dislike", -1.0)],
    );
    let boards = [by_target.clone(), by_actor.clone(), by_owner.clone()];
    let steps = [
        ("f1", "like", "u:1", "v:1", Some("c:1")),
        ("f2", "like", "u:1", "v:2", Some("c:1")),
        ("f3", "like", "u:1", "v:3", Some("c:2")),
        ("f4", "like", "u:1", "v:4", Some("c:2")),
        ("f5", "like", "u:2", "v:1", Some("c:1")),
        ("f6", "unlike", "u:1", "v:2", Some("c:1")),
        ("f7", "dislike", "u:2", "v:1", Some("c:1")),
        ("f8", "comment", "u:2", "v:1", Some("c:1")),
        ("f8", "comment", "u:2", "v:1", Some("c:1")),
        ("f9", "like", "u:3", "v:5", None),
    ];
    for (eid, kind, actor, target, owner) in steps {
        store
            .apply_events(&space, &boards, &[event(eid, kind, actor, target, owner)])
            .await
            .expect("apply_events");
        // Let each like land in its own millisecond, so newest-first is
        // the order they were sent in.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    settle(store, &space, &boards).await;
    // Following again changes nothing (applied once by event id).
    settle(store, &space, &boards).await;
    let list = store
        .actor_likes(&space, &id("u:1"), 10)
        .await
        .expect("actor_likes");
    let targets: Vec<&str> = list.iter().map(|l| l.target.as_str()).collect();
    // u:1 liked v:1..v:4 (the list keeps the newest 3, so v:1 was
    // trimmed off) and then unliked v:2.
    assert_eq!(
        targets,
        ["v:4", "v:3"],
        "newest first, trimmed, unliked removed"
    );
    assert!(list.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    let short = store
        .actor_likes(&space, &id("u:1"), 2)
        .await
        .expect("actor_likes");
    assert_eq!(short.len(), 2);
    // u:2 liked v:1 then switched to dislike: not in its list.
    assert!(store
        .actor_likes(&space, &id("u:2"), 10)
        .await
        .expect("list")
        .is_empty());
    // c:1 owns v:1 (liked by u:1; u:2's like switched away) and v:2
    // (unliked): 1 like stands. c:2 owns v:3 and v:4: 2.
    assert_eq!(
        store.owner_likes(&space, &id("c:1")).await.expect("owner"),
        1
    );
    assert_eq!(
        store.owner_likes(&space, &id("c:2")).await.expect("owner"),
        2
    );
    assert_eq!(
        store.owner_likes(&space, &id("c:9")).await.expect("owner"),
        0
    );
    // Boards fed by target, actor and owner.
    assert_eq!(score(store, &by_target, "v:1").await, 1.0);
    assert_eq!(
        score(store, &by_actor, "u:1").await,
        3.0,
        "4 likes, 1 unlike"
    );
    assert_eq!(
        score(store, &by_actor, "u:2").await,
        2.0,
        "like, switched, one comment"
    );
    assert_eq!(score(store, &by_actor, "u:3").await, 1.0);
    // c:1: +10 +10 +10 (three likes) -10 (unlike) -10 -1 (switch) = 9.
    assert_eq!(score(store, &by_owner, "c:1").await, 9.0);
    assert_eq!(score(store, &by_owner, "c:2").await, 20.0);
}

async fn batches_in_order(store: &dyn Store, prefix: &str) {
    let space = space(&format!("{prefix}-lb"));
    let board = fed_board(&space, "clips", Feed::Target, &[("like", 1.0)]);
    let boards = [board.clone()];
    let batch: Vec<Event> = ["like", "unlike", "like", "like", "dislike", "like"]
        .iter()
        .enumerate()
        .map(|(i, k)| event(&format!("b{i}"), k, "u:1", &format!("v:{}", i % 2), None))
        .chain((0..20).map(|i| event(&format!("m{i}"), "like", &format!("u:{i}"), "v:many", None)))
        .collect();
    let out = store
        .apply_events(&space, &boards, &batch)
        .await
        .expect("apply_events");
    assert_eq!(out.len(), batch.len(), "one outcome per event, in order");
    // v:0 gets like, like, dislike (i = 0, 2, 4); v:1 unlike, like, like.
    let applied: Vec<bool> = out[..6].iter().map(|o| o.applied).collect();
    assert_eq!(applied, [true, false, false, true, true, false]);
    assert_eq!(out[4].state, Some(LikeState::Disliked));
    assert!(out[6..].iter().all(|o| o.applied));
    assert_eq!(
        counts(store, &space, "v:0", Some("u:1")).await,
        (0, 1, LikeState::Disliked)
    );
    assert_eq!(
        counts(store, &space, "v:1", Some("u:1")).await,
        (1, 0, LikeState::Liked)
    );
    assert_eq!(counts(store, &space, "v:many", None).await.0, 20);
    assert_eq!(score(store, &board, "v:many").await, 20.0);
    let many: Vec<MemberId> = (0..30).map(|i| id(&format!("v:{i}"))).collect();
    let looked = store
        .like_counts(&space, &many, Some(&id("u:1")))
        .await
        .expect("like_counts");
    assert_eq!(looked.len(), 30);
    assert_eq!(looked[0].state, LikeState::Disliked);
    assert_eq!(looked[1].likes, 1);
    assert!(looked[2..].iter().all(|c| c.likes == 0 && c.dislikes == 0));
}

async fn tenants_apart(store: &dyn Store, prefix: &str) {
    let a = space(&format!("{prefix}-ta"));
    let b = space(&format!("{prefix}-tb"));
    let board_a = fed_board(&a, "clips", Feed::Target, &[("like", 1.0)]);
    let board_b = fed_board(&b, "clips", Feed::Target, &[("like", 1.0)]);
    assert!(
        one(
            store,
            &a,
            std::slice::from_ref(&board_a),
            event("x", "like", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    // The same id and pair in another tenant is another event.
    assert!(
        one(
            store,
            &b,
            std::slice::from_ref(&board_b),
            event("x", "like", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert!(
        one(
            store,
            &b,
            std::slice::from_ref(&board_b),
            event("y", "unlike", "u:1", "v:1", None)
        )
        .await
        .applied
    );
    assert_eq!(
        counts(store, &a, "v:1", Some("u:1")).await,
        (1, 0, LikeState::Liked)
    );
    assert_eq!(
        counts(store, &b, "v:1", Some("u:1")).await,
        (0, 0, LikeState::None)
    );
    assert_eq!(score(store, &board_a, "v:1").await, 1.0);
    assert_eq!(score(store, &board_b, "v:1").await, 0.0);
}

async fn weights_round_trip(store: &dyn Store, prefix: &str) {
    let space = space(&format!("{prefix}-lwt"));
    let board = fed_board(&space, "clips", Feed::Target, &[("like", 1.0)]);
    let w = Weights::from_json(r#"{"like": 4, "comment": 0.5}"#).expect("weights");
    store.set_weights(&board, &w).await.expect("set_weights");
    let all = store.weights().await.expect("weights");
    let found = all
        .iter()
        .find(|(name, _)| name == board.storage_name())
        .map(|(_, w)| w.clone());
    assert_eq!(found, Some(w.clone()));
    let w2 = Weights::from_json(r#"{"like": 5}"#).expect("weights");
    store.set_weights(&board, &w2).await.expect("set_weights");
    let all = store.weights().await.expect("weights");
    assert_eq!(
        all.iter()
            .filter(|(name, _)| name == board.storage_name())
            .count(),
        1,
        "replaced, not added"
    );
    assert!(all
        .iter()
        .any(|(n, w)| n == board.storage_name() && *w == w2));
}
