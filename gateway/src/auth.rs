//! Who is calling, and whether they may: API keys sent as
//! `Authorization: Bearer KEY`, looked up by their SHA-256 (the config holds
//! only the hash), each belonging to one tenant with scopes `read`, `write`
//! and `admin`.
//!
//! The rules, in order (see `docs/operations.md`, "Security"):
//!
//! 1. A key the gateway does not know, or an `Authorization` header that is
//!    not `Bearer KEY`, is 401 on every route, even where no key is needed:
//!    a client that sends a wrong key should learn so.
//! 2. Boards of tenant `public` need no key (the embedded default), except
//!    for their admin routes once tenants are configured, which need an
//!    `operator` key (no tenant's admin owns a public board).
//! 3. Reads of a board with `public_reads` need no key (CDN pulls).
//! 4. Otherwise a key is needed (401 without one), of the board's own
//!    tenant (for admin routes, an `operator` key of any tenant will do): a key of another tenant gets the same 404 as a board that
//!    does not exist, so a board's existence is not revealed; and with the
//!    scope the route needs (403 without it).
//! 5. Operator routes (backup, reload) need a key with the `operator`
//!    scope once any tenant is configured: a backup holds every tenant's
//!    data, so no tenant's own admin key may take one. Without tenants
//!    they are open like every route.
//!
//! Keys are never logged or counted: only the key's `id` from the config
//! is, where an admin change is logged.

use std::collections::HashMap;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue};
use standings_config::{key_digest, parse_digest, Config, KeyScope, PUBLIC_TENANT};

use crate::error::{ApiError, ErrorCode};
use crate::view::BoardState;

/// An authenticated caller: the key's tenant, its id and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant the key belongs to.
    pub tenant: Arc<str>,
    /// The key's id in the config (never the key).
    pub key_id: Arc<str>,
    /// What it may do.
    pub scopes: Vec<KeyScope>,
}

impl Caller {
    fn may(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Every configured key, by the SHA-256 of the key.
#[derive(Debug, Default)]
pub struct Keys {
    by_digest: HashMap<[u8; 32], Arc<Caller>>,
    /// Whether any tenant is configured (operator routes need a key then).
    pub tenants_configured: bool,
}

impl Keys {
    /// The keys of a validated config.
    pub fn from_config(config: &Config) -> Self {
        let mut by_digest = HashMap::new();
        for tenant in &config.tenants {
            for key in &tenant.keys {
                let Some(digest) = parse_digest(&key.sha256) else {
                    continue; // validated with the config
                };
                let caller = Caller {
                    tenant: Arc::from(tenant.id.as_str()),
                    key_id: Arc::from(key.id.as_str()),
                    scopes: key.scopes.clone(),
                };
                by_digest.insert(digest, Arc::new(caller));
            }
        }
        Self {
            by_digest,
            tenants_configured: !config.tenants.is_empty(),
        }
    }

    /// The caller the request's `Authorization` header names: `None`
    /// without the header, 401 for one that is not `Bearer KEY` or names
    /// no configured key.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Option<Arc<Caller>>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, key) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer KEY`"))?;
        self.by_digest
            .get(&key_digest(key.as_bytes()))
            .cloned()
            .map(Some)
            .ok_or_else(|| unauthorized("unknown API key"))
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
pub fn unauthorized(message: &'static str) -> ApiError {
    let mut e = ApiError::new(ErrorCode::Unauthorized, message).with_field("Authorization");
    e.headers
        .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
    e
}

/// Whether `caller` may do `scope` on `board` (rules 2 to 4 above).
pub fn authorize(
    keys: &Keys,
    board: &BoardState,
    caller: Option<&Caller>,
    scope: KeyScope,
) -> Result<(), ApiError> {
    if &*board.tenant == PUBLIC_TENANT {
        if scope == KeyScope::Admin {
            return authorize_operator(keys, caller);
        }
        return Ok(());
    }
    if scope == KeyScope::Read && board.public_reads {
        return Ok(());
    }
    let Some(caller) = caller else {
        return Err(unauthorized(
            "this board needs an API key: send Authorization: Bearer KEY",
        ));
    };
    // Operators administer every tenant's boards (they can create them in
    // any tenant too); they read and write only their own tenant's.
    if scope == KeyScope::Admin && caller.may(KeyScope::Operator) {
        return Ok(());
    }
    if caller.tenant != board.tenant {
        return Err(ApiError::unknown_board(board.board.name.as_str()));
    }
    if !caller.may(scope) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("key {} lacks the {} scope", caller.key_id, scope.as_str()),
        ));
    }
    Ok(())
}

/// Whether `caller` may do `scope` on its own tenant's likes and events
/// (no key: tenant `public`, which needs none).
pub fn authorize_tenant(caller: Option<&Caller>, scope: KeyScope) -> Result<(), ApiError> {
    match caller {
        Some(c) if !c.may(scope) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("key {} lacks the {} scope", c.key_id, scope.as_str()),
        )),
        _ => Ok(()),
    }
}

/// Whether `caller` may use an operator route (rule 5 above).
pub fn authorize_operator(keys: &Keys, caller: Option<&Caller>) -> Result<(), ApiError> {
    if !keys.tenants_configured {
        return Ok(());
    }
    match caller {
        None => Err(unauthorized(
            "operator routes need an operator key: send Authorization: Bearer KEY",
        )),
        Some(c) if c.may(KeyScope::Operator) => Ok(()),
        Some(c) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("key {} lacks the operator scope", c.key_id),
        )),
    }
}
