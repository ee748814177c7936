//! `PUT /secrets/{name}`, `GET /secrets`, `DELETE /secrets/{name}`: the secrets `env("NAME")`
//! reads in a tenant's jobs. A tenant's token acts on its own tenant's secrets; the admin token
//! on those of `?tenant=` (default `default`, the operator's). Values go in and never come out:
//! lists show names and update times only.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, JsonBody, PathParams, QueryParams};
use super::page::Listing;
use super::ApiState;
use crate::store::secrets::{self, SecretError, SecretInfo};
use crate::store::sql::datetime_text;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A secret as the API shows it: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretSummary {
    pub name: String,
    pub updated_at: String,
}

impl From<SecretInfo> for SecretSummary {
    fn from(s: SecretInfo) -> SecretSummary {
        SecretSummary {
            name: s.name,
            updated_at: datetime_text(&s.updated_at),
        }
    }
}

/// The body of `PUT /secrets/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecretValue {
    /// 1 to 65,536 bytes.
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecretParams {
    /// The tenant whose secrets (admin token only; default `default`).
    pub tenant: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if secrets::valid_name(name) {
        Ok(())
    } else {
        Err(secret_error(SecretError::BadName(name.to_string())))
    }
}

fn secret_error(e: SecretError) -> ApiError {
    let message = e.to_string();
    match e {
        SecretError::BadName(_) => ApiError::bad_request("invalid_secret_name", message),
        SecretError::BadValue(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_secret_value",
            message,
        ),
        SecretError::TooMany(_) => ApiError::conflict("too_many_secrets", message),
        SecretError::Busy(_) => ApiError::conflict("secret_busy", message),
        SecretError::UnknownTenant(t) => ApiError::not_found("tenant", &t),
        other => ApiError::internal(other),
    }
}

/// Set a secret: `env("NAME")` in the tenant's jobs reads it. Creates or replaces.
#[utoipa::path(put, path = "/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description = "Like an environment variable"),
        SecretParams),
    request_body = SecretValue,
    responses((status = 201, body = SecretSummary, description = "A new secret"),
        (status = 200, body = SecretSummary, description = "The secret's value was replaced"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody,
            description = "The tenant holds 1,000 secrets already, or the secret was changed \
                at the same time"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(super) async fn put_secret(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(name): PathParams<String>,
    QueryParams(params): QueryParams<SecretParams>,
    JsonBody(body): JsonBody<SecretValue>,
) -> Result<(StatusCode, Json<SecretSummary>), ApiError> {
    check_name(&name)?;
    let tenant = auth.acting_tenant(&state, params.tenant).await?;
    let keys = &state.executor.services().config().secret_keys;
    let (info, created) = secrets::put(&state.db, keys, &tenant, &name, &body.value)
        .await
        .map_err(secret_error)?;
    tracing::info!(%tenant, secret = %name, created, "secret set");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// List the tenant's secrets: names and update times, never values; every secret of the
/// tenant (at most 1,000) by name, in one page (`next_cursor` is always null).
#[utoipa::path(get, path = "/secrets", tag = "secrets", params(SecretParams),
    responses((status = 200, body = Listing<SecretSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list_secrets(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<SecretParams>,
) -> Result<Json<Listing<SecretSummary>>, ApiError> {
    let tenant = auth.acting_tenant(&state, params.tenant).await?;
    let data = secrets::list(&state.db, &tenant).await?;
    Ok(Json(Listing {
        data: data.into_iter().map(SecretSummary::from).collect(),
        next_cursor: None,
    }))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description = "The secret's name"), SecretParams),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_secret(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(name): PathParams<String>,
    QueryParams(params): QueryParams<SecretParams>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let tenant = auth.acting_tenant(&state, params.tenant).await?;
    if !secrets::delete(&state.db, &tenant, &name).await? {
        return Err(ApiError::not_found("secret", &name));
    }
    tracing::info!(%tenant, secret = %name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}
