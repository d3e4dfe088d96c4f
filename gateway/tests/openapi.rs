//! `docs/openapi.yaml` against the gateway: every route is in the spec and
//! nothing else is, every error code the gateway answers is in the spec's
//! `Error` schema and nothing else is, every error response has the
//! `Error` body, and every route documents the API-key answers (401, and
//! 403 with the scope it needs). A cheap guard that the contract and the
//! code do not drift apart; `scripts/schemathesis.sh` is the expensive one
//! (it fuzzes a running gateway against the same file).

use std::collections::BTreeSet;

use serde_json::Value;
use standings_core::{MemberId, Op, Score, StoreError};
use standings_gateway::error::{ApiError, ErrorCode};
use standings_gateway::router::{route_request, Route};

/// The router's endpoints (`route()` in `gateway/src/router.rs`), as the spec
/// spells them.
const ROUTES: [(&str, &str); 31] = [
    ("post", "/v1/boards/{board}/scores"),
    ("get", "/v1/boards/{board}/top"),
    ("get", "/v1/boards/{board}/members/{member}"),
    ("get", "/v1/boards/{board}/members/{member}/around"),
    ("get", "/static/{board}/top20.json"),
    ("get", "/static/{board}/top100.json"),
    ("get", "/static/{board}/top1000.json"),
    ("get", "/static/{board}/{period}/top20.json"),
    ("get", "/static/{board}/{period}/top100.json"),
    ("get", "/static/{board}/{period}/top1000.json"),
    ("get", "/v1/boards/{board}/periods"),
    ("put", "/v1/admin/boards/{board}/blends/{name}"),
    ("post", "/v1/admin/boards/{board}/purge"),
    ("post", "/v1/admin/reload"),
    ("get", "/v1/boards"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/admin/backup"),
    ("post", "/v1/admin/boards"),
    ("delete", "/v1/admin/boards/{board}"),
    ("delete", "/v1/boards/{board}/members/{member}"),
    ("post", "/v1/events"),
    ("get", "/v1/likes/{target}"),
    ("post", "/v1/likes:lookup"),
    ("get", "/v1/actors/{actor}/likes"),
    ("get", "/v1/owners/{owner}/likes"),
    ("put", "/v1/admin/boards/{board}/weights"),
    ("get", "/v1/boards/{board}/entries"),
    ("post", "/v1/boards/{board}/members:lookup"),
    ("post", "/v1/boards/{board}/scores:batch"),
];

/// Every `code` the gateway answers: `ErrorCode` in `gateway/src/error.rs`,
/// which the core types' `InputCode`s map into. Add a code here and to the
/// spec together.
const ERROR_CODES: [&str; 37] = [
    // parse_write, core's MemberId / Score / Op
    "invalid_json",
    "missing_field",
    "unknown_field",
    "invalid_board",
    "invalid_member",
    "invalid_score",
    "invalid_op",
    // headers, query, path
    "invalid_idempotency_key",
    "unknown_parameter",
    "invalid_parameter",
    "invalid_path",
    // API keys: 401, 403
    "unauthorized",
    "forbidden",
    // 404, 405, 413, 415
    "unknown_board",
    "member_not_found",
    "not_found",
    "method_not_allowed",
    "body_too_large",
    "unsupported_media_type",
    // 429
    "rate_limited",
    // 503
    "store_unavailable",
    "store_error",
    "timeout",
    "not_ready",
    "overloaded",
    "idempotency_conflict",
    // 422 of POST /v1/admin/reload
    "invalid_config",
    "outcome_unknown",
    // periods and blends: 400, 404, 400
    "invalid_period",
    "unknown_period",
    "invalid_blend",
    // 409 of POST /v1/admin/boards and DELETE /v1/admin/boards/{board}
    "board_exists",
    "board_in_config",
    // POST /v1/events: 400, and 503 when the event spool is full
    "invalid_event",
    "spool_full",
    // GET /v1/boards/{board}/entries: 400
    "invalid_cursor",
    "invalid_meta",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// A spec path with its templates filled in, as a request would have it.
fn fill(path: &str) -> String {
    path.replace("{board}", "arena")
        .replace("{member}", "user%3A1")
        .replace("{period}", "daily")
        .replace("{name}", "hot")
        .replace("{target}", "video%3A9")
        .replace("{actor}", "user%3A1")
        .replace("{owner}", "user%3A5")
}

/// Follows a local `$ref` (`#/components/...`), if `node` is one.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("only local $refs");
            spec.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => node,
    }
}

#[test]
fn is_openapi_3_0() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.0.3", "3.0 for tool compatibility");
    assert!(spec["info"]["version"].is_string());
}

#[test]
fn every_route_is_in_the_spec_and_nothing_else() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{} {path} is routed but not in docs/openapi.yaml",
            method.to_uppercase()
        );
    }
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in paths {
        for method in methods.iter().filter(|m| item.get(**m).is_some()) {
            assert!(
                ROUTES.contains(&(*method, path.as_str())),
                "docs/openapi.yaml has {} {path}, which the gateway does not route",
                method.to_uppercase()
            );
        }
    }
}

/// Each spec path, with its templates filled in, reaches a route that
/// takes the spec's method, and every route's `Allow` value is one the
/// spec's `Allow` header lists.
#[test]
fn spec_paths_reach_their_routes() {
    let spec = spec();
    for (method, path) in ROUTES {
        let concrete = fill(path);
        let method = http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let routed = route_request(&method, &concrete).route;
        assert_ne!(routed, Route::NotFound, "{path} does not route");
        assert!(
            routed.accepts(&method),
            "{routed:?} does not take {method} ({path})"
        );
    }
    for r in Route::ALL.iter().filter(|r| **r != Route::NotFound) {
        let documented = ROUTES.iter().any(|(method, path)| {
            let concrete = fill(path);
            let method = http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            route_request(&method, &concrete).route == *r
        });
        assert!(
            documented,
            "{r:?} is routed but no ROUTES entry (and so no spec path) reaches it"
        );
    }
    let allow: BTreeSet<&str> = spec["components"]["headers"]["Allow"]["schema"]["enum"]
        .as_array()
        .expect("Allow has an enum")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    for r in Route::ALL.iter().filter(|r| **r != Route::NotFound) {
        assert!(
            allow.contains(r.allow()),
            "{r:?} answers Allow: {}, which the spec does not list",
            r.allow()
        );
    }
}

#[test]
fn every_error_code_is_in_the_spec_and_nothing_else() {
    let spec = spec();
    let code = &spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"];
    let listed: BTreeSet<&str> = code["enum"]
        .as_array()
        .expect("Error.error.code has an enum")
        .iter()
        .map(|v| v.as_str().expect("codes are strings"))
        .collect();
    let ours: BTreeSet<&str> = ERROR_CODES.into_iter().collect();
    assert_eq!(
        ours.len(),
        ERROR_CODES.len(),
        "no duplicates in ERROR_CODES"
    );
    let description = code["description"].as_str().unwrap_or_default();
    for c in &ours {
        assert!(
            listed.contains(c),
            "code {c:?} is missing from the spec's Error enum"
        );
        assert!(
            description.contains(&format!("`{c}`")),
            "code {c:?} is not explained in the spec's Error.code description"
        );
    }
    for c in &listed {
        assert!(
            ours.contains(c),
            "the spec lists {c:?}, which the gateway never answers"
        );
    }
}

/// The codes the gateway's own constructors produce are in [`ERROR_CODES`]:
/// the list above cannot fall behind a renamed constructor code.
#[test]
fn error_constructors_use_listed_codes() {
    let produced = [
        ApiError::invalid_json("x").code,
        ApiError::bad_field(ErrorCode::MissingField, "member", "x").code,
        ApiError::unknown_board("nope").code,
        ApiError::unknown_member().code,
        ApiError::not_found().code,
        ApiError::method_not_allowed("POST").code,
        ApiError::too_large(1).code,
        ApiError::unsupported_media_type().code,
        ApiError::rate_limited(std::time::Duration::from_secs(1)).code,
        ApiError::from(StoreError::Unavailable("down".into())).code,
        ApiError::from(StoreError::Corrupt("junk".into())).code,
        ApiError::from(StoreError::OutOfRange).code,
        ApiError::from(MemberId::new("").unwrap_err()).code,
        ApiError::from(Score::new(f64::NAN).unwrap_err()).code,
        ApiError::from(Op::parse("decr").unwrap_err()).code,
        ApiError::from(standings_core::Meta::parse("[]").unwrap_err()).code,
        ApiError::from(standings_core::events::EventId::new("").unwrap_err()).code,
        standings_gateway::auth::unauthorized("x").code,
    ];
    for code in produced {
        assert!(
            ERROR_CODES.contains(&code.as_str()),
            "{code:?} is not in ERROR_CODES"
        );
    }
    let all: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let listed: BTreeSet<&str> = ERROR_CODES.into_iter().collect();
    assert_eq!(all, listed, "ErrorCode::ALL and ERROR_CODES agree");
}

#[test]
fn every_error_response_has_the_error_body_and_its_headers() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let n: u16 = status.parse().expect("numeric status");
                let response = resolve(&spec, response);
                let at = format!("{} {path} {status}", method.to_uppercase());
                if n < 400 {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{at} has the Error body"
                );
                if n == 401 {
                    assert!(
                        response["headers"].get("WWW-Authenticate").is_some(),
                        "{at} documents WWW-Authenticate"
                    );
                }
                if n == 429 || n == 503 {
                    assert!(
                        response["headers"].get("Retry-After").is_some(),
                        "{at} documents Retry-After"
                    );
                }
            }
        }
    }
    let not_allowed = &spec["components"]["responses"]["MethodNotAllowed"];
    assert!(
        not_allowed["headers"].get("Allow").is_some(),
        "405 documents Allow"
    );
}

#[test]
fn board_names_and_limits_match_the_code() {
    let spec = spec();
    let board = &spec["components"]["parameters"]["Board"];
    assert_eq!(board["schema"]["pattern"], "^[a-z0-9][a-z0-9_-]{0,63}$");
    let write = &spec["components"]["schemas"]["ScoreWrite"];
    assert_eq!(write["additionalProperties"], false);
    assert_eq!(write["properties"]["member"]["maxLength"], 128);
    let score = &spec["components"]["schemas"]["Score"];
    let max = standings_core::types::MAX_SCORE;
    assert_eq!(score["maximum"].as_f64(), Some(max));
    assert_eq!(score["minimum"].as_f64(), Some(-max));
    let param = |path: &str, name: &str| -> Value {
        spec["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| resolve(&spec, p))
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no {name}"))["schema"]
            .clone()
    };
    let limit = param("/v1/boards/{board}/top", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&1.into(), &1000.into(), &20.into())
    );
    let offset = param("/v1/boards/{board}/top", "offset");
    assert_eq!(
        (&offset["minimum"], &offset["maximum"], &offset["default"]),
        (&0.into(), &999.into(), &0.into())
    );
    let radius = param("/v1/boards/{board}/members/{member}/around", "radius");
    assert_eq!(
        (&radius["minimum"], &radius["maximum"], &radius["default"]),
        (&1.into(), &100.into(), &5.into())
    );
    let periods = param("/v1/boards/{board}/periods", "limit");
    assert_eq!(
        (
            &periods["minimum"],
            &periods["maximum"],
            &periods["default"]
        ),
        (&1.into(), &100.into(), &30.into())
    );
    for path in [
        "/v1/boards/{board}/top",
        "/v1/boards/{board}/members/{member}",
        "/v1/boards/{board}/members/{member}/around",
    ] {
        assert_eq!(
            param(path, "period")["type"],
            "string",
            "{path} takes period"
        );
    }
    let schemas = &spec["components"]["schemas"];
    for name in ["Top", "MemberStanding", "Around"] {
        let required = schemas[name]["required"].as_array().expect("required");
        assert!(
            required.iter().any(|f| f == "period"),
            "{name} requires period"
        );
    }
    let period = &schemas["Period"];
    for field in ["id", "kind", "starts_at", "ends_at", "closed"] {
        assert!(
            period["required"]
                .as_array()
                .expect("required")
                .iter()
                .any(|f| f == field),
            "Period requires {field}"
        );
    }
    assert_eq!(period["properties"]["starts_at"]["nullable"], true);
    assert_eq!(period["properties"]["ends_at"]["nullable"], true);
    let parts = &schemas["BlendParts"]["properties"]["parts"];
    assert_eq!(
        parts["maxItems"].as_u64(),
        Some(standings_core::blend::MAX_PARTS as u64)
    );
    let weight = &schemas["BlendPart"]["properties"]["weight"];
    assert_eq!(
        weight["maximum"].as_f64(),
        Some(standings_core::blend::MAX_WEIGHT)
    );
    assert_eq!(
        weight["minimum"].as_f64(),
        Some(-standings_core::blend::MAX_WEIGHT)
    );
    assert!(
        schemas["WriteResult"]["properties"].get("scores").is_some(),
        "the write answer has scores"
    );
}

/// Deep pages: `limit`'s bounds and default, the cursor's alphabet and
/// length, and the page's shape are the code's.
#[test]
fn entries_limits_match_the_code() {
    use standings_gateway::pages::{DEFAULT_LIMIT, MAX_LIMIT};
    let spec = spec();
    let op = &spec["paths"]["/v1/boards/{board}/entries"]["get"];
    let param = |name: &str| -> Value {
        op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| resolve(&spec, p))
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("entries has no {name}"))["schema"]
            .clone()
    };
    let limit = param("limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&1.into(), &MAX_LIMIT.into(), &DEFAULT_LIMIT.into())
    );
    let after = param("after");
    assert_eq!(
        after["pattern"], "^[A-Za-z0-9_-]+$",
        "base64url, no padding"
    );
    assert_eq!(
        after["maxLength"].as_u64(),
        Some(standings_core::page::MAX_CURSOR_LEN as u64)
    );
    assert_eq!(param("period")["type"], "string");
    let page = &spec["components"]["schemas"]["EntriesPage"];
    assert_eq!(page["properties"]["next"]["nullable"], true);
    assert_eq!(
        page["properties"]["entries"]["maxItems"].as_u64(),
        Some(MAX_LIMIT as u64)
    );
    let example = page["example"]["next"].as_str().expect("an example cursor");
    let global = standings_core::Board::new(standings_core::BoardName::new("global").unwrap());
    assert!(
        standings_core::page::decode_cursor(&global, example).is_ok(),
        "the example is a real cursor of global"
    );
}

/// The spec's bounds on events and like reads are the code's.
#[test]
fn event_and_like_limits_match_the_code() {
    use standings_core::events::{Refusal, MAX_BATCH, MAX_EVENT_ID_LEN, MAX_TYPE_LEN};
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let event = &schemas["Event"];
    assert_eq!(event["additionalProperties"], false);
    assert_eq!(
        event["properties"]["id"]["maxLength"].as_u64(),
        Some(MAX_EVENT_ID_LEN as u64)
    );
    let kinds = event["properties"]["type"]["anyOf"]
        .as_array()
        .expect("type: the like actions, or a counted type's pattern");
    let actions: Vec<&str> = kinds[0]["enum"]
        .as_array()
        .expect("the like actions")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    for action in &actions {
        let parsed = standings_core::events::EventType::parse(action).expect("an action");
        assert!(
            matches!(parsed, standings_core::events::EventType::Like(_)),
            "{action} is a like action"
        );
    }
    assert_eq!(actions.len(), 4);
    assert_eq!(
        kinds[1]["pattern"],
        format!("^[a-z][a-z0-9_]{{0,{}}}$", MAX_TYPE_LEN - 1)
    );
    assert_eq!(event["properties"]["owner"]["nullable"], true);
    assert_eq!(
        schemas["EventBatch"]["properties"]["events"]["maxItems"].as_u64(),
        Some(MAX_BATCH as u64)
    );
    assert_eq!(
        schemas["LikesLookup"]["properties"]["targets"]["maxItems"].as_u64(),
        Some(standings_gateway::likes::MAX_LOOKUP as u64)
    );
    let refusals: BTreeSet<&str> = schemas["EventResult"]["properties"]["error"]["properties"]
        ["code"]["enum"]
        .as_array()
        .expect("refusal codes")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    let ours: BTreeSet<&str> = [Refusal::Conflict, Refusal::Cooldown, Refusal::OutOfRange]
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(refusals, ours, "a batch entry's error codes");
    let limit = spec["paths"]["/v1/actors/{actor}/likes"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit")["schema"]
        .clone();
    let most = standings_config::LikesConfig::default().recent_per_actor;
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&1.into(), &most.into(), &20.into()),
        "limit runs 1..=likes.recent_per_actor (its default), default 20"
    );
    let source = &schemas["BoardDefinition"]["properties"]["source"];
    let feeds: Vec<&str> = source["properties"]["events"]["enum"]
        .as_array()
        .expect("feeds")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    for feed in &feeds {
        assert!(
            standings_core::events::Feed::parse(feed).is_some(),
            "{feed}"
        );
    }
    assert_eq!(feeds.len(), 3, "target, actor, owner");
}

/// The scope a route needs of an API key (`x-scope` in the spec): the
/// gateway's `board_scope` and `like_scope` (events `write`, like reads
/// `read`) in `gateway/src/service.rs`; `admin` for
/// creating a board (`admin::create_board` takes `admin` of the board's
/// tenant or `operator`); and `operator` for the routes that check
/// `auth::authorize_operator` (backup, reload). A route added later fails
/// the test until it is placed here.
fn scope(route: Route) -> Option<&'static str> {
    match route {
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
        | Route::MembersLookup => Some("read"),
        Route::Scores | Route::Events | Route::ScoresBatch => Some("write"),
        Route::BlendWeights
        | Route::BoardWeights
        | Route::Purge
        | Route::CreateBoard
        | Route::DeleteBoard
        | Route::RemoveMember => Some("admin"),
        Route::Backup | Route::Reload => Some("operator"),
        Route::Boards | Route::Healthz | Route::Readyz | Route::Metrics | Route::NotFound => None,
        #[allow(unreachable_patterns)]
        other => panic!("{other:?} is new: say in scope() which scope it needs"),
    }
}

/// A malformed `Authorization` header or an unknown key is 401 on every
/// route (rule 1 in `gateway/src/auth.rs`), and a route that needs a scope
/// can also answer 403: each operation documents both, and names the scope
/// it needs as `x-scope`; the bearer scheme is declared and optional.
#[test]
fn every_route_documents_the_api_key_answers() {
    let spec = spec();
    let scheme = &spec["components"]["securitySchemes"]["apiKey"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&"http".into(), &"bearer".into()),
        "Authorization: Bearer KEY"
    );
    let security = spec["security"].as_array().expect("top-level security");
    assert!(
        security
            .iter()
            .any(|s| s.as_object().is_some_and(|o| o.is_empty())),
        "a key is optional as far as the spec can say (public boards, /healthz)"
    );
    assert!(
        security.iter().any(|s| s.get("apiKey").is_some()),
        "the bearer scheme is offered"
    );
    let rules = scheme["description"].as_str().unwrap_or_default();
    for s in ["read", "write", "admin", "operator"] {
        assert!(
            rules.contains(&format!("`{s}`")),
            "the apiKey scheme explains scope {s:?}"
        );
    }
    for (method, path) in ROUTES {
        let concrete = fill(path);
        let op = &spec["paths"][path][method];
        let at = format!("{} {path}", method.to_uppercase());
        let responses = &op["responses"];
        assert!(responses.get("401").is_some(), "{at} documents 401");
        let verb = http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let needs = scope(route_request(&verb, &concrete).route);
        assert_eq!(
            op.get("x-scope").and_then(Value::as_str),
            needs,
            "{at}: x-scope names the scope the gateway checks"
        );
        assert_eq!(
            responses.get("403").is_some(),
            needs.is_some(),
            "{at}: 403 exactly where a scope is needed"
        );
    }
}
