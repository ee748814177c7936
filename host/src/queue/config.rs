//! What queues exist and what each weighs: the operator's to say, never a tenant's.
//!
//! The weights come from the operator's configuration (`CODEAI_QUEUES`, or `--queue-weights`
//! on `codeai host run`, `codeai run` and `codeai worker start`), default `critical=6,
//! default=3,low=1`, each between [`MIN_WEIGHT`] and [`MAX_WEIGHT`]. A job's manifest names the
//! queue it runs in; it sets no weight. The operator's own jobs (the default tenant) may still
//! declare new queues in their source (`queue reports { weight: 2 }`): those are added with
//! their weight clamped to the bounds and never change a configured queue. A tenant's job must
//! name a queue that exists ([`UnknownQueue`] otherwise); the weights in its manifest are
//! ignored, so no manifest, however edited, takes a larger share of the workers.

use crate::store::tenants::is_operator;
use codeai_ir::Manifest;
use std::time::Duration;

/// The smallest weight a queue has.
pub const MIN_WEIGHT: u32 = 1;

/// The largest weight a queue has: a thousand times the lightest queue's share is more than
/// any sensible setup needs, and keeps the picker's credit arithmetic far from overflow.
pub const MAX_WEIGHT: u32 = 1000;

/// The queues when the operator configures none.
pub const DEFAULT_QUEUES: &str = "critical=6,default=3,low=1";

/// How queues are served.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Queue names and weights, from the operator (default critical 6, default 3, low 1).
    pub weights: Vec<(String, u32)>,
    /// Serve the heaviest non-empty queue first instead of sharing by weight.
    pub strict: bool,
    /// How long a dequeued task stays leased without a heartbeat (default 30 s).
    pub lease: Duration,
    /// Take tasks only from these queues (`codeai worker start --queues`); `None`: all.
    pub only: Option<Vec<String>>,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            weights: parse_weights(DEFAULT_QUEUES).unwrap_or_default(),
            strict: false,
            lease: Duration::from_secs(30),
            only: None,
        }
    }
}

/// Reads `critical=6,default=3,low=1`: queue names (letters, digits, `_`, `-`; at most 64) with
/// weights between [`MIN_WEIGHT`] and [`MAX_WEIGHT`]. `default` must be among them: a job that
/// names no queue runs there.
pub fn parse_weights(text: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, weight) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: expected `name=weight`, e.g. `reports=2`"))?;
        let name = name.trim();
        if !valid_name(name) {
            return Err(format!(
                "`{name}` is not a queue name (letters, digits, `_` and `-`, at most 64)"
            ));
        }
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| (MIN_WEIGHT..=MAX_WEIGHT).contains(w))
            .ok_or_else(|| {
                format!(
                    "queue `{name}`: the weight `{}` is not a whole number from {MIN_WEIGHT} to \
                     {MAX_WEIGHT}",
                    weight.trim()
                )
            })?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("queue `{name}` is given twice"));
        }
        out.push((name.to_string(), weight));
    }
    if !out.iter().any(|(n, _)| n == "default") {
        return Err(
            "the queues must include `default` (jobs that name no queue run there), \
                    e.g. `critical=6,default=3,low=1`"
                .into(),
        );
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A weight brought within the bounds.
pub fn clamp_weight(weight: u32) -> u32 {
    weight.clamp(MIN_WEIGHT, MAX_WEIGHT)
}

/// A job names a queue this server does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the job runs in queue `{queue}`, which this server does not have; the queues are {known} \
     (the operator sets them with CODEAI_QUEUES): name one of them in the job's `queue:`"
)]
pub struct UnknownQueue {
    pub queue: String,
    /// The queues there are, as a list for the message.
    pub known: String,
}

/// Checks the queue a job of `tenant` runs in against the queues there are (`known`): a
/// tenant's job must name one of them; the operator's may also name one its own source
/// declares.
pub(super) fn check_job(
    known: &[String],
    tenant: &str,
    manifest: &Manifest,
) -> Result<(), UnknownQueue> {
    let queue = &manifest.queue;
    let declared = is_operator(tenant) && manifest.queues.iter().any(|q| &q.name == queue);
    if known.contains(queue) || declared {
        return Ok(());
    }
    Err(UnknownQueue {
        queue: queue.clone(),
        known: known
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_read_checked_and_bounded() {
        assert_eq!(
            parse_weights("critical=6, default=3,low=1,reports=2").unwrap(),
            [
                ("critical".to_string(), 6),
                ("default".to_string(), 3),
                ("low".to_string(), 1),
                ("reports".to_string(), 2)
            ]
        );
        assert_eq!(QueueConfig::default().weights.len(), 3);
        for (text, says) in [
            ("default=0", "from 1 to 1000"),
            ("default=1001", "from 1 to 1000"),
            ("default=4294967295", "from 1 to 1000"),
            ("default=-1", "from 1 to 1000"),
            ("default", "expected `name=weight`"),
            ("a:b=2,default=1", "not a queue name"),
            ("default=1,default=2", "given twice"),
            ("critical=6", "must include `default`"),
            ("", "must include `default`"),
        ] {
            let e = parse_weights(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(clamp_weight(u32::MAX), MAX_WEIGHT);
        assert_eq!(clamp_weight(0), MIN_WEIGHT);
    }
}
