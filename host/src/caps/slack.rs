//! The `slack` interface: the Slack webhook when configured, otherwise the outbox (the delivery
//! says `held`).

use super::{over, Held, JobCaps};
use crate::notify;
use crate::wasm::{slack, CapError, Delivery};
use serde_json::json;

impl slack::Host for JobCaps {
    async fn post(
        &mut self,
        channel: String,
        template: Option<String>,
        data: String,
    ) -> Result<Delivery, CapError> {
        let call = "`slack.post`";
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let r = self.parse_charged(&data, "the message data", call, &mut held);
        let data = self.within_budget(r).await?;
        let template = match &template {
            Some(name) => Some(self.template(name)?.clone()),
            None => None,
        };
        let text = self.message_text(template.as_ref(), &data)?;
        let Some(config) = self.services.config().slack.clone() else {
            return self
                .hold(Held {
                    kind: "slack",
                    recipient: channel,
                    subject: None,
                    body: text,
                    attachments: json!([]),
                    reason: "no Slack webhook is configured (SLACK_WEBHOOK)",
                })
                .await;
        };
        notify::post_slack(self.services.webhooks(), &config, &channel, &text)
            .await
            .map_err(|e| CapError::Failed(e.to_string()))?;
        Ok(Delivery::Sent(String::new()))
    }
}
