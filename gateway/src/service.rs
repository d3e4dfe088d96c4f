//! The service: [`handle`], which routes a request, checks
//! its method, runs its handler under the request timeout, turns errors
//! into responses (through [`ApiError::into_response`], the only place) and
//! counts and times it.
//!
//! `handle` takes any request body, so tests call it in process with a
//! `Full<Bytes>` body and the server calls it with hyper's `Incoming`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::admin;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::likes;
use crate::limit::client_ip;
use crate::members;
use crate::reads;
use crate::reply::{json, Reply};
use crate::request::Query;
use crate::router::{decode, route_request, Route, Routed};
use crate::state::AppState;
use crate::writes;

/// Serves one request: route, check the method, run the handler under the
/// request timeout, map errors, count and time it.
pub async fn handle<B>(state: Arc<AppState>, peer: IpAddr, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let routed = route_request(&parts.method, parts.uri.path());
    let reply = if !routed.route.accepts(&parts.method) {
        Err(ApiError::method_not_allowed(routed.route.allow()))
    } else {
        let work = dispatch(&state, routed, peer, &parts, body);
        match tokio::time::timeout(state.request_timeout, work).await {
            Ok(reply) => reply,
            // A write that ran out of time may have reached the store.
            Err(_) if matches!(routed.route, Route::Scores | Route::Events | Route::ScoresBatch) => Err(ApiError::unavailable(
                ErrorCode::OutcomeUnknown,
                "the write did not finish in time; it may have been applied: retry with the same Idempotency-Key",
            )),
            Err(_) => Err(ApiError::unavailable(
                ErrorCode::Timeout,
                "the request did not finish in time; retry later",
            )),
        }
    };
    let response = reply.unwrap_or_else(ApiError::into_response);
    state
        .route_metrics
        .record(routed.route, response.status(), started.elapsed());
    response
}

async fn dispatch<B>(
    state: &AppState,
    routed: Routed<'_>,
    peer: IpAddr,
    parts: &http::request::Parts,
    body: B,
) -> Reply
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let query = Query(parts.uri.query().unwrap_or(""));
    let client = || client_ip(peer, &parts.headers, &state.trusted_proxies);
    if matches!(
        routed.route,
        Route::Top
            | Route::Member
            | Route::Around
            | Route::Static
            | Route::Periods
            | Route::Entries
            | Route::Likes
            | Route::LikesLookup
            | Route::ActorLikes
            | Route::OwnerLikes
            | Route::MembersLookup
    ) {
        state.admit(&state.read_limiter, "reads", client)?;
    }
    let registry = state.registry.load();
    let caller = registry.keys.caller(&parts.headers)?;
    if let Some(scope) = board_scope(routed.route) {
        let board = state.board(&decode(routed.board, "board")?)?;
        auth::authorize(&registry.keys, &board, caller.as_deref(), scope)?;
        let limited = scope != standings_config::KeyScope::Admin;
        if let Some(limits) = registry.limits.get(&board.tenant).filter(|_| limited) {
            let key = caller.as_ref().map(|c| &c.key_id);
            limits.admit(scope == standings_config::KeyScope::Write, key)?;
        }
    }
    if matches!(routed.route, Route::Backup | Route::Reload) {
        auth::authorize_operator(&registry.keys, caller.as_deref())?;
    }
    // Events and likes belong to the caller's tenant (`public` without a
    // key): the key needs write for events, read for like reads.
    let tenant = match like_scope(routed.route) {
        Some(scope) => {
            let tenant = crate::events::tenant_of(caller.as_deref());
            auth::authorize_tenant(caller.as_deref(), scope)?;
            if let Some(limits) = registry.limits.get(tenant) {
                let key = caller.as_ref().map(|c| &c.key_id);
                limits.admit(scope == standings_config::KeyScope::Write, key)?;
            }
            let events = registry.events_of(tenant).cloned();
            Some(events.ok_or_else(ApiError::not_found)?)
        }
        None => None,
    };
    drop(registry);
    match routed.route {
        Route::Scores => {
            state.admit(&state.write_limiter, "writes", client)?;
            let board = decode(routed.board, "board")?;
            writes::write_score(state, &board, caller.as_deref(), &parts.headers, body).await
        }
        Route::Top => {
            query.only(&["limit", "offset", "period"])?;
            reads::top(state, &decode(routed.board, "board")?, &query).await
        }
        Route::Member => {
            query.only(&["period"])?;
            let _permit = state.fanout_permit().await?;
            let board = decode(routed.board, "board")?;
            reads::member(state, &board, &decode(routed.member, "member")?, &query).await
        }
        Route::Around => {
            query.only(&["radius", "period"])?;
            let _permit = state.fanout_permit().await?;
            let board = decode(routed.board, "board")?;
            let member = decode(routed.member, "member")?;
            reads::around(state, &board, &member, &query).await
        }
        Route::Static => reads::static_file(
            state,
            &decode(routed.board, "board")?,
            &decode(routed.period, "period")?,
            routed.file,
            &parts.headers,
        ),
        Route::Periods => {
            query.only(&["kind", "limit"])?;
            let _permit = state.fanout_permit().await?;
            reads::periods(state, &decode(routed.board, "board")?, &query).await
        }
        Route::Entries => {
            query.only(&["limit", "after", "period"])?;
            let _permit = state.fanout_permit().await?;
            crate::pages::entries(state, &decode(routed.board, "board")?, &query).await
        }
        Route::BlendWeights => {
            query.only(&[])?;
            let board = decode(routed.board, "board")?;
            let name = decode(routed.period, "blend")?;
            admin::set_blend(state, &board, &name, &parts.headers, body).await
        }
        Route::Healthz => Ok(json(
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ok\"}"),
        )),
        Route::Readyz => reads::readyz(state).await,
        Route::Metrics => Ok(reads::metrics_text(state)),
        Route::Backup => {
            query.only(&[])?;
            admin::backup(state).await
        }
        Route::Reload => {
            query.only(&[])?;
            admin::reload(state)
        }
        Route::CreateBoard => {
            query.only(&[])?;
            let caller = state.registry.load().keys.caller(&parts.headers)?;
            admin::create_board(state, caller.as_deref(), &parts.headers, body).await
        }
        Route::DeleteBoard => {
            query.only(&[])?;
            admin::delete_board(state, &decode(routed.board, "board")?).await
        }
        Route::RemoveMember => {
            query.only(&[])?;
            let caller = state.registry.load().keys.caller(&parts.headers)?;
            let board = decode(routed.board, "board")?;
            let member = decode(routed.member, "member")?;
            admin::remove_member(state, &board, &member, caller.as_deref()).await
        }
        Route::Boards => {
            query.only(&[])?;
            let caller = state.registry.load().keys.caller(&parts.headers)?;
            reads::boards(state, caller.as_deref())
        }
        Route::Purge => {
            query.only(&[])?;
            admin::purge(state, &decode(routed.board, "board")?)
        }
        Route::Events => {
            query.only(&[])?;
            state.admit(&state.write_limiter, "writes", client)?;
            crate::events::post_events(state, caller.as_deref(), &parts.headers, body).await
        }
        Route::Likes => {
            query.only(&["actor"])?;
            let tenant = tenant.ok_or_else(ApiError::not_found)?;
            let target = decode(routed.member, "target")?;
            likes::target(state, &tenant, &target, &query).await
        }
        Route::LikesLookup => {
            query.only(&[])?;
            let tenant = tenant.ok_or_else(ApiError::not_found)?;
            likes::lookup(state, &tenant, &parts.headers, body).await
        }
        Route::ActorLikes => {
            query.only(&["limit"])?;
            let tenant = tenant.ok_or_else(ApiError::not_found)?;
            let actor = decode(routed.member, "actor")?;
            likes::actor(state, &tenant, &actor, &query).await
        }
        Route::OwnerLikes => {
            query.only(&[])?;
            let tenant = tenant.ok_or_else(ApiError::not_found)?;
            likes::owner(state, &tenant, &decode(routed.member, "owner")?).await
        }
        Route::BoardWeights => {
            query.only(&[])?;
            let board = decode(routed.board, "board")?;
            admin::set_weights(state, &board, &parts.headers, body).await
        }
        Route::MembersLookup => {
            query.only(&[])?;
            let _permit = state.fanout_permit().await?;
            let board = decode(routed.board, "board")?;
            members::lookup(state, &board, &parts.headers, body).await
        }
        Route::ScoresBatch => {
            query.only(&[])?;
            state.admit(&state.write_limiter, "writes", client)?;
            let board = decode(routed.board, "board")?;
            members::batch(state, &board, caller.as_deref(), &parts.headers, body).await
        }
        Route::NotFound => Err(ApiError::not_found()),
    }
}

/// The scope a like or event route needs of a key (`None`: not one).
fn like_scope(route: Route) -> Option<standings_config::KeyScope> {
    use standings_config::KeyScope;
    match route {
        Route::Events => Some(KeyScope::Write),
        Route::Likes | Route::LikesLookup | Route::ActorLikes | Route::OwnerLikes => {
            Some(KeyScope::Read)
        }
        _ => None,
    }
}

/// The scope a board route needs of a key (`None`: not a board route).
fn board_scope(route: Route) -> Option<standings_config::KeyScope> {
    use standings_config::KeyScope;
    match route {
        Route::Top
        | Route::Member
        | Route::Around
        | Route::Static
        | Route::Periods
        | Route::Entries
        | Route::MembersLookup => Some(KeyScope::Read),
        Route::Scores | Route::ScoresBatch => Some(KeyScope::Write),
        Route::BlendWeights
        | Route::BoardWeights
        | Route::Purge
        | Route::DeleteBoard
        | Route::RemoveMember => Some(KeyScope::Admin),
        Route::Healthz
        | Route::Readyz
        | Route::Metrics
        | Route::Backup
        | Route::Reload
        | Route::Boards
        | Route::CreateBoard
        | Route::Events
        | Route::Likes
        | Route::LikesLookup
        | Route::ActorLikes
        | Route::OwnerLikes
        | Route::NotFound => None,
    }
}
