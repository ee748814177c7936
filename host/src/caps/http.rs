//! The `http` interface: calls to the operations of the integrations a job declares.
//!
//! The URL is the integration's base URL (literal or from the environment) joined with the
//! operation's path; `{name}` placeholders are filled from the arguments, which must be single
//! path segments (no `/`, no `.` or `..`), so a call can never leave the base URL. What is left
//! of the arguments becomes the query string (GET, DELETE) or a JSON body (the other methods).
//! Authentication comes from the declaration (bearer, a header, basic). `env("NAME")` values
//! come from a lookup the caller gives (the tenant's secrets, [`super::env`]). A 2xx response's
//! body comes back as JSON (a non-JSON body as a JSON string); any other status is `failed`
//! with the start of the body.
//!
//! No error message holds a value from `env("…")`: a bad base URL names the variable that held
//! it, and failures of a sent call name the integration, the operation and the path, never the
//! URL (its base may be a secret).
//!
//! Where the call may connect is [`crate::egress`]'s: an [`Outbound`] is a client whose resolver
//! applies an egress policy, with IP-literal hosts checked before sending. The body is charged
//! to the execution's [`MemoryBudget`] as it arrives, and reading stops once it is over.

use super::env::EnvSources;
use super::JobCaps;
use crate::egress::{self, Outbound};
use crate::runtime::{MemoryBudget, Reservation};
use crate::wasm::http::{self, CallRequest, CallResponse};
use crate::wasm::CapError;
use codeai_ir::{Auth, IntegrationDecl, OperationDecl, ValueSource};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Response bodies larger than this are refused (the guest would have to hold them).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Of an error response, only this much is read (its start goes into the error).
const ERROR_BODY_BYTES: usize = 4 << 10;
/// What a connection's own buffers can hold while a response arrives, charged to the budget for
/// as long as a call is in flight: hyper's read buffer grows to 8 KiB + 100 × 4 KiB before the
/// body's chunks are handed over (64 calls in flight held ~20 MiB there, measured).
pub const CONNECTION_BYTES: usize = (8 << 10) + 100 * (4 << 10);
/// The timeout of an integration that declares none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The value of `env("NAME")`, or the `failed` error that says why there is none.
pub type Lookup<'a> = dyn FnMut(&str) -> Result<String, CapError> + 'a;

fn resolve(lookup: &mut Lookup<'_>, source: &ValueSource, what: &str) -> Result<String, CapError> {
    match source {
        ValueSource::Literal(v) => Ok(v.clone()),
        ValueSource::Env(name) => lookup(name).map_err(|e| match e {
            CapError::Failed(m) => CapError::Failed(format!("{what}: {m}")),
            other => other,
        }),
    }
}

/// Whether a call to `req` reads any `env("…")` value (so its secrets must be read first).
pub fn uses_env(integrations: &[IntegrationDecl], req: &CallRequest) -> bool {
    let Some(i) = integrations.iter().find(|i| i.name == req.integration) else {
        return false;
    };
    let env = |v: &ValueSource| matches!(v, ValueSource::Env(_));
    env(&i.base_url)
        || match &i.auth {
            Auth::None => false,
            Auth::Bearer { token } => env(token),
            Auth::Header { value, .. } => env(value),
            Auth::Basic { user, password } => env(user) || env(password),
        }
}

/// The parts of a call that do not need the network: the checked URL, method, body and auth.
pub struct Prepared {
    pub method: Method,
    pub url: Url,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub basic: Option<(String, String)>,
    pub timeout: Duration,
    /// What errors call the request: `` `Integration.operation` (GET /path) `` — not the URL,
    /// whose base may be a secret.
    pub label: String,
}

/// Shows no header value, credential or URL: any of them may hold a secret.
impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Prepared")
            .field("call", &self.label)
            .field("headers", &headers)
            .field("basic", &self.basic.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn find<'a>(
    integrations: &'a [IntegrationDecl],
    req: &CallRequest,
) -> Result<(&'a IntegrationDecl, &'a OperationDecl), CapError> {
    let integration = integrations
        .iter()
        .find(|i| i.name == req.integration)
        .ok_or_else(|| {
            CapError::Denied(format!(
                "integration `{}` is not declared by this job",
                req.integration
            ))
        })?;
    let operation = integration
        .operations
        .iter()
        .find(|o| o.name == req.operation)
        .ok_or_else(|| {
            CapError::Denied(format!(
                "integration `{}` has no operation `{}`",
                req.integration, req.operation
            ))
        })?;
    Ok((integration, operation))
}

/// The base URL with a trailing slash, so joining keeps its path.
fn base_url(lookup: &mut Lookup<'_>, integration: &IntegrationDecl) -> Result<Url, CapError> {
    let raw = resolve(
        lookup,
        &integration.base_url,
        &format!("integration `{}`", integration.name),
    )?;
    let mut url = Url::parse(raw.trim()).map_err(|e| {
        // The error of `url` never repeats its input; neither does this message.
        let source = match &integration.base_url {
            ValueSource::Env(name) => format!("the value of `{name}`"),
            ValueSource::Literal(_) => "the base URL".to_string(),
        };
        let hint = match e {
            url::ParseError::RelativeUrlWithoutBase => {
                " (a base URL starts with `https://` or `http://`)"
            }
            _ => "",
        };
        CapError::Failed(format!(
            "integration `{}`: {source} is not a URL: {e}{hint}",
            integration.name
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CapError::Denied(format!(
            "integration `{}`: only http and https base URLs are allowed",
            integration.name
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// True if `url` is `base` or below it: same scheme, host and port, and a path under base's.
pub fn within(base: &Url, url: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username() == base.username()
        && url.path().starts_with(base.path())
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Builds the request of one call and checks that it stays within the integration.
pub fn prepare(
    integrations: &[IntegrationDecl],
    lookup: &mut Lookup<'_>,
    req: &CallRequest,
) -> Result<Prepared, CapError> {
    let (integration, operation) = find(integrations, req)?;
    let base = base_url(lookup, integration)?;
    let mut args: Map<String, Value> = match serde_json::from_str::<Value>(&req.args) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(_) => {
            return Err(CapError::Invalid(
                "call arguments must be a JSON object".into(),
            ))
        }
        Err(e) => {
            return Err(CapError::Invalid(format!(
                "call arguments are not JSON: {e}"
            )))
        }
    };
    for name in args.keys() {
        if !operation.params.iter().any(|p| &p.name == name) {
            return Err(CapError::Invalid(format!(
                "operation `{}.{}` has no parameter `{name}`",
                integration.name, operation.name
            )));
        }
    }
    // Fill `{name}` placeholders with single, encoded path segments.
    let mut path = String::new();
    for segment in operation.path.trim_start_matches('/').split('/') {
        if !path.is_empty() {
            path.push('/');
        }
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let value = args
                .remove(name)
                .map(|v| scalar_text(&v))
                .unwrap_or_default();
            if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\\']) {
                return Err(CapError::Denied(format!(
                    "path parameter `{name}` = {value:?} would leave the path of `{}.{}`",
                    integration.name, operation.name
                )));
            }
            path.push_str(&percent_encode_segment(&value));
        } else {
            path.push_str(segment);
        }
    }
    let url = base.join(&path).map_err(|e| {
        CapError::Invalid(format!(
            "operation `{}.{}`: {e}",
            integration.name, operation.name
        ))
    })?;
    if !within(&base, &url) {
        return Err(CapError::Denied(format!(
            "the path `{path}` of `{}.{}` leaves the base URL of the integration",
            integration.name, operation.name
        )));
    }
    let method = Method::from_bytes(operation.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| CapError::Invalid(format!("unknown HTTP method `{}`", operation.method)))?;
    let label = format!(
        "`{}.{}` ({method} /{path})",
        integration.name, operation.name
    );
    let mut url = url;
    let body = if matches!(method, Method::GET | Method::DELETE | Method::HEAD) {
        if !args.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &args {
                if !v.is_null() {
                    pairs.append_pair(k, &scalar_text(v));
                }
            }
        }
        None
    } else {
        Some(Value::Object(args))
    };
    let what = format!("integration `{}`", integration.name);
    let mut headers = Vec::new();
    let mut basic = None;
    match &integration.auth {
        Auth::None => {}
        Auth::Bearer { token } => {
            headers.push((
                "authorization".into(),
                format!("Bearer {}", resolve(lookup, token, &what)?),
            ));
        }
        Auth::Header { name, value } => {
            headers.push((name.clone(), resolve(lookup, value, &what)?));
        }
        Auth::Basic { user, password } => {
            basic = Some((
                resolve(lookup, user, &what)?,
                resolve(lookup, password, &what)?,
            ));
        }
    }
    let timeout = match req.timeout_ms {
        Some(ms) if ms > 0 => Duration::from_millis(ms.into()),
        _ if integration.timeout_ms > 0 => Duration::from_millis(integration.timeout_ms),
        _ => DEFAULT_TIMEOUT,
    };
    Ok(Prepared {
        method,
        url,
        body,
        headers,
        basic,
        timeout,
        label,
    })
}

fn percent_encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response body being read, charged to the execution's budget as its buffer grows.
struct Body {
    bytes: Vec<u8>,
    held: Reservation,
}

impl Body {
    fn new(budget: &MemoryBudget, capacity: usize, what: &str) -> Result<Body, CapError> {
        let held = budget.reserve(capacity, what).map_err(over)?;
        Ok(Body {
            bytes: Vec::with_capacity(capacity),
            held,
        })
    }

    fn extend(&mut self, chunk: &[u8], what: &str) -> Result<(), CapError> {
        let needed = self.bytes.len() + chunk.len();
        if needed > self.bytes.capacity() {
            let capacity = needed
                .max(self.bytes.capacity() * 2)
                .min(MAX_RESPONSE_BYTES);
            let capacity = capacity.max(needed);
            // While the buffer moves, the old one and the new one both exist.
            let old = self.bytes.capacity();
            self.held.resize(old + capacity, what).map_err(over)?;
            self.bytes.reserve_exact(capacity - self.bytes.len());
            self.held.resize(capacity, what).map_err(over)?;
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
}

fn over(e: crate::runtime::Exceeded) -> CapError {
    CapError::Failed(e.0)
}

/// A transport error without its URL, with its causes (they name no address).
fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The error of a call the egress policy refused, or of a failed request; `label` names the
/// call (never its URL, whose base may be a secret).
fn request_error(label: &str, timeout: Duration, e: reqwest::Error) -> CapError {
    if let Some(refused) = egress::refusal(&e) {
        return CapError::Denied(format!("{label}: {refused}"));
    }
    if e.is_timeout() {
        CapError::Timeout(format!("{label} did not answer within {timeout:?}"))
    } else {
        CapError::Failed(format!("{label}: {}", transport_error(e)))
    }
}

/// Sends a prepared call through `out`, charging the response body to `budget` as `what`
/// (e.g. "`http.call` Api.items"); the body's bytes stay charged in the returned reservation.
/// Redirects are not followed (the client is built without them), so a server cannot send the
/// call elsewhere. Over the budget the call fails at once and [`MemoryBudget::exceeded`] says
/// why.
pub async fn send(
    out: &Outbound,
    p: Prepared,
    budget: &MemoryBudget,
    what: &str,
) -> Result<(CallResponse, Reservation), CapError> {
    let label = p.label.clone();
    out.policy()
        .check_url(&p.url)
        .map_err(|refused| CapError::Denied(format!("{label}: {refused}")))?;
    let _connection = budget.reserve(CONNECTION_BYTES, what).map_err(over)?;
    let mut request = out.client().request(p.method, p.url).timeout(p.timeout);
    for (name, value) in &p.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some((user, password)) = &p.basic {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(body) = &p.body {
        request = request.json(body);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| request_error(&label, p.timeout, e))?;
    let status = response.status();
    let too_large = || {
        CapError::Failed(format!(
            "{label}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
        ))
    };
    // Only the start of an error response is kept.
    let limit = if status.is_success() {
        MAX_RESPONSE_BYTES
    } else {
        ERROR_BODY_BYTES
    };
    let announced = response.content_length().unwrap_or(0);
    if status.is_success() && announced > MAX_RESPONSE_BYTES as u64 {
        return Err(too_large());
    }
    let mut body = Body::new(budget, (announced as usize).min(limit), what)?;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        CapError::Failed(format!(
            "{label}: reading the response: {}",
            transport_error(e)
        ))
    })? {
        if body.bytes.len() + chunk.len() > limit {
            if !status.is_success() {
                let room = limit - body.bytes.len();
                body.extend(&chunk[..room], what)?;
                break;
            }
            return Err(too_large());
        }
        body.extend(&chunk, what)?;
    }
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body.bytes)
            .chars()
            .take(300)
            .collect();
        return Err(CapError::Failed(format!(
            "{label} answered {status}: {text}"
        )));
    }
    let Body { bytes, mut held } = body;
    // A JSON body goes to the guest as it came (validated, not parsed into a tree and written
    // out again); anything else becomes a JSON string.
    let body = match String::from_utf8(bytes) {
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() => text,
        Ok(text) => json_string(text.as_bytes(), &mut held, what)?,
        Err(e) => json_string(e.as_bytes(), &mut held, what)?,
    };
    held.resize(body.capacity(), what).map_err(over)?;
    Ok((
        CallResponse {
            status: status.as_u16(),
            body,
        },
        held,
    ))
}

/// `bytes` as a JSON string (invalid UTF-8 replaced), its buffer charged to `held` beside the
/// bytes' own until they are dropped.
fn json_string(bytes: &[u8], held: &mut Reservation, what: &str) -> Result<String, CapError> {
    // Escaping adds at least the quotes; more is charged once the string exists.
    held.grow(bytes.len() + 2, what).map_err(over)?;
    let text = serde_json::to_string(&String::from_utf8_lossy(bytes))
        .map_err(|e| CapError::Failed(format!("encoding the response: {e}")))?;
    held.resize(
        held.bytes() + text.capacity().saturating_sub(bytes.len() + 2),
        what,
    )
    .map_err(over)?;
    Ok(text)
}

impl JobCaps {
    /// Reads the secrets when a call to `req` needs them (once per execution).
    async fn load_env(&mut self, req: &http::CallRequest) -> Result<(), CapError> {
        if uses_env(&self.ctx.manifest.integrations, req) {
            self.env.load(self.services.db()).await?;
        }
        Ok(())
    }

    /// Builds the request of one call, `env("…")` resolved for this execution's tenant.
    fn build_request(&mut self, req: &http::CallRequest) -> Result<Prepared, CapError> {
        let config = self.services.config();
        let sources = EnvSources {
            keys: &config.secret_keys,
            process: &config.env,
            deny: &config.env_deny,
        };
        let env = &mut self.env;
        let (tenant, job) = (&self.ctx.tenant, &self.ctx.manifest.name);
        let mut prepared = prepare(
            &self.ctx.manifest.integrations,
            &mut |name: &str| {
                env.lookup(name, &sources).inspect_err(|_| {
                    crate::integrations::unset_at_use(tenant, job, &req.integration, name)
                })
            },
            req,
        )?;
        // The execution's trace goes on with the call (a declared header of that name wins).
        if let Some(traceparent) = &self.ctx.traceparent {
            let declared = prepared
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(crate::telemetry::TRACEPARENT));
            if !declared {
                prepared
                    .headers
                    .push((crate::telemetry::TRACEPARENT.into(), traceparent.clone()));
            }
        }
        Ok(prepared)
    }
}

impl http::Host for JobCaps {
    async fn call(&mut self, req: http::CallRequest) -> Result<http::CallResponse, CapError> {
        self.load_env(&req).await?;
        let call = format!("`http.call` {}.{}", req.integration, req.operation);
        let prepared = self
            .build_request(&req)
            .map_err(|e| self.redactor().error(e))?;
        let r = send(&self.http, prepared, &self.budget, &call).await;
        let (response, held) = self
            .within_budget(r)
            .await
            .map_err(|e| self.redactor().error(e))?;
        self.budget.hand_over(held);
        Ok(response)
    }

    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            concurrency.clamp(1, codeai_ir::limits::MAX_PARALLEL) as usize,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        let mut results: Vec<Result<http::CallResponse, CapError>> = (0..reqs.len())
            .map(|_| Err(CapError::Failed("not run".into())))
            .collect();
        for (i, req) in reqs.iter().enumerate() {
            let prepared = match self.load_env(req).await {
                Ok(()) => self.build_request(req),
                Err(e) => Err(e),
            };
            match prepared {
                Err(e) => results[i] = Err(e),
                Ok(prepared) => {
                    let http = self.http.clone();
                    let budget = self.budget.clone();
                    let call = format!("`http.call-many` {}.{}", req.integration, req.operation);
                    let limit = limit.clone();
                    tasks.spawn(async move {
                        let _permit = limit.acquire_owned().await;
                        (i, send(&http, prepared, &budget, &call).await)
                    });
                }
            }
        }
        // Every body stays charged until the guest's next call; one over the budget stops the
        // others at once (dropping the set aborts them) and ends the execution.
        let mut held = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if self.budget.exceeded().is_some() {
                tasks.abort_all();
                drop(held);
                return std::future::pending().await;
            }
            if let Ok((i, result)) = done {
                results[i] = result.map(|(response, reservation)| {
                    held.push(reservation);
                    response
                });
            }
        }
        for reservation in held {
            self.budget.hand_over(reservation);
        }
        let redactor = self.redactor();
        results
            .into_iter()
            .map(|r| r.map_err(|e| redactor.error(e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeai_ir::{FieldType, ParamDecl};

    fn integration() -> IntegrationDecl {
        IntegrationDecl {
            name: "Warehouse".into(),
            base_url: ValueSource::Env("WH_URL".into()),
            auth: Auth::Bearer {
                token: ValueSource::Env("WH_KEY".into()),
            },
            timeout_ms: 5_000,
            operations: vec![
                OperationDecl {
                    name: "get_inventory".into(),
                    method: "GET".into(),
                    path: "/v1/inventory".into(),
                    params: vec![ParamDecl {
                        name: "since".into(),
                        ty: FieldType::Datetime,
                    }],
                },
                OperationDecl {
                    name: "item".into(),
                    method: "PUT".into(),
                    path: "/v1/items/{sku}".into(),
                    params: vec![
                        ParamDecl {
                            name: "sku".into(),
                            ty: FieldType::String,
                        },
                        ParamDecl {
                            name: "quantity".into(),
                            ty: FieldType::Int,
                        },
                    ],
                },
            ],
        }
    }

    fn env(name: &str) -> Result<String, CapError> {
        match name {
            "WH_URL" => Ok("http://127.0.0.1:9/api".into()),
            "WH_KEY" => Ok("secret".into()),
            _ => Err(CapError::Failed(format!("`{name}` is not set"))),
        }
    }

    fn req(integration: &str, operation: &str, args: &str) -> CallRequest {
        CallRequest {
            integration: integration.into(),
            operation: operation.into(),
            args: args.into(),
            timeout_ms: None,
        }
    }

    #[test]
    fn builds_urls_under_the_base() {
        let p = prepare(
            &[integration()],
            &mut env,
            &req(
                "Warehouse",
                "get_inventory",
                r#"{"since":"2026-01-01T00:00:00Z"}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            p.url.as_str(),
            "http://127.0.0.1:9/api/v1/inventory?since=2026-01-01T00%3A00%3A00Z"
        );
        assert_eq!(
            p.headers,
            [("authorization".to_string(), "Bearer secret".to_string())]
        );
        assert_eq!(p.timeout, Duration::from_secs(5));
        let p = prepare(
            &[integration()],
            &mut env,
            &req("Warehouse", "item", r#"{"sku":"A 1","quantity":3}"#),
        )
        .unwrap();
        assert_eq!(p.url.as_str(), "http://127.0.0.1:9/api/v1/items/A%201");
        assert_eq!(p.body, Some(serde_json::json!({"quantity": 3})));
    }

    #[test]
    fn nothing_outside_the_integration_is_reachable() {
        for sku in ["..", "../../admin", "x/y", ".", "http://evil.example/"] {
            let args = serde_json::json!({ "sku": sku, "quantity": 1 }).to_string();
            let err =
                prepare(&[integration()], &mut env, &req("Warehouse", "item", &args)).unwrap_err();
            assert!(matches!(err, CapError::Denied(_)), "{sku}: {err:?}");
        }
        // An integration the job does not declare, and an operation its integration lacks.
        for (integration_name, operation) in
            [("Evil", "get_inventory"), ("Warehouse", "delete_all")]
        {
            let call = req(integration_name, operation, "{}");
            let err = prepare(&[integration()], &mut env, &call).unwrap_err();
            assert!(matches!(err, CapError::Denied(_)), "{operation}: {err:?}");
        }
        let base = Url::parse("http://127.0.0.1:9/api/").unwrap();
        assert!(!within(
            &base,
            &Url::parse("http://127.0.0.1:9/apix").unwrap()
        ));
        assert!(!within(
            &base,
            &Url::parse("http://127.0.0.1:10/api/x").unwrap()
        ));
        assert!(within(
            &base,
            &Url::parse("http://127.0.0.1:9/api/x").unwrap()
        ));
    }

    #[test]
    fn missing_configuration_is_a_clear_failure() {
        let err = prepare(
            &[integration()],
            &mut |name: &str| Err(CapError::Failed(format!("`{name}` is not set"))),
            &req("Warehouse", "get_inventory", "{}"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, CapError::Failed(m) if m == "integration `Warehouse`: `WH_URL` is not set"),
            "{err:?}"
        );
    }

    /// The message of a `failed` error, which must start with `prefix`.
    #[track_caller]
    fn failed_starting<'e>(err: &'e CapError, prefix: &str) -> &'e str {
        let CapError::Failed(m) = err else {
            panic!("{err:?}")
        };
        assert!(m.starts_with(prefix), "{m}");
        m
    }

    #[test]
    fn a_bad_base_url_names_its_variable_not_its_value() {
        let err = prepare(
            &[integration()],
            &mut |name: &str| Ok(format!("/home/{name}/s3cret")),
            &req("Warehouse", "get_inventory", "{}"),
        )
        .unwrap_err();
        let m = failed_starting(
            &err,
            "integration `Warehouse`: the value of `WH_URL` is not a URL",
        );
        assert!(!m.contains("s3cret"), "{m}");
        // A host without its scheme (`127.0.0.1:8080/api`, `/srv/api`) is told what is missing.
        assert!(
            m.ends_with("(a base URL starts with `https://` or `http://`)"),
            "{m}"
        );
    }

    #[test]
    fn errors_of_sent_calls_name_the_operation_not_the_url() {
        let p = prepare(
            &[integration()],
            &mut env,
            &req("Warehouse", "item", r#"{"sku":"A1","quantity":3}"#),
        )
        .unwrap();
        assert_eq!(p.label, "`Warehouse.item` (PUT /v1/items/A1)");
        // Nothing listens on port 9 of loopback.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = Outbound::new(
            crate::egress::EgressConfig {
                tenants: "127.0.0.1/32".parse().unwrap(),
                ..Default::default()
            }
            .policy(false),
        );
        let budget = crate::runtime::MemoryBudget::unlimited();
        let err = rt
            .block_on(send(&out, p, &budget, "test"))
            .map(|_| ())
            .unwrap_err();
        let m = failed_starting(&err, "`Warehouse.item` (PUT /v1/items/A1): ");
        assert!(!m.contains("127.0.0.1"), "{m}");
    }
}
