//! The router: which endpoint a path names, and its path segments, found
//! once per request without allocating (this runs on every request, and the
//! hot `/top` and static reads allocate nothing else either).
//!
//! Segments stay percent-encoded until a handler asks for them with
//! [`decode`], which borrows when a segment has no escapes.

use std::borrow::Cow;

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::{ApiError, ErrorCode};

/// The endpoint a path names, for dispatch and for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Scores,
    Top,
    Member,
    Around,
    Static,
    Periods,
    BlendWeights,
    Purge,
    Reload,
    Boards,
    CreateBoard,
    DeleteBoard,
    RemoveMember,
    Healthz,
    Readyz,
    Metrics,
    Backup,
    Events,
    Likes,
    LikesLookup,
    ActorLikes,
    OwnerLikes,
    BoardWeights,
    Entries,
    MembersLookup,
    ScoresBatch,
    NotFound,
}

impl Route {
    /// Every route, in [`Route::index`] order.
    pub const ALL: [Route; 27] = [
        Route::Scores,
        Route::Top,
        Route::Member,
        Route::Around,
        Route::Static,
        Route::Periods,
        Route::BlendWeights,
        Route::Purge,
        Route::Reload,
        Route::Boards,
        Route::CreateBoard,
        Route::DeleteBoard,
        Route::RemoveMember,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Backup,
        Route::Events,
        Route::Likes,
        Route::LikesLookup,
        Route::ActorLikes,
        Route::OwnerLikes,
        Route::BoardWeights,
        Route::Entries,
        Route::MembersLookup,
        Route::ScoresBatch,
        Route::NotFound,
    ];

    /// Its position in [`Route::ALL`], for per-route metric handles.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `route` label of its metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Scores => "scores",
            Route::Top => "top",
            Route::Member => "member",
            Route::Around => "around",
            Route::Static => "static",
            Route::Periods => "periods",
            Route::BlendWeights => "admin_blend",
            Route::Purge => "admin_purge",
            Route::Reload => "admin_reload",
            Route::Boards => "boards",
            Route::CreateBoard => "admin_create_board",
            Route::DeleteBoard => "admin_delete_board",
            Route::RemoveMember => "admin_remove_member",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Backup => "admin_backup",
            Route::Events => "events",
            Route::Likes => "likes",
            Route::LikesLookup => "likes_lookup",
            Route::ActorLikes => "actor_likes",
            Route::OwnerLikes => "owner_likes",
            Route::BoardWeights => "admin_weights",
            Route::Entries => "entries",
            Route::MembersLookup => "members_lookup",
            Route::ScoresBatch => "scores_batch",
            Route::NotFound => "not_found",
        }
    }

    /// The methods it takes, as the `Allow` header lists them.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Scores
            | Route::Backup
            | Route::Purge
            | Route::Reload
            | Route::CreateBoard
            | Route::Events
            | Route::LikesLookup
            | Route::MembersLookup
            | Route::ScoresBatch => "POST",
            Route::DeleteBoard => "DELETE",
            Route::Member | Route::RemoveMember => "GET, HEAD, DELETE",
            Route::BlendWeights | Route::BoardWeights => "PUT",
            _ => "GET, HEAD",
        }
    }

    /// Whether it takes `method` (any method reaches `NotFound`'s 404).
    pub fn accepts(self, method: &Method) -> bool {
        match self {
            Route::Scores
            | Route::Backup
            | Route::Purge
            | Route::Reload
            | Route::CreateBoard
            | Route::Events
            | Route::LikesLookup
            | Route::MembersLookup
            | Route::ScoresBatch => method == Method::POST,
            Route::DeleteBoard | Route::RemoveMember => method == Method::DELETE,
            Route::BlendWeights | Route::BoardWeights => method == Method::PUT,
            Route::NotFound => true,
            _ => method == Method::GET || method == Method::HEAD,
        }
    }
}

/// A routed path: the endpoint and its still percent-encoded segments
/// (empty where the route has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    /// Which endpoint.
    pub route: Route,
    /// The `{board}` segment.
    pub board: &'a str,
    /// The `{member}` segment.
    pub member: &'a str,
    /// The static file name (`top20.json`, ...).
    pub file: &'a str,
    /// The static file's period directory (a kind or a blend; empty for
    /// the board's first period), or the `{name}` of a blend route.
    pub period: &'a str,
}

/// Most path segments any route has.
const MAX_SEGMENTS: usize = 6;

/// Splits a raw path into its route and segments.
pub fn route(path: &str) -> Routed<'_> {
    let mut seg = [""; MAX_SEGMENTS];
    let mut count = 0;
    let not_found = Routed {
        route: Route::NotFound,
        board: "",
        member: "",
        file: "",
        period: "",
    };
    for part in path.trim_start_matches('/').split('/') {
        if count == MAX_SEGMENTS {
            return not_found;
        }
        seg[count] = part;
        count += 1;
    }
    let at = |route, board, member, file| Routed {
        route,
        board,
        member,
        file,
        period: "",
    };
    match seg[..count] {
        ["v1", "boards", b, "scores"] => at(Route::Scores, b, "", ""),
        ["v1", "boards", b, "top"] => at(Route::Top, b, "", ""),
        ["v1", "boards", b, "members:lookup"] => at(Route::MembersLookup, b, "", ""),
        ["v1", "boards", b, "scores:batch"] => at(Route::ScoresBatch, b, "", ""),
        ["v1", "boards", b, "members", m] if !m.is_empty() => at(Route::Member, b, m, ""),
        ["v1", "boards", b, "members", m, "around"] if !m.is_empty() => at(Route::Around, b, m, ""),
        ["static", b, f] => at(Route::Static, b, "", f),
        ["static", b, p, f] if !p.is_empty() => Routed {
            period: p,
            ..at(Route::Static, b, "", f)
        },
        ["v1", "boards", b, "periods"] => at(Route::Periods, b, "", ""),
        ["v1", "boards", b, "entries"] => at(Route::Entries, b, "", ""),
        ["v1", "admin", "boards", b, "blends", n] if !n.is_empty() => Routed {
            period: n,
            ..at(Route::BlendWeights, b, "", "")
        },
        ["healthz"] => at(Route::Healthz, "", "", ""),
        ["readyz"] => at(Route::Readyz, "", "", ""),
        ["metrics"] => at(Route::Metrics, "", "", ""),
        ["v1", "admin", "backup"] => at(Route::Backup, "", "", ""),
        ["v1", "admin", "reload"] => at(Route::Reload, "", "", ""),
        ["v1", "boards"] => at(Route::Boards, "", "", ""),
        ["v1", "admin", "boards"] => at(Route::CreateBoard, "", "", ""),
        ["v1", "admin", "boards", b] => at(Route::DeleteBoard, b, "", ""),
        ["v1", "admin", "boards", b, "purge"] => at(Route::Purge, b, "", ""),
        ["v1", "admin", "boards", b, "weights"] => at(Route::BoardWeights, b, "", ""),
        ["v1", "events"] => at(Route::Events, "", "", ""),
        ["v1", "likes:lookup"] => at(Route::LikesLookup, "", "", ""),
        ["v1", "likes", t] if !t.is_empty() => at(Route::Likes, "", t, ""),
        ["v1", "actors", a, "likes"] if !a.is_empty() => at(Route::ActorLikes, "", a, ""),
        ["v1", "owners", o, "likes"] if !o.is_empty() => at(Route::OwnerLikes, "", o, ""),
        _ => not_found,
    }
}

/// Routes a request by method and path: [`route`], except that `DELETE`
/// of a member is the admin's [`Route::RemoveMember`] rather than the
/// member read.
pub fn route_request<'a>(method: &Method, path: &'a str) -> Routed<'a> {
    let mut routed = route(path);
    if routed.route == Route::Member && method == Method::DELETE {
        routed.route = Route::RemoveMember;
    }
    routed
}

/// Percent-decodes a path segment (borrowing when it has no escapes);
/// `field` names it in the error.
pub fn decode<'a>(segment: &'a str, field: &'static str) -> Result<Cow<'a, str>, ApiError> {
    percent_decode_str(segment).decode_utf8().map_err(|_| {
        ApiError::bad_field(
            ErrorCode::InvalidPath,
            field,
            format!("{field} is not UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v1/boards/g/top").route, Route::Top);
        assert_eq!(route("/v1/boards/g/scores").route, Route::Scores);
        assert_eq!(route("/v1/boards/g/members/u%3A1").route, Route::Member);
        assert_eq!(route("/v1/boards/g/members/u/around").route, Route::Around);
        assert_eq!(route("/v1/boards/g/members//around").route, Route::NotFound);
        assert_eq!(route("/static/g/top20.json").route, Route::Static);
        let daily = route("/static/g/daily/top20.json");
        assert_eq!(
            (daily.route, daily.period, daily.file),
            (Route::Static, "daily", "top20.json")
        );
        assert_eq!(route("/v1/boards/g/periods").route, Route::Periods);
        assert_eq!(route("/v1/boards/g/entries").route, Route::Entries);
        assert_eq!(route("/v1/admin/boards").route, Route::CreateBoard);
        assert!(Route::CreateBoard.accepts(&Method::POST));
        assert_eq!(route("/v1/admin/boards/g").route, Route::DeleteBoard);
        assert!(Route::DeleteBoard.accepts(&Method::DELETE));
        assert_eq!(route("/v1/admin/boards/g/purge").route, Route::Purge);
        let blend = route("/v1/admin/boards/g/blends/hot");
        assert_eq!(
            (blend.route, blend.board, blend.period),
            (Route::BlendWeights, "g", "hot")
        );
        assert_eq!(route("/v1/events").route, Route::Events);
        assert_eq!(route("/v1/likes:lookup").route, Route::LikesLookup);
        let likes = route("/v1/likes/video%3A9");
        assert_eq!((likes.route, likes.member), (Route::Likes, "video%3A9"));
        assert_eq!(route("/v1/likes/").route, Route::NotFound);
        assert_eq!(route("/v1/actors/u/likes").route, Route::ActorLikes);
        assert_eq!(route("/v1/owners/u/likes").route, Route::OwnerLikes);
        assert_eq!(
            route("/v1/admin/boards/g/weights").route,
            Route::BoardWeights
        );
        assert!(Route::BoardWeights.accepts(&Method::PUT));
        assert!(Route::LikesLookup.accepts(&Method::POST));
        assert_eq!(
            route("/v1/boards/g/members:lookup").route,
            Route::MembersLookup
        );
        assert_eq!(route("/v1/boards/g/scores:batch").route, Route::ScoresBatch);
        assert_eq!(
            route("/v1/boards/g/members/members:lookup").route,
            Route::Member,
            "a member may be named members:lookup"
        );
        assert!(Route::ScoresBatch.accepts(&Method::POST));
        assert_eq!(route("/v1/boards/g").route, Route::NotFound);
        assert_eq!(route("/").route, Route::NotFound);
    }

    #[test]
    fn segments_are_kept_for_the_handler() {
        let r = route("/v1/boards/g/members/u%3A1/around");
        assert_eq!((r.board, r.member), ("g", "u%3A1"));
        assert_eq!(decode(r.member, "member").unwrap(), "u:1");
        assert_eq!(route("/static/g/top20.json").file, "top20.json");
        let bad = decode("%FF", "member").unwrap_err();
        assert_eq!(
            (bad.code, bad.field.as_deref()),
            (ErrorCode::InvalidPath, Some("member"))
        );
    }

    #[test]
    fn metric_indexes_follow_all() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }
}
