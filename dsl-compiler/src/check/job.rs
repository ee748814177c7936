//! The fields of a job — schedule, timezone, queue, limits, retries, events, input — and the
//! assembly of its [`Program`] and [`Manifest`].

use super::decls::{Decls, BUILTIN_QUEUES};
use super::suggest::{did_you_mean, hint_or_list, list};
use super::{CheckedJob, Cx};
use crate::ast::{self, JobValue, Span};
use codeai_cron::CronExpr;
use codeai_ir::limits;
use codeai_ir::{Backoff, Manifest, Overlap, Program, RetryPolicy, Schedule, StepKind, IR_VERSION};
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

/// The fields a job may set.
const JOB_FIELDS: &[&str] = &[
    "description",
    "job_type",
    "schedule",
    "run_at",
    "timezone",
    "queue",
    "timeout",
    "retry",
    "retry_delays",
    "overlap",
    "on_complete",
    "on_fail",
    "trigger",
    "input",
];

/// Timeout of a job that does not set one: 30 minutes.
const DEFAULT_TIMEOUT_MS: u64 = 30 * 60 * 1000;
/// The delay before each retry when the job names no strategy.
const DEFAULT_RETRY_DELAY_MS: u64 = 1000;
/// The base of `exponential_backoff`: 100ms, 200ms, 400ms …
const EXPONENTIAL_BASE_MS: u64 = 100;
const MAX_RETRIES: i64 = limits::MAX_RETRIES as i64;
const OVERLAP_POLICIES: [&str; 3] = [
    Overlap::Skip.as_str(),
    Overlap::Queue.as_str(),
    Overlap::Allow.as_str(),
];

/// What a job's program uses: capabilities and the declarations it refers to.
#[derive(Default)]
pub(super) struct Usage {
    pub(super) caps: BTreeSet<&'static str>,
    pub(super) entities: BTreeSet<String>,
    pub(super) integrations: BTreeSet<String>,
    pub(super) templates: BTreeSet<String>,
    pub(super) events: BTreeSet<String>,
}

/// The checker's state while it works on one job.
pub(super) struct JobCx<'c, 's> {
    pub(super) cx: &'c mut Cx<'s>,
    pub(super) decls: &'c Decls,
    pub(super) usage: Usage,
    /// Names visible to the expression being checked.
    pub(super) scope: Vec<String>,
    /// Bindings of the current and later steps, with the step that binds each: using one is
    /// "used before the step that binds it".
    pub(super) later: HashMap<String, String>,
    /// The declared actions being lowered, outermost first (a call to one of them is recursion).
    pub(super) action_stack: Vec<String>,
    /// Action calls expanded so far in this job.
    pub(super) action_calls: usize,
    /// The names a typed `input:` declares (`input.x` of another name is an error).
    pub(super) input_names: Option<Vec<String>>,
    /// What is known of the values of names in scope (a binding's object, a query's rows, a
    /// loop's item), latest last; see [`super::shape`].
    pub(super) shapes: Vec<(String, super::shape::Shape)>,
    /// The names of the items of the enclosing `for_each` steps and `item -> …` conditions,
    /// innermost last: the first names a "did you mean" considers.
    pub(super) items: Vec<String>,
    /// The items of the `for_each` steps that ended in the current block, with their step:
    /// a use after the step is told where the item was in scope.
    pub(super) past_items: Vec<(String, String)>,
    /// Above zero inside the first argument of `default(…)`, where a missing field reads as
    /// nothing.
    pub(super) lenient: u32,
}

/// Checks a declared action once on its own, so that its errors (recursion included) are
/// reported even when no job calls it. What it uses counts only where it is called.
pub(super) fn check_action(decl: &ast::ActionDecl, decls: &Decls, cx: &mut Cx<'_>) {
    let mut jcx = JobCx {
        cx,
        decls,
        usage: Usage::default(),
        scope: Vec::new(),
        later: HashMap::new(),
        action_stack: Vec::new(),
        action_calls: 0,
        input_names: None,
        shapes: Vec::new(),
        items: Vec::new(),
        past_items: Vec::new(),
        lenient: 0,
    };
    jcx.action_steps(decl);
}

/// Checks one job and lowers it.
pub(super) fn check_job(
    job: &ast::Job,
    decls: &Decls,
    cx: &mut Cx<'_>,
    source_hash: &str,
) -> CheckedJob {
    let mut seen: HashMap<&str, Span> = HashMap::new();
    let mut description = None;
    let mut job_type = None;
    let mut schedule: Option<Schedule> = None;
    let mut schedule_field: Option<&ast::JobField> = None;
    let mut timezone = "UTC".to_string();
    let mut queue = "default".to_string();
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    let mut retries: Option<(u32, Option<&ast::Ident>, Span)> = None;
    let mut delays: Option<(Vec<u64>, Span)> = None;
    let mut overlap = Overlap::default();
    let mut on_complete = None;
    let mut trigger = None;
    let mut on_fail = None;
    let mut input: Vec<(ast::Ident, &ast::Expr)> = Vec::new();
    let mut usage = Usage::default();

    for field in &job.fields {
        let key = field.key.node.as_str();
        if !JOB_FIELDS.contains(&key) {
            let hint = did_you_mean(key, JOB_FIELDS.iter().copied())
                .unwrap_or_else(|| format!("job fields are {}", list(JOB_FIELDS)));
            cx.error_hint(field.key.span, format!("unknown job field `{key}`"), hint);
            continue;
        }
        if let Some(first) = seen.get(key) {
            let (line, _) = crate::diagnostic::line_col(cx.source, first.start);
            cx.error_hint(
                field.key.span,
                format!("`{key}` is set twice in job `{}`", job.name.node),
                format!("the first `{key}` is on line {line}"),
            );
            continue;
        }
        seen.insert(key, field.key.span);
        match key {
            "description" => match &field.value {
                JobValue::Str(s) => description = Some(s.node.clone()),
                _ => expected(
                    cx,
                    field,
                    "a string, like `description: \"Daily sales summary\"`",
                ),
            },
            "job_type" => match name_value(&field.value) {
                Some(n) => job_type = Some(n.node),
                None => expected(cx, field, "a name, like `job_type: report`"),
            },
            "schedule" | "run_at" => {
                let parsed = if key == "schedule" {
                    schedule_value(cx, field)
                } else {
                    run_at_value(cx, field)
                };
                match schedule_field {
                    Some(first) => {
                        let message = format!(
                            "a job has one schedule: `{}` and `{key}` cannot both be set",
                            first.key.node
                        );
                        cx.error_hint(
                            field.span,
                            message,
                            "use `schedule:` for a recurring job or `run_at:` for a single run",
                        );
                    }
                    None => {
                        schedule_field = Some(field);
                        schedule = parsed;
                    }
                }
            }
            "timezone" => match &field.value {
                JobValue::Str(s) => match chrono_tz::Tz::from_str(&s.node) {
                    Ok(tz) => timezone = tz.name().to_string(),
                    Err(_) => {
                        let hint =
                            did_you_mean(&s.node, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                                .unwrap_or_else(|| {
                                    "use an IANA timezone name such as `UTC` or `America/New_York`"
                                        .to_string()
                                });
                        cx.error_hint(s.span, format!("unknown timezone `{}`", s.node), hint);
                    }
                },
                _ => expected(
                    cx,
                    field,
                    "an IANA timezone name in quotes, like `timezone: \"UTC\"`",
                ),
            },
            "queue" => match name_value(&field.value) {
                Some(n) => {
                    if decls.queues.iter().any(|q| q.name == n.node) {
                        queue = n.node;
                    } else {
                        let names = decls.queue_names();
                        let hint = did_you_mean(&n.node, names.iter().copied())
                            .unwrap_or_else(|| format!("declared queues are {}", names.join(", ")));
                        cx.error_hint(n.span, format!("unknown queue `{}`", n.node), hint);
                    }
                }
                None => expected(cx, field, "a queue name, like `queue: default`"),
            },
            "timeout" => match &field.value {
                JobValue::Duration(d) if d.node.millis == 0 => {
                    cx.error(d.span, "a job timeout must be greater than 0")
                }
                JobValue::Duration(d) if d.node.millis > limits::MAX_TIMEOUT_MS => cx.error_hint(
                    d.span,
                    "a job timeout must be at most 24h",
                    "an execution holds a worker slot until it ends; split longer work into jobs",
                ),
                JobValue::Duration(d) => timeout_ms = d.node.millis,
                _ => expected(cx, field, "a duration, like `timeout: 30m`"),
            },
            "retry" => match &field.value {
                JobValue::Retry { times, strategy } => {
                    let n = if (0..=MAX_RETRIES).contains(&times.node) {
                        times.node as u32
                    } else {
                        cx.error(
                            times.span,
                            format!("retry count {} is out of range 0-{MAX_RETRIES}", times.node),
                        );
                        0
                    };
                    if let Some(s) = strategy {
                        if s.node != "exponential_backoff" {
                            cx.error_hint(
                                s.span,
                                format!("unknown retry strategy `{}`", s.node),
                                "the strategy is `exponential_backoff`; give other delays with `retry_delays: [1m, 5m]`",
                            );
                        }
                    }
                    retries = Some((n, strategy.as_ref(), field.span));
                }
                _ => expected(
                    cx,
                    field,
                    "`N times`, like `retry: 3 times with exponential_backoff`",
                ),
            },
            "retry_delays" => match &field.value {
                JobValue::Durations(list) => {
                    delays = Some((list.iter().map(|d| d.node.millis).collect(), field.span))
                }
                _ => expected(
                    cx,
                    field,
                    "a list of durations, like `retry_delays: [1m, 5m, 30m]`",
                ),
            },
            "overlap" => match name_value(&field.value) {
                Some(n) => match Overlap::named(&n.node) {
                    Some(policy) => overlap = policy,
                    None => {
                        let hint = hint_or_list(&n.node, "the overlap policies", &OVERLAP_POLICIES);
                        cx.error_hint(n.span, format!("unknown overlap policy `{}`", n.node), hint)
                    }
                },
                None => expected(cx, field, "`skip`, `queue` or `allow`"),
            },
            "on_complete" | "on_fail" => match &field.value {
                JobValue::Emit(event) => {
                    if let Some(decl) = decls.event(&event.node) {
                        // The platform sends these, as strings: the event must not want more.
                        let sent: &[&str] = if key == "on_complete" {
                            &["job", "execution"]
                        } else {
                            &["job", "execution", "error"]
                        };
                        let wanted = decl.fields.iter().find(|f| {
                            !sent.contains(&f.name.as_str()) || f.ty != codeai_ir::FieldType::String
                        });
                        if let Some(f) = wanted {
                            cx.error_hint(
                                event.span,
                                format!(
                                    "`{key}: emit({})` sends {{{}}} as strings; the event declares \
                                     `{}: {}`",
                                    event.node,
                                    sent.join(", "),
                                    f.name,
                                    f.ty.name()
                                ),
                                format!(
                                    "declare `event {} {{ {} }}` (any of them), or emit an event \
                                     of your own from a step",
                                    event.node,
                                    sent.iter()
                                        .map(|n| format!("{n}: string"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                        }
                        usage.caps.insert("events");
                        usage.events.insert(event.node.clone());
                        if key == "on_complete" {
                            on_complete = Some(event.node.clone());
                        } else {
                            on_fail = Some(event.node.clone());
                        }
                    } else {
                        let hint =
                            hint_or_list(&event.node, "the declared events", &decls.event_names());
                        cx.error_hint(event.span, format!("unknown event `{}`", event.node), hint);
                    }
                }
                _ => expected(cx, field, "`emit(Event)`"),
            },
            "trigger" => match &field.value {
                JobValue::On(event) => {
                    if decls.event(&event.node).is_some() {
                        trigger = Some((event.node.clone(), event.span));
                    } else {
                        let hint =
                            hint_or_list(&event.node, "the declared events", &decls.event_names());
                        cx.error_hint(event.span, format!("unknown event `{}`", event.node), hint);
                    }
                }
                _ => expected(cx, field, "`on(Event)`"),
            },
            "input" => match &field.value {
                JobValue::Expr(ast::Expr {
                    kind: ast::ExprKind::Object(entries),
                    ..
                }) => input = entries.iter().map(|(k, v)| (k.clone(), v)).collect(),
                _ => expected(
                    cx,
                    field,
                    "an object, like `input: { recipients: [\"ops@example.com\"] }`",
                ),
            },
            _ => {}
        }
    }

    // Retry policy.
    let (max_retries, strategy) = retries.map(|(n, s, _)| (n, s)).unwrap_or((0, None));
    let backoff = match (&delays, strategy) {
        (Some((list, span)), _) => {
            if let Some(s) = strategy {
                cx.error_hint(
                    *span,
                    "`retry_delays` and `with exponential_backoff` cannot both be set",
                    format!("remove `with {}` or the delays", s.node),
                );
            } else if list.len() != max_retries as usize {
                let retries_text = if max_retries == 1 {
                    "1 retry".to_string()
                } else {
                    format!("{max_retries} retries")
                };
                let delays_text = if list.len() == 1 {
                    "1 delay".to_string()
                } else {
                    format!("{} delays", list.len())
                };
                cx.error_hint(
                    *span,
                    format!("{retries_text} but {delays_text}"),
                    "`retry_delays` gives one delay per retry of `retry: N times`",
                );
            }
            Backoff::Custom {
                delays_ms: list.clone(),
            }
        }
        (None, Some(_)) => Backoff::Exponential {
            base_ms: EXPONENTIAL_BASE_MS,
        },
        (None, None) => Backoff::Fixed {
            delay_ms: DEFAULT_RETRY_DELAY_MS,
        },
    };

    // Input defaults: evaluated before any step, so only built-ins are in scope.
    let mut jcx = JobCx {
        cx,
        decls,
        usage,
        scope: Vec::new(),
        later: HashMap::new(),
        action_stack: Vec::new(),
        action_calls: 0,
        input_names: None,
        shapes: Vec::new(),
        items: Vec::new(),
        past_items: Vec::new(),
        lenient: 0,
    };
    jcx.cx
        .check_unique("input key", input.iter().map(|(k, _)| k));
    let declared = super::input::declaration(&mut jcx, &input);
    let input_defaults = declared.defaults;
    let input_fields = declared.fields;
    jcx.scope.push("input".to_string());
    jcx.scope.extend(declared.names.iter().cloned());
    if input_fields.is_some() {
        jcx.input_names = Some(declared.names);
    }
    // A scheduled fire gives no input: a field it requires would fail every scheduled run.
    if let (Some(_), Some(fields)) = (&schedule, &input_fields) {
        for field in fields.iter().filter(|f| !f.has_default) {
            let span = input
                .iter()
                .find(|(k, _)| k.node == field.name)
                .map_or(job.name.span, |(k, _)| k.span);
            jcx.cx.error_hint(
                span,
                format!(
                    "input `{}` is required, but the job's scheduled runs are given no input",
                    field.name
                ),
                "give it a default (`= …`), or a `null` default to make it optional",
            );
        }
    }
    if let (Some((event, span)), Some(fields)) = (&trigger, &input_fields) {
        if let Some(decl) = decls.event(event) {
            super::input::fits_event(jcx.cx, *span, decl, fields);
        }
    }

    // Steps.
    let steps = match job.steps_span {
        None if job.broken => Vec::new(),
        None => {
            jcx.cx.error_hint(
                job.name.span,
                format!("job `{}` has no `steps`", job.name.node),
                "add `steps { … }` with at least one step",
            );
            Vec::new()
        }
        Some(_) if job.steps.is_empty() && job.broken => Vec::new(),
        Some(span) if job.steps.is_empty() => {
            jcx.cx.error_hint(
                span,
                format!("job `{}` has no steps", job.name.node),
                "add at least one step, like `fetch { query: select Order }`",
            );
            Vec::new()
        }
        Some(_) => jcx.steps(job),
    };
    let JobCx { usage, cx, .. } = jcx;
    let mut caps = usage.caps;
    caps.insert("log");

    let job_type = job_type.unwrap_or_else(|| infer_job_type(&steps).to_string());
    let manifest = Manifest {
        ir_version: IR_VERSION,
        name: job.name.node.clone(),
        description,
        job_type,
        schedule: schedule.unwrap_or(Schedule::Manual),
        timezone,
        queue,
        queues: decls.queues.clone(),
        timeout_ms,
        retry: RetryPolicy {
            max_retries,
            backoff,
        },
        overlap,
        on_complete,
        on_fail,
        trigger: trigger.map(|(event, _)| event),
        capabilities: caps.into_iter().map(str::to_string).collect(),
        entities: decls
            .entities
            .iter()
            .filter(|e| usage.entities.contains(&e.decl.name))
            .map(|e| e.decl.clone())
            .collect(),
        integrations: decls
            .integrations
            .iter()
            .filter(|i| usage.integrations.contains(&i.name))
            .cloned()
            .collect(),
        templates: decls
            .templates
            .iter()
            .filter(|t| usage.templates.contains(&t.name))
            .cloned()
            .collect(),
        events: decls
            .events
            .iter()
            .filter(|e| usage.events.contains(&e.name))
            .cloned()
            .collect(),
        input: input_fields.clone(),
        source_hash: source_hash.to_string(),
        source_file: cx.source_file.to_string(),
        compiler: env!("CARGO_PKG_VERSION").to_string(),
    };
    debug_assert!(BUILTIN_QUEUES
        .iter()
        .all(|(n, _)| manifest.queues.iter().any(|q| q.name == *n)));
    CheckedJob {
        program: Program {
            ir_version: IR_VERSION,
            job: job.name.node.clone(),
            input_defaults,
            input: input_fields,
            steps,
        },
        manifest,
    }
}

/// Reports a field whose value has the wrong shape.
fn expected(cx: &mut Cx<'_>, field: &ast::JobField, what: &str) {
    cx.error(field.span, format!("`{}` expects {what}", field.key.node));
}

/// A bare name (`queue: low`) — also accepted in quotes.
fn name_value(value: &JobValue) -> Option<ast::Ident> {
    match value {
        JobValue::Ident(i) | JobValue::Str(i) => Some(i.clone()),
        JobValue::Expr(ast::Expr {
            kind: ast::ExprKind::Ident(n),
            span,
        }) => Some(ast::Ident::new(n.clone(), *span)),
        _ => None,
    }
}

/// `schedule: "cron"` or `schedule: every 30m`.
fn schedule_value(cx: &mut Cx<'_>, field: &ast::JobField) -> Option<Schedule> {
    match &field.value {
        JobValue::Str(s) => {
            let expr = s.node.trim();
            if let Some(rest) = expr.strip_prefix("every ") {
                cx.error_hint(
                    s.span,
                    format!("`{}` is not a cron expression", s.node),
                    format!(
                        "an interval is written without quotes: `schedule: every {}`",
                        rest.trim()
                    ),
                );
                return None;
            }
            match CronExpr::parse(&s.node) {
                Ok(parsed) if !parsed.can_fire() => {
                    cx.error_hint(
                        s.span,
                        format!("cron expression `{}` never fires", s.node),
                        "no month in it has that day of the month",
                    );
                    None
                }
                Ok(_) => Some(Schedule::Cron {
                    expression: expr.to_string(),
                }),
                Err(e) => {
                    let span = cron_span(cx, s, &e.span());
                    let hint = if e.field().is_none() && !expr.starts_with('@') {
                        "a cron expression has 5 fields: minute, hour, day of month, month, day of week, as in \"0 6 * * *\"".to_string()
                    } else if expr.starts_with('@') {
                        let macros: Vec<&str> =
                            codeai_cron::MACROS.iter().map(|(m, _)| *m).collect();
                        hint_or_list(expr, "the macros", &macros)
                    } else {
                        "the fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-6, Sunday = 0)".to_string()
                    };
                    cx.error_hint(
                        span,
                        format!("invalid cron expression: {}", e.message()),
                        hint,
                    );
                    None
                }
            }
        }
        JobValue::Every(d) => {
            if d.node.millis < limits::MIN_INTERVAL_MS {
                cx.error_hint(
                    d.span,
                    "an interval must be at least 1s",
                    "the scheduler fires at most once a second",
                );
                None
            } else {
                Some(Schedule::Interval {
                    every_ms: d.node.millis,
                })
            }
        }
        _ => {
            expected(cx, field, "a cron expression in quotes or an interval, like `schedule: \"0 6 * * *\"` or `schedule: every 1h`");
            None
        }
    }
}

/// Maps a byte range inside a cron string to the source, when the literal holds the string
/// verbatim (no escapes); otherwise the whole literal.
fn cron_span(cx: &Cx<'_>, lit: &ast::Spanned<String>, inner: &std::ops::Range<usize>) -> Span {
    let raw = cx.text(lit.span);
    let verbatim =
        raw.len() == lit.node.len() + 2 && raw.get(1..raw.len() - 1) == Some(lit.node.as_str());
    if verbatim && inner.end <= lit.node.len() {
        let start = lit.span.start + 1 + inner.start;
        let end = lit.span.start + 1 + inner.end.max(inner.start + 1).min(lit.node.len());
        Span::new(start, end.max(start))
    } else {
        lit.span
    }
}

/// `run_at: "2026-01-15T10:00:00Z"`, stored in UTC.
fn run_at_value(cx: &mut Cx<'_>, field: &ast::JobField) -> Option<Schedule> {
    match &field.value {
        JobValue::Str(s) => match chrono::DateTime::parse_from_rfc3339(s.node.trim()) {
            Ok(at) => Some(Schedule::Once {
                at: at
                    .with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            }),
            Err(e) => {
                cx.error_hint(
                    s.span,
                    format!("`{}` is not an RFC 3339 date-time ({e})", s.node),
                    "write it like \"2026-01-15T10:00:00Z\" or \"2026-01-15T10:00:00-05:00\"",
                );
                None
            }
        },
        _ => {
            expected(
                cx,
                field,
                "an RFC 3339 date-time in quotes, like `run_at: \"2026-01-15T10:00:00Z\"`",
            );
            None
        }
    }
}

/// The job type of a job that does not say: from the first kind of step found in this order —
/// report, delete, maintain, call, slack — else `general`.
fn infer_job_type(steps: &[codeai_ir::Step]) -> &'static str {
    fn kinds(kind: &StepKind, out: &mut Vec<&'static str>) {
        match kind {
            StepKind::Report { .. } => out.push("report"),
            StepKind::Delete { .. } | StepKind::DeleteReport { .. } => out.push("cleanup"),
            StepKind::Maintain { .. } => out.push("maintenance"),
            StepKind::Call { .. } => out.push("sync"),
            StepKind::Slack { .. } => out.push("alert"),
            StepKind::ForEach { body, .. } => kinds(body, out),
            StepKind::Block { steps, .. } => {
                for step in steps {
                    kinds(&step.kind, out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for step in steps {
        kinds(&step.kind, &mut found);
    }
    ["report", "cleanup", "maintenance", "sync", "alert"]
        .into_iter()
        .find(|t| found.contains(t))
        .unwrap_or("general")
}
