//! What `env("NAME")` in an integration means for one execution, and the redaction of what it
//! resolved.
//!
//! - A tenant's job reads that tenant's secrets ([`crate::store::secrets`]) and nothing else.
//! - The operator's jobs (the default tenant) read the operator's secrets first, then the host's
//!   environment, except the platform's own variables ([`PLATFORM_VARIABLES`]) and those the
//!   operator lists in `CODEAI_ENV_DENY`.
//!
//! A name that is not there (or is denied) is a `failed` call that names the variable and says
//! how to set it, never a value. Secrets are read from the database at most once per execution,
//! at its first call that needs one. Every value handed out is remembered, so that
//! [`Redactor`] can replace it by `[secret]` in what the execution leaves behind (its error,
//! output, log lines, call records) and in the errors handed back to the guest.

use crate::services::Env;
use crate::store::secrets::{self, Keyring, Sealed};
use crate::store::Database;
use crate::wasm::CapError;
use serde_json::Value;
use std::collections::HashMap;

/// The host's own variables: never readable by a job, the operator's included. A trailing `*`
/// matches any suffix.
pub const PLATFORM_VARIABLES: &[&str] = &[
    "CODEAI_*",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_*",
    "SLACK_WEBHOOK",
];

/// Values shorter than this are not redacted (they would blank out ordinary words and numbers).
pub const MIN_REDACTED_LEN: usize = 4;

/// What a redacted value is replaced by.
pub const REDACTED: &str = "[secret]";

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Whether the operator's jobs may not read `name` from the host's environment.
pub fn denied(name: &str, extra: &[String]) -> bool {
    PLATFORM_VARIABLES.iter().any(|p| matches(p, name)) || extra.iter().any(|p| matches(p, name))
}

/// Where an execution's `env("…")` values come from.
pub struct EnvSources<'a> {
    pub keys: &'a Keyring,
    /// The host's environment (the operator's jobs only).
    pub process: &'a Env,
    /// `CODEAI_ENV_DENY`.
    pub deny: &'a [String],
}

/// The `env("…")` values of one execution.
pub struct JobEnv {
    tenant: String,
    operator: bool,
    /// The tenant's secrets, sealed, once read.
    sealed: Option<HashMap<String, Sealed>>,
    /// Every value handed out, for redaction.
    resolved: Vec<String>,
    /// Redacts `resolved`.
    redactor: Redactor,
}

impl JobEnv {
    pub fn new(tenant: &str) -> JobEnv {
        JobEnv {
            tenant: tenant.to_string(),
            operator: crate::store::tenants::is_operator(tenant),
            sealed: None,
            resolved: Vec::new(),
            redactor: Redactor::default(),
        }
    }

    /// Reads the tenant's secrets unless they were read already.
    pub async fn load(&mut self, db: &Database) -> Result<(), CapError> {
        if self.sealed.is_none() {
            let sealed = secrets::load(db, &self.tenant).await.map_err(|e| {
                CapError::Failed(format!(
                    "reading the secrets of tenant `{}`: database error: {e}",
                    self.tenant
                ))
            })?;
            self.sealed = Some(sealed);
        }
        Ok(())
    }

    /// How to set `name` for this tenant, for messages.
    fn how_to_set(&self, name: &str) -> String {
        let cli = if self.operator {
            format!("codeai secret set {name}")
        } else {
            format!("codeai secret set --tenant {} {name}", self.tenant)
        };
        format!("set it with `{cli}` (value on stdin) or `PUT /secrets/{name}`")
    }

    /// The value of `env(name)`. Call [`JobEnv::load`] first: without it, no secret is found.
    pub fn lookup(&mut self, name: &str, from: &EnvSources<'_>) -> Result<String, CapError> {
        if let Some(sealed) = self.sealed.as_ref().and_then(|s| s.get(name)) {
            let value = from
                .keys
                .open(&self.tenant, name, sealed)
                .map_err(|e| CapError::Failed(e.to_string()))?;
            return Ok(self.handed_out(value));
        }
        if !self.operator {
            return Err(CapError::Failed(format!(
                "`{name}` is not a secret of tenant `{}`: {}",
                self.tenant,
                self.how_to_set(name)
            )));
        }
        if denied(name, from.deny) {
            return Err(CapError::Failed(format!(
                "`{name}` is a variable of the platform itself ({}, and CODEAI_ENV_DENY), which \
                 jobs cannot read from the host's environment; to give a job the value, {}",
                PLATFORM_VARIABLES.join(", "),
                self.how_to_set(name)
            )));
        }
        match (from.process)(name) {
            Some(value) => Ok(self.handed_out(value)),
            None => Err(CapError::Failed(format!(
                "`{name}` is neither a secret of the operator nor set in the host's \
                 environment: {}",
                self.how_to_set(name)
            ))),
        }
    }

    fn handed_out(&mut self, value: String) -> String {
        if value.len() >= MIN_REDACTED_LEN && !self.resolved.contains(&value) {
            self.resolved.push(value.clone());
            self.redactor = Redactor::new(self.resolved.iter().cloned());
        }
        value
    }

    /// What replaces every value handed out so far.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// Replaces secret values by [`REDACTED`] in text: each value as it is and as it looks inside a
/// JSON string, longest first (a value that contains another is replaced whole).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    patterns: Vec<String>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            if value.len() < MIN_REDACTED_LEN {
                continue;
            }
            let quoted = Value::String(value.clone()).to_string();
            let escaped = quoted[1..quoted.len() - 1].to_string();
            for p in [value, escaped] {
                if !patterns.contains(&p) {
                    patterns.push(p);
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Redactor { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every value replaced.
    pub fn text(&self, text: &str) -> String {
        self.owned(text.to_string())
    }

    /// [`Redactor::text`] of an owned string (returned as it is when nothing matches).
    pub fn owned(&self, text: String) -> String {
        let mut out = text;
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), REDACTED);
            }
        }
        out
    }

    /// JSON text with every value replaced inside its strings (keys included), so the result
    /// is still JSON; text that is not JSON is redacted as text.
    pub fn json(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value) => self.value(value).to_string(),
            Err(_) => self.text(text),
        }
    }

    fn value(&self, value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.value(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A capability error with every value replaced in its message.
    pub fn error(&self, e: CapError) -> CapError {
        if self.is_empty() {
            return e;
        }
        match e {
            CapError::Denied(m) => CapError::Denied(self.text(&m)),
            CapError::Invalid(m) => CapError::Invalid(self.text(&m)),
            CapError::Timeout(m) => CapError::Timeout(self.text(&m)),
            CapError::Failed(m) => CapError::Failed(self.text(&m)),
        }
    }

    /// An execution's result with every value replaced in its error, output, log lines and
    /// call records: what is recorded, returned and emitted.
    pub fn result(&self, result: &mut crate::runtime::ExecResult) {
        if self.is_empty() {
            return;
        }
        result.error = result.error.as_deref().map(|e| self.text(e));
        result.output = result.output.as_deref().map(|o| self.json(o));
        for line in &mut result.logs {
            line.message = self.text(&line.message);
        }
        for call in &mut result.calls {
            call.detail = self.text(&call.detail);
            call.error = call.error.as_deref().map(|e| self.text(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::parse_deny_list;

    #[test]
    fn platform_variables_and_the_operators_list_are_denied() {
        let extra = parse_deny_list(" AWS_*, ,GITHUB_TOKEN ");
        assert_eq!(extra, ["AWS_*", "GITHUB_TOKEN"]);
        for name in [
            "CODEAI_ADMIN_TOKEN",
            "CODEAI_SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
            "SMTP_PASSWORD",
            "SLACK_WEBHOOK",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
        ] {
            assert!(denied(name, &extra), "{name}");
        }
        for name in [
            "WAREHOUSE_API_KEY",
            "HOME",
            "DATABASE_URL_X",
            "GITHUB_TOKENS",
        ] {
            assert!(!denied(name, &extra), "{name}");
        }
    }

    #[test]
    fn values_are_redacted_in_text_and_in_json_and_short_ones_are_not() {
        let r = Redactor::new(["tok\"en-1234".to_string(), "abc".to_string(), "tok".into()]);
        assert_eq!(r.text("Bearer tok\"en-1234 abc"), "Bearer [secret] abc");
        let json = r#"{"echo":"tok\"en-1234","tok\"en-1234":1,"n":[ "x tok\"en-1234 y" ]}"#;
        let out: Value = serde_json::from_str(&r.json(json)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"echo": "[secret]", "[secret]": 1, "n": ["x [secret] y"]})
        );
        assert_eq!(r.json("not json tok\\\"en-1234"), "not json [secret]");
        let longest_first = Redactor::new(["abcd".to_string(), "abcdef".to_string()]);
        assert_eq!(longest_first.text("abcdef abcd"), "[secret] [secret]");
    }
}
