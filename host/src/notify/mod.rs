//! Outgoing messages: email over SMTP with lettre, and Slack through an incoming webhook.
//!
//! Both transports are configured from the environment (the spec's `SMTP_HOST`, `SLACK_WEBHOOK`);
//! when one is not configured, [`SmtpConfig::from_env`] / [`SlackConfig::from_env`] return `None`
//! and the caller holds the message in the outbox instead of dropping it. These functions only
//! deliver; they know nothing of jobs, tenants or the outbox table.

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MailAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid address `{0}`")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("Slack webhook: {0}")]
    Slack(String),
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain text (a local relay or a test sink).
    None,
    /// Upgrade with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// SMTP settings: `SMTP_HOST`, `SMTP_PORT`, `SMTP_USERNAME`, `SMTP_PASSWORD`,
/// `SMTP_TLS` (`none`, `starttls`, `tls`) and `SMTP_FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub tls: Tls,
    pub from: String,
    pub timeout: Duration,
}

impl SmtpConfig {
    /// Reads the configuration; `None` when `SMTP_HOST` is unset or empty.
    pub fn from_env() -> Result<Option<SmtpConfig>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`SmtpConfig::from_env`] over any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<SmtpConfig>, String> {
        let Some(host) = get("SMTP_HOST").filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        let tls = match get("SMTP_TLS")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") => None,
            Some("none") => Some(Tls::None),
            Some("starttls") => Some(Tls::StartTls),
            Some("tls") => Some(Tls::Tls),
            Some(other) => {
                return Err(format!(
                    "SMTP_TLS must be none, starttls or tls, not `{other}`"
                ))
            }
        };
        let port = match get("SMTP_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("SMTP_PORT must be a port number, not `{p}`"))?,
            None => match tls {
                Some(Tls::Tls) => 465,
                Some(Tls::None) => 25,
                _ => 587,
            },
        };
        // Without an explicit setting the port implies the usual security.
        let tls = tls.unwrap_or(match port {
            465 => Tls::Tls,
            587 => Tls::StartTls,
            _ => Tls::None,
        });
        let credentials = match (get("SMTP_USERNAME"), get("SMTP_PASSWORD")) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
            _ => None,
        };
        Ok(Some(SmtpConfig {
            host,
            port,
            credentials,
            tls,
            from: get("SMTP_FROM").unwrap_or_else(|| "CodeAI Jobs <jobs@localhost>".to_string()),
            timeout: Duration::from_secs(30),
        }))
    }
}

/// A file attached to an email (a rendered report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

/// The most recipients one message may have: a job's data decides the list, and this keeps a
/// runaway list from turning the platform into a bulk mailer.
pub const MAX_RECIPIENTS: usize = 100;

/// Builds the MIME message (text body plus attachments).
pub fn build_message(from: &str, email: &Email) -> Result<Message, NotifyError> {
    if email.to.is_empty() {
        return Err(NotifyError::Build("no recipients".into()));
    }
    if email.to.len() > MAX_RECIPIENTS {
        return Err(NotifyError::Build(format!(
            "{} recipients (at most {MAX_RECIPIENTS})",
            email.to.len()
        )));
    }
    let from: Mailbox = from
        .parse()
        .map_err(|_| NotifyError::Address(from.to_string()))?;
    let mut builder = Message::builder().from(from).subject(email.subject.clone());
    for to in &email.to {
        let mailbox: Mailbox = to.parse().map_err(|_| NotifyError::Address(to.clone()))?;
        builder = builder.to(mailbox);
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone());
    let message = if email.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for a in &email.attachments {
            let content_type = ContentType::parse(&a.content_type).map_err(|e| {
                NotifyError::Build(format!("content type `{}`: {e}", a.content_type))
            })?;
            parts = parts.singlepart(
                MailAttachment::new(a.file_name.clone()).body(a.bytes.clone(), content_type),
            );
        }
        builder.multipart(parts)
    };
    message.map_err(|e| NotifyError::Build(e.to_string()))
}

/// Sends one email; returns the SMTP server's reply to the message (its queue id, usually).
pub async fn send_email(config: &SmtpConfig, email: &Email) -> Result<String, NotifyError> {
    let message = build_message(&config.from, email)?;
    let smtp = |e: lettre::transport::smtp::Error| NotifyError::Smtp(e.to_string());
    let mut transport = match config.tls {
        Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        Tls::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(smtp)?
        }
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(smtp)?,
    }
    .port(config.port)
    .timeout(Some(config.timeout));
    if let Some((user, password)) = &config.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let response = transport.build().send(message).await.map_err(smtp)?;
    Ok(response.message().collect::<Vec<_>>().join(" "))
}

/// Installs rustls's ring provider for the process (once); every HTTP client (reqwest is built
/// without a provider of its own) needs it before it is built.
pub fn install_tls_provider() {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client for outgoing calls (Slack webhooks, integrations), with TLS through rustls and
/// the ring provider, installed for the process on first use.
pub fn http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .user_agent(concat!("codeai-jobs/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Slack settings: `SLACK_WEBHOOK`, an incoming-webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    pub webhook_url: String,
}

impl SlackConfig {
    /// Reads the configuration; `None` when `SLACK_WEBHOOK` is unset or empty.
    pub fn from_env() -> Option<SlackConfig> {
        std::env::var("SLACK_WEBHOOK")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(|webhook_url| SlackConfig { webhook_url })
    }
}

/// Posts a message to a channel through the incoming webhook.
pub async fn post_slack(
    client: &reqwest::Client,
    config: &SlackConfig,
    channel: &str,
    text: &str,
) -> Result<(), NotifyError> {
    let response = client
        .post(&config.webhook_url)
        .timeout(Duration::from_secs(15))
        .json(&serde_json::json!({ "channel": channel, "text": text }))
        .send()
        .await
        .map_err(|e| NotifyError::Slack(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        return Err(NotifyError::Slack(format!("{status}: {body}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
