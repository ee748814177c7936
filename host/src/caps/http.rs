//! The `http` capability: calls to the operations of the integrations a job declares.
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

use crate::wasm::http::{CallRequest, CallResponse};
use crate::wasm::CapError;
use codeai_ir::{Auth, IntegrationDecl, OperationDecl, ValueSource};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Response bodies larger than this are refused (the guest would have to hold them).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// The timeout of an integration that declares none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the host's environment. Tests pass a map instead of the process environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as an [`Env`].
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

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
        CapError::Failed(format!(
            "integration `{}`: {source} is not a URL: {e}",
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

/// Sends a prepared call. Redirects are not followed (the client is built without them), so a
/// server cannot send the call elsewhere.
pub async fn send(client: &reqwest::Client, p: Prepared) -> Result<CallResponse, CapError> {
    let mut request = client.request(p.method, p.url).timeout(p.timeout);
    for (name, value) in &p.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some((user, password)) = &p.basic {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(body) = &p.body {
        request = request.json(body);
    }
    let label = &p.label;
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            CapError::Timeout(format!("{label} did not answer within {:?}", p.timeout))
        } else {
            CapError::Failed(format!("{label}: {}", transport_error(e)))
        }
    })?;
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        CapError::Failed(format!(
            "{label}: reading the response: {}",
            transport_error(e)
        ))
    })? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CapError::Failed(format!(
                "{label}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        return Err(CapError::Failed(format!(
            "{label} answered {status}: {text}"
        )));
    }
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => value.to_string(),
        Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()).to_string(),
    };
    Ok(CallResponse {
        status: status.as_u16(),
        body,
    })
}

/// An HTTP client for integration calls: no redirects, TLS through rustls.
pub fn client() -> reqwest::Client {
    // Installs the process's TLS provider as a side effect.
    let _ = crate::notify::http_client();
    reqwest::Client::builder()
        .user_agent(concat!("codeai-jobs/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
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
        let err = prepare(
            &[integration()],
            &mut env,
            &req("Evil", "get_inventory", "{}"),
        )
        .unwrap_err();
        assert!(matches!(err, CapError::Denied(_)));
        let err = prepare(
            &[integration()],
            &mut env,
            &req("Warehouse", "delete_all", "{}"),
        )
        .unwrap_err();
        assert!(matches!(err, CapError::Denied(_)));
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

    #[test]
    fn a_bad_base_url_names_its_variable_not_its_value() {
        let err = prepare(
            &[integration()],
            &mut |name: &str| Ok(format!("/home/{name}/s3cret")),
            &req("Warehouse", "get_inventory", "{}"),
        )
        .unwrap_err();
        let CapError::Failed(m) = &err else {
            panic!("{err:?}")
        };
        assert!(
            m.starts_with("integration `Warehouse`: the value of `WH_URL` is not a URL"),
            "{m}"
        );
        assert!(!m.contains("s3cret"), "{m}");
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
        let err = rt.block_on(send(&client(), p)).unwrap_err();
        let CapError::Failed(m) = &err else {
            panic!("{err:?}")
        };
        assert!(
            m.starts_with("`Warehouse.item` (PUT /v1/items/A1): "),
            "{m}"
        );
        assert!(!m.contains("127.0.0.1"), "{m}");
    }
}
