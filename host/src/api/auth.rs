//! Bearer tokens: the `Auth` extractor finds whom a request speaks for.
//!
//! Tokens are looked up by their SHA-256 in `tokens`; a lookup is cached for a few seconds so a
//! busy client does not cost a query per request (a deleted token stops working within that
//! time).

use super::error::ApiError;
use super::ApiState;
use crate::store::tenants::{self, token_hash, Principal};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CACHE_FOR: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 10_000;

/// Recent token lookups: hash → (principal, when looked up).
#[derive(Default)]
pub(crate) struct TokenCache(Mutex<HashMap<String, (Option<Principal>, Instant)>>);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Option<Principal>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_FOR)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, principal: Option<Principal>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(hash, (principal, Instant::now()));
    }
}

/// Whom a request speaks for.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// The tenant a request acts for: the token's own (a tenant's token naming another tenant
    /// finds nothing), or the one the admin names with `?tenant=` (default `default`), which
    /// must exist.
    pub(super) async fn acting_tenant(
        &self,
        state: &ApiState,
        asked: Option<String>,
    ) -> Result<String, ApiError> {
        match (self.scope(), asked) {
            (Some(t), None) => Ok(t.to_string()),
            (Some(t), Some(asked)) if asked == t => Ok(asked),
            (Some(_), Some(asked)) => Err(ApiError::not_found("tenant", &asked)),
            (None, asked) => {
                let asked =
                    asked.unwrap_or_else(|| crate::store::platform::DEFAULT_TENANT.to_string());
                if tenants::tenant(&state.db, &asked).await?.is_none() {
                    return Err(ApiError::not_found("tenant", &asked));
                }
                Ok(asked)
            }
        }
    }

    /// The tenant the caller is limited to; `None` for the admin.
    pub fn scope(&self) -> Option<&str> {
        match &self.0 {
            Principal::Admin => None,
            Principal::Tenant(t) => Some(t),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.0 == Principal::Admin
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<Arc<ApiState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Auth, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send `Authorization: Bearer <token>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        let hash = token_hash(token);
        if state.config.admin_token_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Auth(Principal::Admin));
        }
        let principal = match state.tokens.get(&hash) {
            Some(p) => p,
            None => {
                let p = tenants::principal(&state.db, token).await?;
                state.tokens.put(hash, p.clone());
                p
            }
        };
        principal
            .map(Auth)
            .ok_or_else(|| unauthorized("unknown token"))
    }
}
