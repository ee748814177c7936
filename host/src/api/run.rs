//! What `POST /jobs/{id}/run` adds to running a job now: a later start (`delay` or `run_at` in
//! the body) and an `Idempotency-Key` header.
//!
//! - `delay` is seconds (a number) or a duration (`"90s"`, `"10m"`, `"2h"`, `"1d"`); `run_at`
//!   an RFC 3339 instant (one in the past runs now). At most one of them, at most
//!   [`MAX_DELAY`] ahead. The execution is `pending` with that `scheduled_at` until then.
//! - A request with an `Idempotency-Key` (1–255 visible ASCII characters) claims the key for
//!   its tenant with the execution it makes and the answer it gives
//!   ([`crate::store::idempotency`]); a request with the same key within 24 hours gets that
//!   same answer (with `Idempotent-Replayed: true`) and runs nothing, also when both arrive at
//!   once. The same key on another job is refused (422 `idempotency_key_reused`).

use super::error::ApiError;
use super::jobs::RunResponse;
use super::ApiState;
use crate::store::idempotency::{self, Claim, FirstUse};
use crate::store::ExecutionStatus;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The latest start a run request may ask for.
pub const MAX_DELAY: chrono::Duration = chrono::Duration::days(366);

/// The header that makes a run request idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
}

/// Checks a run's input against the `input:` declaration of the job's manifest (JSON text), if
/// it has one: 422 `invalid_input` naming the field and the reason. Only the manifest's `input`
/// is read.
pub(super) fn check_input(manifest: Option<&str>, input: &Value) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default)]
        input: Option<Vec<codeai_ir::input::InputField>>,
    }
    let Some(fields) = manifest
        .and_then(|m| serde_json::from_str::<Declared>(m).ok())
        .and_then(|d| d.input)
    else {
        return Ok(());
    };
    codeai_ir::input::validate(&fields, input).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
        )
    })
}

/// Seconds in a `delay`: a number, or a duration as the DSL spells one (`"10m"`).
fn delay_seconds(delay: &Value) -> Option<f64> {
    match delay {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => crate::describe::parse_duration(s)
                .ok()
                .map(|d| d.as_secs_f64()),
        },
        _ => None,
    }
}

/// When a run asked for at `now` with `delay` or `run_at` may start.
pub(super) fn run_after(
    delay: Option<&Value>,
    run_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let at = match (delay.filter(|d| !d.is_null()), run_at) {
        (Some(_), Some(_)) => return Err(invalid("give `delay` or `run_at`, not both")),
        (None, None) => return Ok(now),
        (Some(delay), None) => {
            let seconds = delay_seconds(delay)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    invalid(format!(
                        "`delay` {delay} is not a number of seconds or a duration like \"10m\""
                    ))
                })?;
            if seconds > MAX_DELAY.num_seconds() as f64 {
                return Err(invalid(format!(
                    "`delay` is more than {} days",
                    MAX_DELAY.num_days()
                )));
            }
            now + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
        }
        (None, Some(run_at)) => DateTime::parse_from_rfc3339(run_at.trim())
            .map_err(|e| {
                invalid(format!(
                    "`run_at` `{run_at}` is not an RFC 3339 instant: {e}"
                ))
            })?
            .with_timezone(&Utc),
    };
    if at - now > MAX_DELAY {
        return Err(invalid(format!(
            "`run_at` is more than {} days ahead",
            MAX_DELAY.num_days()
        )));
    }
    Ok(at.max(now))
}

/// The request's W3C `traceparent` header, when it has one that reads as text (the exporter
/// checks its form and ignores one that is not a trace context).
pub(super) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(crate::telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
}

/// The request's `Idempotency-Key`, checked.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// A 202 with `body` (a [`RunResponse`] as JSON text).
fn accepted(body: String, replayed: bool) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// What a run request asks for, checked.
pub(super) struct RunAsked<'a> {
    pub tenant: &'a str,
    pub job_id: &'a str,
    /// A JSON object.
    pub input: &'a str,
    pub run_after: DateTime<Utc>,
    pub key: Option<String>,
    /// The request's W3C `traceparent` header.
    pub traceparent: Option<String>,
    pub now: DateTime<Utc>,
}

/// Makes the execution a run request asks for, or answers as the first request with its key
/// did; `None` when this process does not hold the job.
pub(super) async fn start(
    state: &ApiState,
    asked: RunAsked<'_>,
) -> Result<Option<Response>, ApiError> {
    let id = crate::queue::new_task_id();
    let answer = RunResponse {
        id: id.to_string(),
        job_id: asked.job_id.to_string(),
        execution_id: id.to_string(),
        status: ExecutionStatus::Pending.to_string(),
        scheduled_at: crate::store::sql::datetime_text(&asked.run_after),
    };
    let body = serde_json::to_string(&answer).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(key) = &asked.key {
        let first = FirstUse {
            job_id: asked.job_id.to_string(),
            execution_id: id.to_string(),
            response: body.clone(),
        };
        if let Claim::Used(first) =
            idempotency::claim(&state.db, asked.tenant, key, &first, asked.now).await?
        {
            if first.job_id != asked.job_id {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this `Idempotency-Key` was used for another job within 24 hours",
                ));
            }
            return Ok(Some(accepted(first.response, true)));
        }
    }
    let made = state
        .jobs()
        .trigger_at(
            asked.job_id,
            crate::domain::jobs::RunNow {
                input: asked.input,
                trigger: "manual",
                now: asked.now,
                run_after: asked.run_after,
                id,
                traceparent: asked.traceparent.as_deref(),
                event_id: None,
            },
        )
        .await;
    match made {
        Ok(Some(_)) => Ok(Some(accepted(body, false))),
        other => {
            // Nothing runs for this key: a retry may run the job.
            if let Some(key) = &asked.key {
                idempotency::release(&state.db, asked.tenant, key, id).await?;
            }
            Ok(other?.map(|_| accepted(body, false)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn check(delay: Option<Value>, run_at: Option<&str>, expected: Result<&str, &str>) {
        let now = at("2026-01-12T15:30:00Z");
        let got = run_after(delay.as_ref(), run_at, now);
        match (got, expected) {
            (Ok(t), Ok(want)) => assert_eq!(t, at(want), "{delay:?} {run_at:?}"),
            (Err(e), Err(code)) => assert_eq!(e.code, code, "{delay:?} {run_at:?}"),
            (got, want) => panic!("{delay:?} {run_at:?}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn delays_and_run_at_give_the_start() {
        check(None, None, Ok("2026-01-12T15:30:00Z"));
        check(Some(Value::Null), None, Ok("2026-01-12T15:30:00Z"));
        check(Some(json!(90)), None, Ok("2026-01-12T15:31:30Z"));
        check(Some(json!(1.5)), None, Ok("2026-01-12T15:30:01.5Z"));
        check(Some(json!("90")), None, Ok("2026-01-12T15:31:30Z"));
        check(Some(json!("45s")), None, Ok("2026-01-12T15:30:45Z"));
        check(Some(json!("10m")), None, Ok("2026-01-12T15:40:00Z"));
        check(Some(json!("2h")), None, Ok("2026-01-12T17:30:00Z"));
        check(Some(json!("1d")), None, Ok("2026-01-13T15:30:00Z"));
        check(
            None,
            Some("2026-01-12T18:00:00+01:00"),
            Ok("2026-01-12T17:00:00Z"),
        );
        // A time past runs now.
        check(
            None,
            Some("2020-01-01T00:00:00Z"),
            Ok("2026-01-12T15:30:00Z"),
        );
    }

    #[test]
    fn bad_starts_are_refused() {
        check(Some(json!("soon")), None, Err("invalid_body"));
        check(Some(json!("5w")), None, Err("invalid_body"));
        check(Some(json!(-1)), None, Err("invalid_body"));
        check(Some(json!([1])), None, Err("invalid_body"));
        check(Some(json!("400d")), None, Err("invalid_body"));
        check(None, Some("tomorrow"), Err("invalid_body"));
        check(None, Some("2030-01-01T00:00:00Z"), Err("invalid_body"));
        check(
            Some(json!(5)),
            Some("2026-01-12T18:00:00Z"),
            Err("invalid_body"),
        );
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let key = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
            idempotency_key(&h).map_err(|e| e.code.to_string())
        };
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key("abc-123").unwrap(), Some("abc-123".into()));
        assert_eq!(key(" padded ").unwrap(), Some("padded".into()));
        assert!(key("").is_err());
        assert!(key("with space").is_err());
        assert!(key(&"k".repeat(256)).is_err());
        assert!(key(&"k".repeat(255)).is_ok());
    }
}
