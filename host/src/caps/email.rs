//! The `email` interface: SMTP through lettre when configured, otherwise the outbox (the
//! delivery says `held`); attachments are reports this execution rendered.

use super::report::content_type;
use super::{filled, over, Held, JobCaps};
use crate::notify;
use crate::report::template::interpolate;
use crate::wasm::{email, CapError, Delivery};
use serde_json::{json, Value};

impl email::Host for JobCaps {
    async fn send(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        let r = self.send_email(msg).await;
        self.within_budget(r).await
    }
}

impl JobCaps {
    async fn send_email(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        let call = "`email.send`";
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let data = self.parse_charged(&msg.data, "the message data", call, &mut held)?;
        let template = match &msg.template {
            Some(name) => Some(self.template(name)?.clone()),
            None => None,
        };
        // A template that declares a subject renders it with the data (the DSL's `send` step
        // always carries a plain subject too, which is the fallback).
        let subject = match template.as_ref().and_then(|t| t.subject.as_deref()) {
            Some(s) => filled(template.as_ref(), interpolate(s, &data))?,
            None if !msg.subject.trim().is_empty() => {
                filled(template.as_ref(), interpolate(&msg.subject, &data))?
            }
            None => format!("{} from CodeAI Jobs", self.job()),
        };
        let body = self.message_text(template.as_ref(), &data)?;
        let mut files = Vec::new();
        for id in &msg.attachments {
            let file = self
                .rendered
                .iter()
                .find(|r| &r.id == id)
                .cloned()
                .ok_or_else(|| {
                    CapError::Invalid(format!(
                        "attachment `{id}` is not a report rendered by this execution"
                    ))
                })?;
            files.push(file);
        }
        if msg.to.is_empty() {
            return Err(CapError::Invalid("the message has no recipients".into()));
        }
        if msg.to.len() > notify::MAX_RECIPIENTS {
            return Err(CapError::Invalid(format!(
                "{} recipients (at most {})",
                msg.to.len(),
                notify::MAX_RECIPIENTS
            )));
        }
        let Some(smtp) = self.services.config().smtp.clone() else {
            let attachments: Vec<Value> = files
                .iter()
                .map(|f| json!({ "id": f.id, "name": f.name }))
                .collect();
            return self
                .hold(Held {
                    kind: "email",
                    recipient: Value::from(msg.to.clone()).to_string(),
                    subject: Some(subject),
                    body,
                    attachments: Value::Array(attachments),
                    reason: "no SMTP server is configured (SMTP_HOST)",
                })
                .await;
        };
        let mut attachments = Vec::new();
        for f in &files {
            let failed = |e: std::io::Error| {
                CapError::Failed(format!("reading report `{}`: {e}", f.path.display()))
            };
            // The file's bytes, and its base64 in the message built from them.
            let size = tokio::fs::metadata(&f.path).await.map_err(failed)?.len() as usize;
            held.grow(size + size.div_ceil(3) * 4, call).map_err(over)?;
            let bytes = tokio::fs::read(&f.path).await.map_err(failed)?;
            attachments.push(notify::Attachment {
                file_name: f.name.clone(),
                content_type: content_type(f.format).to_string(),
                bytes,
            });
        }
        let mail = notify::Email {
            to: msg.to,
            subject,
            body,
            attachments,
        };
        match notify::send_email(&smtp, &mail).await {
            Ok(reply) => Ok(Delivery::Sent(reply)),
            Err(notify::NotifyError::Address(a)) => {
                Err(CapError::Invalid(format!("invalid address `{a}`")))
            }
            Err(e) => Err(CapError::Failed(e.to_string())),
        }
    }
}
