//! The interpreter: runs a [`Program`]'s steps in order against a [`Host`].
//!
//! Values are JSON values. Each step's result is bound to its `as:` name; `on_empty` and
//! `on_fail` decide what an empty result or a failure does to the job. Nothing here panics on
//! what a program or the host hands it: every type mismatch is a step failure with a message.

use crate::host::*;
use crate::time;
use codeai_ir::{
    Assignment, BinaryOp, Builtin, CompareOp, Expr, Filter as IrFilter, LogLevel, Part, Policy,
    Program, Step, StepKind, Term as IrTerm, UnaryOp,
};
use rustc_hash::FxHashMap;
use serde_json::{json, Map, Number, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The largest output a job returns; larger outputs are replaced by a summary.
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// The largest list `for_each` walks, so a runaway binding cannot loop forever on host calls.
const MAX_ITEMS: usize = 100_000;

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every step ran; the JSON object of the job's bindings.
    Completed(Value),
    /// `on_empty: skip(…)` or `on_fail: skip(…)` ended the job early.
    Skipped(String),
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub step: Option<String>,
    pub message: String,
}

/// A step-level failure, before the step's policy decides what it means.
#[derive(Debug)]
struct Fail(String);

type R<T> = Result<T, Fail>;

fn fail<T>(message: impl Into<String>) -> R<T> {
    Err(Fail(message.into()))
}

impl From<CapError> for Fail {
    fn from(e: CapError) -> Fail {
        Fail(e.to_string())
    }
}

/// Runs a program with the trigger's input (a JSON object, or null).
pub fn run<H: Host + ?Sized>(
    program: &Program,
    input: Value,
    host: &mut H,
) -> Result<Outcome, JobError> {
    let mut scope = Scope {
        vars: FxHashMap::default(),
        host,
        skipped: None,
        lenient: 0,
        blocks: 0,
        texts: BTreeMap::new(),
        last_text: None,
    };
    // A typed declaration checks the input first (the host did when it came through the API).
    if let Some(fields) = &program.input {
        codeai_ir::input::validate(fields, &input).map_err(|e| JobError {
            step: None,
            message: e.to_string(),
        })?;
    }
    // The trigger's input, with the defaults of the fields it does not give. The given object
    // is kept as it is (moving its entries into another map walked it and dropped it, even
    // empty: ~0.4 % of a no-op job's run, `perf`).
    let mut merged = match input {
        Value::Object(given) => given,
        Value::Null => Map::new(),
        other => {
            return Err(JobError {
                step: None,
                message: format!("the input must be a JSON object, got {}", type_name(&other)),
            })
        }
    };
    let mut defaults = Vec::new();
    for (k, e) in &program.input_defaults {
        if merged.contains_key(k) {
            continue; // given: its default is not needed
        }
        let v = scope.eval(e).map_err(|Fail(m)| JobError {
            step: None,
            message: format!("input default `{k}`: {m}"),
        })?;
        defaults.push((k.clone(), v));
    }
    merged.extend(defaults);
    // ISO dates of typed `date` fields become the start of that day in the job's timezone.
    if let Some(fields) = &program.input {
        let mut today = None;
        for f in fields.iter().filter(|f| f.ty.has_date()) {
            if let Some(v) = merged.get_mut(&f.name) {
                iso_dates(scope.host, &f.ty, v, &mut today);
            }
        }
    }
    // Room for the input, its fields and the job's own bindings at once: growing the table
    // rehashes every name in it.
    let bound = program.steps.iter().filter(|s| s.bind.is_some()).count();
    scope.vars.reserve(merged.len() + bound + 1);
    for (k, v) in &merged {
        scope.vars.insert(Cow::Owned(k.clone()), v.clone());
    }
    scope.vars.insert("input".into(), Value::Object(merged));

    let mut outputs = Map::new();
    let ended = scope.steps(&program.steps, &mut outputs);
    // In the guest, the bindings (their values, maps and strings, the input among them) are
    // not freed while the run stays in the arena (`heap::discard`); they are before the output's
    // text is written when it outgrew it.
    #[cfg(target_arch = "wasm32")]
    crate::heap::discard(scope);
    match ended {
        Ok(()) => {}
        Err(End::Skipped(reason)) => return Ok(Outcome::Skipped(reason)),
        Err(End::Failed(e)) => return Err(e),
    }
    Ok(Outcome::Completed(Value::Object(outputs)))
}

/// `v` as JSON text, byte for byte what `serde_json::to_string` writes (`tests` compares the
/// two), by a writer of its own. `Value::to_string` goes through `Display`, whose formatter takes
/// every token on its own (a job of 50 bindings spent a tenth of its run writing its output that
/// way); `serde_json::to_string` goes through the generic serializer, a call or more per token,
/// each paying for fuel in the guest: writing a no-op job's `{"answer":42}` that way took ~2 %
/// of its run (`perf`, session 17). Only what needs more than copying is left to `serde_json`:
/// floats, and strings with a byte to escape.
pub fn json_text(v: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(itoa::Buffer::new().format(u));
            } else if let Some(i) = n.as_i64() {
                out.push_str(itoa::Buffer::new().format(i));
            } else {
                // A float: `serde_json` picks its shortest form (a `Value` holds finite ones).
                write_with_serde_json(out, n);
            }
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, k);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

/// `v` as `serde_json` writes it, straight onto the end of `out` (no buffer of its own, which in
/// the guest's arena would leave `out` unable to grow in place).
fn write_with_serde_json<T: serde::Serialize + ?Sized>(out: &mut String, v: &T) {
    // SAFETY: `serde_json` writes JSON text, which is UTF-8, and a number or a string cannot fail
    // to serialise into a `Vec` (it never writes half a character): `out` stays UTF-8.
    let bytes = unsafe { out.as_mut_vec() };
    let _ = serde_json::to_writer(bytes, v);
}

/// A string in quotes. JSON escapes the control characters, `"` and `\\` (and `serde_json`
/// nothing else): a string without them is copied as it is.
fn write_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        write_with_serde_json(out, s);
    }
}

/// A completed job's output as the JSON text the host records: serialised once, and replaced by
/// a summary (its size and its bindings' names) when larger than [`MAX_OUTPUT_BYTES`].
pub fn output_text(output: &Value) -> String {
    let text = json_text(output);
    if text.len() <= MAX_OUTPUT_BYTES {
        return text;
    }
    let names: Vec<Value> = match output {
        Value::Object(m) => m.keys().map(|k| Value::String(k.clone())).collect(),
        _ => Vec::new(),
    };
    json!({
        "truncated": true,
        "size": text.len(),
        "bindings": names,
    })
    .to_string()
}

/// Whether a step's result triggers `on_empty`.
fn is_empty(kind: &StepKind, value: &Value) -> bool {
    match kind {
        StepKind::Query { .. }
        | StepKind::Aggregate { .. }
        | StepKind::ForEach { .. }
        | StepKind::Compute { .. } => {
            matches!(value, Value::Array(a) if a.is_empty()) || value.is_null()
        }
        StepKind::Count { .. } | StepKind::Delete { .. } | StepKind::Update { .. } => {
            value.as_f64() == Some(0.0)
        }
        StepKind::Call { .. } => match value {
            Value::Array(a) => a.is_empty(),
            Value::Null => true,
            _ => false,
        },
        _ => false,
    }
}

/// How a block of steps ended early.
enum End {
    /// A skip policy or `action: skip(…)`: the job ends as skipped.
    Skipped(String),
    /// A failure no `on_fail` absorbed.
    Failed(JobError),
}

struct Scope<'p, 'h, H: Host + ?Sized> {
    /// The names in scope. A hash map: each step looks names up and binds one, and a B-tree's
    /// lookups were a string comparison per key of each node on the way (a fifth of the run of
    /// a job of 50 steps). Nothing lists them in order. A name the program gives (a step's
    /// `as:`, an action's parameter, a `for_each` item) is borrowed from it, as `input` and
    /// `page` are static: only the input's fields are owned. (A step's `as:` is still copied
    /// once, into the outputs.)
    vars: FxHashMap<Cow<'p, str>, Value>,
    /// The host, a type parameter rather than a `dyn Host`: in the guest a call through a
    /// `dyn` is an indirect call, and the first one to each function in a fresh instance has
    /// wasmtime fill that entry of the module's table, a call out to the host.
    host: &'h mut H,
    /// Set when a step inside a block (an action, a `for_each` body) ends the job as skipped:
    /// the failure it returns carries the reason up to the job's own steps, past any
    /// `on_fail` on the way.
    skipped: Option<String>,
    /// Above zero while evaluating the first argument of `default(…)`: a missing field or
    /// index reads as null instead of failing.
    lenient: u32,
    /// Above zero inside a block: only the job's own steps are marked for the host's traces.
    blocks: u32,
    /// The bindings (and `page` of a paginated call) that hold the text of a call's response
    /// that was not JSON: where such a value is first used as an object or a list, the error
    /// says so instead of only "is a string".
    texts: BTreeMap<String, TextResponse>,
    /// The last call's response, when it was text: bound by the call step's `as:`.
    last_text: Option<TextResponse>,
}

/// A call whose response body was text, not JSON (the host hands such a body over as a JSON
/// string): an HTML error or login page, a proxy's message, a CSV file.
#[derive(Debug, Clone)]
struct TextResponse {
    /// `Integration.operation`.
    call: String,
    status: u16,
    /// The text's length and its start, to tell it from another string bound by the same name.
    len: usize,
    start: String,
}

impl TextResponse {
    fn of(call: String, status: u16, text: &str) -> TextResponse {
        const SHOWN: usize = 60;
        let mut start: String = text.trim_start().chars().take(SHOWN).collect();
        start = start.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.trim_start().chars().count() > SHOWN {
            start.push('…');
        }
        TextResponse {
            call,
            status,
            len: text.len(),
            start,
        }
    }

    fn is_html(&self) -> bool {
        let lower = self.start.to_ascii_lowercase();
        lower.starts_with("<!doctype html")
            || lower.starts_with("<html")
            || lower.starts_with("<head")
    }

    /// "the response of `Shop.page` was not JSON: it answered 200 with text, `<!DOCTYPE …`".
    fn explain(&self) -> String {
        let what = if self.is_html() {
            "an HTML page"
        } else if self.start.starts_with('<') {
            "XML or HTML"
        } else {
            "text"
        };
        let advice = if self.is_html() {
            " (check the integration's `base_url`, the operation's path and its `auth`: \
             a wrong address or a login or error page answers with HTML)"
        } else {
            ""
        };
        format!(
            "the response of `{}` was not JSON: it answered {} with {what}, `{}`{advice}",
            self.call, self.status, self.start
        )
    }
}

impl<'p, H: Host + ?Sized> Scope<'p, '_, H> {
    // -----------------------------------------------------------------------------------------
    // Steps
    // -----------------------------------------------------------------------------------------

    /// Runs steps in order, binding each result to its `as:` name (and into `outputs`);
    /// `when:`, `on_empty` and `on_fail` decide what is skipped, absorbed or ends the block.
    fn steps(&mut self, steps: &'p [Step], outputs: &mut Map<String, Value>) -> Result<(), End> {
        for step in steps {
            let result = match self.holds(step) {
                Ok(true) => {
                    if self.blocks == 0 {
                        self.host.step(&step.name);
                    }
                    self.step(step)
                }
                Ok(false) => {
                    if let Some(name) = &step.bind {
                        outputs.insert(name.clone(), Value::Null);
                        self.vars.insert(Cow::Borrowed(name), Value::Null);
                    }
                    continue;
                }
                Err(f) => Err(f),
            };
            if let Some(reason) = self.skipped.take() {
                return Err(End::Skipped(reason));
            }
            let value = match result {
                Ok(value) => {
                    if is_empty(&step.kind, &value) {
                        match &step.on_empty {
                            Some(Policy::Skip(reason)) => {
                                let reason = self.text_of(reason);
                                self.host.log(
                                    LogLevel::Info,
                                    &format!("step `{}`: {reason}", step.name),
                                );
                                return Err(End::Skipped(reason));
                            }
                            Some(Policy::Abort(message)) => {
                                return Err(End::Failed(JobError {
                                    step: Some(step.name.clone()),
                                    message: self.text_of(message),
                                }))
                            }
                            Some(Policy::Continue) | None => {}
                        }
                    }
                    value
                }
                Err(Fail(message)) => {
                    let message = format!("step `{}` ({}): {message}", step.name, step.location);
                    match &step.on_fail {
                        Some(Policy::Continue) => {
                            self.host
                                .log(LogLevel::Warn, &format!("{message}; continuing"));
                            Value::Null
                        }
                        Some(Policy::Skip(reason)) => {
                            self.host.log(LogLevel::Warn, &message);
                            return Err(End::Skipped(self.text_of(reason)));
                        }
                        Some(Policy::Abort(text)) => {
                            self.host.log(LogLevel::Error, &message);
                            return Err(End::Failed(JobError {
                                step: Some(step.name.clone()),
                                message: self.text_of(text),
                            }));
                        }
                        None => {
                            return Err(End::Failed(JobError {
                                step: Some(step.name.clone()),
                                message,
                            }))
                        }
                    }
                }
            };
            let text = self.last_text.take();
            if let Some(name) = &step.bind {
                match text {
                    Some(t) if value.is_string() => {
                        self.texts.insert(name.clone(), t);
                    }
                    _ => {
                        self.texts.remove(name);
                    }
                }
                outputs.insert(name.clone(), value.clone());
                self.vars.insert(Cow::Borrowed(name), value);
            }
        }
        Ok(())
    }

    /// Why the value of `e` is text where it is used as an object or a list, when it is the
    /// text of a call's response that was not JSON.
    fn not_json(&self, e: &Expr) -> Option<String> {
        let Expr::Var(name) = e else { return None };
        let t = self.texts.get(name)?;
        match self.vars.get(name.as_str()) {
            Some(Value::String(text)) if text.len() == t.len => Some(t.explain()),
            _ => None,
        }
    }

    /// Whether a step's `when:` holds (a step without one always runs); a step that does not
    /// run is logged as skipped with the condition.
    fn holds(&mut self, step: &'p Step) -> R<bool> {
        let Some(when) = &step.when else {
            return Ok(true);
        };
        match self.eval(&when.expr)? {
            Value::Bool(true) => Ok(true),
            Value::Bool(false) => {
                self.host.log(
                    LogLevel::Info,
                    &format!(
                        "step `{}` skipped: `when: {}` does not hold",
                        step.name, when.text
                    ),
                );
                Ok(false)
            }
            other => fail(format!(
                "`when: {}` needs true or false, got {}",
                when.text,
                type_name(&other)
            )),
        }
    }

    /// A block of steps: a declared action (a scope of its own holding its parameters) or the
    /// `steps { }` of a `for_each` (the caller's scope, its own bindings dropped afterwards).
    fn block(
        &mut self,
        action: Option<&str>,
        bind: &'p [(String, Expr)],
        steps: &'p [Step],
    ) -> R<Value> {
        let mut args = Vec::with_capacity(bind.len());
        for (name, e) in bind {
            args.push((Cow::Borrowed(name.as_str()), self.eval(e)?));
        }
        let saved = action.map(|_| std::mem::take(&mut self.vars));
        self.vars.extend(args);
        let mut outputs = Map::new();
        self.blocks += 1;
        let ended = self.steps(steps, &mut outputs);
        self.blocks -= 1;
        match saved {
            Some(vars) => self.vars = vars,
            None => {
                for name in steps.iter().filter_map(|s| s.bind.as_ref()) {
                    self.vars.remove(name.as_str());
                }
            }
        }
        match ended {
            Ok(()) => Ok(Value::Object(outputs)),
            Err(End::Skipped(reason)) => {
                self.skipped = Some(reason.clone());
                fail(reason)
            }
            Err(End::Failed(e)) => match action {
                Some(name) => fail(format!("action `{name}`: {}", e.message)),
                None => fail(e.message),
            },
        }
    }

    fn step(&mut self, step: &'p Step) -> R<Value> {
        if let StepKind::ForEach {
            items,
            item,
            parallel,
            body,
        } = &step.kind
        {
            return self.for_each(items, item, *parallel, body, step);
        }
        self.kind(&step.kind, step.timeout_ms)
    }

    fn kind(&mut self, kind: &'p StepKind, timeout_ms: Option<u64>) -> R<Value> {
        match kind {
            StepKind::Query {
                entity,
                filter,
                order,
                limit,
                offset,
            } => {
                let filter = self.filter(filter.as_ref())?;
                let limit = self.limit(limit.as_ref())?;
                let offset = match offset {
                    Some(e) => as_u32(&self.eval(e)?, "offset")?,
                    None => 0,
                };
                let rows = self.host.select(Query {
                    entity: entity.clone(),
                    filter,
                    order: order_keys(order),
                    limit,
                    offset,
                })?;
                Ok(rows)
            }
            StepKind::Count { entity, filter } => {
                let filter = self.filter(filter.as_ref())?;
                Ok(json!(self.host.count(entity, filter)?))
            }
            StepKind::Aggregate {
                entity,
                columns,
                filter,
                group_by,
                order,
                limit,
            } => {
                let filter = self.filter(filter.as_ref())?;
                let limit = self.limit(limit.as_ref())?;
                let rows = self.host.aggregate(AggregateQuery {
                    entity: entity.clone(),
                    columns: columns.clone(),
                    filter,
                    group_by: group_by.clone(),
                    order: order_keys(order),
                    limit,
                })?;
                // Without groups, the one row itself.
                match rows {
                    Value::Array(mut rows) if group_by.is_empty() => {
                        Ok(rows.pop().unwrap_or_else(|| Value::Object(Map::new())))
                    }
                    rows => Ok(rows),
                }
            }
            StepKind::Delete { entity, filter } => {
                let filter = self.filter(filter.as_ref())?;
                Ok(json!(self.host.delete(entity, filter)?))
            }
            StepKind::Update {
                entity,
                set,
                filter,
            } => {
                let mut assigns = Vec::with_capacity(set.len());
                for a in set {
                    assigns.push(match a {
                        Assignment::Set { field, value } => {
                            Assign::Set(field.clone(), self.eval(value)?)
                        }
                        Assignment::Add { field, amount } => {
                            let v = self.eval(amount)?;
                            let n = v.as_f64().ok_or_else(|| {
                                Fail(format!(
                                    "`{field}` can only grow by a number, got {}",
                                    type_name(&v)
                                ))
                            })?;
                            Assign::Add(field.clone(), n)
                        }
                    });
                }
                let filter = self.filter(filter.as_ref())?;
                Ok(json!(self.host.update(entity, filter, assigns)?))
            }
            StepKind::Insert { entity, values } => {
                let row = self.row(values)?;
                Ok(json!(self.host.insert(entity, row)?))
            }
            StepKind::Upsert {
                entity,
                values,
                keys,
            } => {
                let row = self.row(values)?;
                Ok(json!(self.host.upsert(entity, row, keys)?))
            }
            StepKind::Maintain { op, entity } => {
                Ok(Value::String(self.host.maintain(*op, entity.as_deref())?))
            }
            StepKind::DeleteReport { id } => {
                let id = self.eval(id)?;
                let id = report_id(&id)?;
                Ok(Value::Bool(self.host.delete_report(&id)?))
            }
            StepKind::Call {
                integration,
                operation,
                args,
                paginate,
            } => {
                let request = self.call_request(integration, operation, args, timeout_ms)?;
                match paginate {
                    None => {
                        let response = self.host.call(request)?;
                        if let Value::String(text) = &response.body {
                            let t = TextResponse::of(
                                format!("{integration}.{operation}"),
                                response.status,
                                text,
                            );
                            if t.is_html() {
                                self.host.log(LogLevel::Warn, &t.explain());
                            }
                            self.last_text = Some(t);
                        }
                        Ok(response.body)
                    }
                    Some(p) => self.pages(request, p),
                }
            }
            StepKind::Report {
                template,
                data,
                format,
            } => {
                let data = self.eval(data)?;
                let r = self.host.render_report(template, data, *format)?;
                Ok(json!({
                    "id": r.id,
                    "format": format_name(r.format),
                    "size": r.size,
                    "name": r.name,
                }))
            }
            StepKind::Email {
                to,
                subject,
                template,
                data,
                attachments,
            } => {
                let to = match self.eval(to)? {
                    Value::String(s) => vec![s],
                    Value::Array(items) => items
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s),
                            other => fail(format!(
                                "a recipient must be a string, got {}",
                                type_name(&other)
                            )),
                        })
                        .collect::<R<Vec<_>>>()?,
                    other => {
                        return fail(format!(
                            "recipients must be a string or a list of strings, got {}",
                            type_name(&other)
                        ))
                    }
                };
                let subject = display(&self.eval(subject)?);
                let data = match data {
                    Some(e) => self.eval(e)?,
                    None => json!({}),
                };
                let mut ids = Vec::new();
                for a in attachments {
                    match self.eval(a)? {
                        Value::Array(items) => {
                            for v in &items {
                                ids.push(report_id(v)?);
                            }
                        }
                        Value::Null => {}
                        v => ids.push(report_id(&v)?),
                    }
                }
                let d = self.host.send_email(EmailMessage {
                    to,
                    subject,
                    template: template.clone(),
                    data,
                    attachments: ids,
                })?;
                Ok(delivery(d))
            }
            StepKind::Slack {
                channel,
                template,
                data,
            } => {
                let channel = display(&self.eval(channel)?);
                let data = match data {
                    Some(e) => self.eval(e)?,
                    None => json!({}),
                };
                Ok(delivery(self.host.post_slack(
                    &channel,
                    template.as_deref(),
                    data,
                )?))
            }
            StepKind::Emit { event, payload } => {
                let payload = self.eval(payload)?;
                self.host.emit_event(event, payload)?;
                Ok(Value::Null)
            }
            StepKind::SetState { values } => {
                for (k, e) in values {
                    let v = self.eval(e)?;
                    self.host.state_set(k, v)?;
                }
                Ok(Value::Null)
            }
            StepKind::Compute { value } => self.eval(value),
            StepKind::Log { level, message } => {
                let text = display(&self.eval(message)?);
                self.host.log(*level, &text);
                Ok(Value::Null)
            }
            StepKind::ForEach { .. } => fail("a `for_each` cannot be nested in a `for_each`"),
            StepKind::Block {
                action,
                bind,
                steps,
            } => self.block(action.as_deref(), bind, steps),
            StepKind::Fail { message } => fail(display(&self.eval(message)?)),
            StepKind::Skip { reason } => {
                let reason = display(&self.eval(reason)?);
                self.host.log(LogLevel::Info, &format!("skipped: {reason}"));
                self.skipped = Some(reason.clone());
                fail(reason)
            }
        }
    }

    fn call_request(
        &mut self,
        integration: &str,
        operation: &str,
        args: &'p [(String, Expr)],
        timeout_ms: Option<u64>,
    ) -> R<CallRequest> {
        let mut object = Map::new();
        for (k, e) in args {
            object.insert(k.clone(), self.eval(e)?);
        }
        Ok(CallRequest {
            integration: integration.to_string(),
            operation: operation.to_string(),
            args: Value::Object(object),
            timeout_ms: timeout_ms.map(|t| t.min(u64::from(u32::MAX)) as u32),
        })
    }

    fn for_each(
        &mut self,
        items: &'p Expr,
        item: &'p str,
        parallel: u32,
        body: &'p StepKind,
        step: &Step,
    ) -> R<Value> {
        let items = self.items_of(items, |got| format!("`for_each` needs a list, got {got}"))?;
        if items.len() > MAX_ITEMS {
            return fail(format!(
                "`for_each` over {} items (the limit is {MAX_ITEMS})",
                items.len()
            ));
        }
        let saved = self.vars.remove(item);
        let result = self.for_each_items(&items, item, parallel, body, step);
        match saved {
            Some(v) => {
                self.vars.insert(Cow::Borrowed(item), v);
            }
            None => {
                self.vars.remove(item);
            }
        }
        result
    }

    /// Runs `body` once per item (or as one batched call when `parallel > 1` and the body is a
    /// call); `on_fail: continue` records a failed item and goes on.
    fn for_each_items(
        &mut self,
        items: &[Value],
        item: &'p str,
        parallel: u32,
        body: &'p StepKind,
        step: &Step,
    ) -> R<Value> {
        let continue_on_fail = matches!(step.on_fail, Some(Policy::Continue));
        let mut results = Vec::with_capacity(items.len());
        let record = |item: &Value, r: R<Value>| match r {
            Ok(value) => json!({"item": item, "ok": true, "value": value, "error": null}),
            Err(Fail(e)) => json!({"item": item, "ok": false, "value": null, "error": e}),
        };
        if let (
            true,
            StepKind::Call {
                integration,
                operation,
                args,
                paginate: None,
            },
        ) = (parallel > 1, body)
        {
            // One batched host call: the host runs up to `parallel` requests at a time.
            let mut requests = Vec::with_capacity(items.len());
            for v in items {
                self.vars.insert(Cow::Borrowed(item), v.clone());
                requests.push(self.call_request(integration, operation, args, step.timeout_ms)?);
            }
            let responses = self.host.call_many(requests, parallel);
            if responses.len() != items.len() {
                return fail(format!(
                    "the host answered {} of {} calls",
                    responses.len(),
                    items.len()
                ));
            }
            for (v, r) in items.iter().zip(responses) {
                let r = r.map(|resp| resp.body).map_err(Fail::from);
                if let (Err(Fail(e)), false) = (&r, continue_on_fail) {
                    return fail(format!("item {}: {e}", display(v)));
                }
                results.push(record(v, r));
            }
            return Ok(Value::Array(results));
        }
        for (i, v) in items.iter().enumerate() {
            self.vars.insert(Cow::Borrowed(item), v.clone());
            let r = self.kind(body, step.timeout_ms);
            if let Err(Fail(e)) = &r {
                if self.skipped.is_some() {
                    return fail(e.clone());
                }
                if !continue_on_fail {
                    return fail(format!("item {i}: {e}"));
                }
                self.host.log(
                    LogLevel::Warn,
                    &format!("step `{}` item {i}: {e}", step.name),
                );
            }
            results.push(record(v, r));
        }
        Ok(Value::Array(results))
    }

    /// The items of every page of a paginated call: the call again with `param` set to `next`
    /// while `next` is not null or empty, at most `max_pages` times (a warning says so when
    /// more remained).
    fn pages(&mut self, mut request: CallRequest, p: &'p codeai_ir::Paginate) -> R<Value> {
        let saved = self.vars.remove("page");
        let result = (|| {
            let mut all = Vec::new();
            for fetched in 1.. {
                let response = self.host.call(request.clone())?;
                match &response.body {
                    Value::String(text) => {
                        let t = TextResponse::of(
                            format!("{}.{}", request.integration, request.operation),
                            response.status,
                            text,
                        );
                        self.texts.insert("page".into(), t);
                    }
                    _ => {
                        self.texts.remove("page");
                    }
                }
                self.vars.insert("page".into(), response.body);
                let items = match &p.items {
                    Some(e) => self.eval(e)?,
                    None => self.vars["page"].clone(),
                };
                match items {
                    Value::Array(items) => all.extend(items),
                    Value::Null => {}
                    other => {
                        let why = match &p.items {
                            Some(e) => self.not_json(e),
                            None => self.not_json(&Expr::Var("page".into())),
                        };
                        let why = why.map_or(String::new(), |w| format!(": {w}"));
                        return fail(format!(
                            "page {fetched}: `paginate` items must be a list, got {}{why}",
                            type_name(&other)
                        ));
                    }
                }
                if all.len() > MAX_ITEMS {
                    return fail(format!(
                        "`paginate` gathered more than {MAX_ITEMS} items by page {fetched}"
                    ));
                }
                let next = self.eval(&p.next)?;
                if next.is_null() || next == json!("") {
                    break;
                }
                if fetched >= p.max_pages {
                    self.host.log(
                        LogLevel::Warn,
                        &format!(
                            "`paginate` stopped after max_pages ({}) pages; more remain",
                            p.max_pages
                        ),
                    );
                    break;
                }
                if let Value::Object(args) = &mut request.args {
                    args.insert(p.param.clone(), next);
                }
            }
            Ok(Value::Array(all))
        })();
        self.vars.remove("page");
        if let Some(v) = saved {
            self.vars.insert("page".into(), v);
        }
        result
    }

    /// A query's `limit`, evaluated.
    /// A policy's reason or message as text; one that cannot be computed says why.
    fn text_of(&mut self, e: &'p Expr) -> String {
        match self.eval(e) {
            Ok(v) => display(&v),
            Err(Fail(why)) => format!("(the message could not be written: {why})"),
        }
    }

    fn limit(&mut self, limit: Option<&'p Expr>) -> R<Option<u32>> {
        match limit {
            Some(e) => Ok(Some(as_u32(&self.eval(e)?, "limit")?)),
            None => Ok(None),
        }
    }

    /// The one-row JSON array an `insert` or `upsert` writes.
    fn row(&mut self, values: &'p [(String, Expr)]) -> R<Value> {
        let mut row = Map::new();
        for (k, e) in values {
            row.insert(k.clone(), self.eval(e)?);
        }
        Ok(Value::Array(vec![Value::Object(row)]))
    }

    /// Evaluates every value in a filter and flattens the tree for the host.
    fn filter(&mut self, filter: Option<&'p IrFilter>) -> R<Option<Filter>> {
        let Some(filter) = filter else {
            return Ok(None);
        };
        let mut nodes = Vec::new();
        let root = self.flatten(filter, &mut nodes, 0)?;
        Ok(Some(Filter { nodes, root }))
    }

    fn flatten(&mut self, f: &'p IrFilter, nodes: &mut Vec<FilterNode>, depth: usize) -> R<u32> {
        if depth > 64 {
            return fail("filter nested too deeply");
        }
        let node = match f {
            IrFilter::All(children) | IrFilter::Any(children) => {
                let mut ids = Vec::with_capacity(children.len());
                for c in children {
                    ids.push(self.flatten(c, nodes, depth + 1)?);
                }
                if matches!(f, IrFilter::All(_)) {
                    FilterNode::All(ids)
                } else {
                    FilterNode::Any(ids)
                }
            }
            IrFilter::Not(inner) => FilterNode::Not(self.flatten(inner, nodes, depth + 1)?),
            IrFilter::Compare { field, op, value } => {
                let mut value = self.eval(value)?;
                let mut op = *op;
                // `x = null` from a binding means "is null".
                if value.is_null() {
                    op = match op {
                        CompareOp::Eq => CompareOp::IsNull,
                        CompareOp::Ne => CompareOp::IsNotNull,
                        other => other,
                    };
                }
                if op == CompareOp::In && !value.is_array() {
                    value = Value::Array(vec![value]);
                }
                FilterNode::Compare {
                    field: field.clone(),
                    op,
                    value,
                }
            }
            IrFilter::Terms { left, op, right } => {
                let mut terms = Vec::new();
                let left = self.term(left, &mut terms, 0)?;
                let right = self.term(right, &mut terms, 0)?;
                FilterNode::Terms {
                    terms,
                    left,
                    op: *op,
                    right,
                }
            }
        };
        nodes.push(node);
        Ok((nodes.len() - 1) as u32)
    }

    /// Flattens one side of a term comparison, operands first; values are evaluated here.
    fn term(&mut self, t: &'p IrTerm, terms: &mut Vec<Term>, depth: usize) -> R<u32> {
        if depth > 64 {
            return fail("filter nested too deeply");
        }
        let term = match t {
            IrTerm::Column(c) => Term::Column(c.clone()),
            IrTerm::Value(e) => Term::Value(self.eval(e)?),
            IrTerm::Arith(op, a, b) => {
                let a = self.term(a, terms, depth + 1)?;
                let b = self.term(b, terms, depth + 1)?;
                Term::Arith(*op, a, b)
            }
            IrTerm::Func(f, a) => Term::Func(*f, self.term(a, terms, depth + 1)?),
        };
        terms.push(term);
        Ok((terms.len() - 1) as u32)
    }

    // -----------------------------------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------------------------------

    fn eval(&mut self, e: &'p Expr) -> R<Value> {
        Ok(match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(n) => json!(n),
            Expr::Float(f) => number(*f),
            Expr::Str(s) => Value::String(s.clone()),
            Expr::Duration(ms) => json!(ms),
            Expr::Interpolated(parts) => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => out.push_str(&display(&self.eval(e)?)),
                    }
                }
                Value::String(out)
            }
            Expr::Var(name) => match self.vars.get(name.as_str()) {
                Some(v) => v.clone(),
                None => return fail(format!("`{name}` has no value")),
            },
            Expr::Field(base, field) => {
                let value = self.eval(base)?;
                self.field(base, value, field, self.lenient > 0)?
            }
            Expr::OptField(base, field) => {
                let value = self.eval(base)?;
                self.field(base, value, field, true)?
            }
            Expr::Index(base, index) => {
                let value = self.eval(base)?;
                let index = self.eval(index)?;
                let lenient = self.lenient > 0;
                match (value, index) {
                    (Value::Array(mut items), Value::Number(n)) => {
                        let len = items.len();
                        let i = n.as_i64().unwrap_or(i64::MIN);
                        let at = if i < 0 { len as i64 + i } else { i };
                        match usize::try_from(at).ok().filter(|at| *at < len) {
                            Some(at) => items.swap_remove(at),
                            None if lenient => Value::Null,
                            None => {
                                return fail(format!(
                                    "`{}[{}]` is out of range: the list has {len} item{}",
                                    path(base),
                                    display(&Value::Number(n)),
                                    if len == 1 { "" } else { "s" }
                                ))
                            }
                        }
                    }
                    (Value::Object(mut m), Value::String(k)) => match m.remove(&k) {
                        Some(v) => v,
                        None if lenient => Value::Null,
                        None => {
                            return fail(missing(&format!("{}[\"{k}\"]", path(base)), base, &m))
                        }
                    },
                    (Value::Null, _) if lenient => Value::Null,
                    (b, i) => {
                        let why = self
                            .not_json(base)
                            .map_or(String::new(), |w| format!(": {w}"));
                        return fail(format!(
                            "cannot index `{}` ({}) with {}{why}",
                            path(base),
                            type_name(&b),
                            type_name(&i)
                        ));
                    }
                }
            }
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Value::Array(out)
            }
            Expr::Object(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), self.eval(v)?);
                }
                Value::Object(out)
            }
            Expr::Unary(op, inner) => {
                let v = self.eval(inner)?;
                match op {
                    UnaryOp::Not => Value::Bool(!truthy(&v)),
                    UnaryOp::Neg => match v.as_f64() {
                        Some(_) if v.as_i64().and_then(i64::checked_neg).is_some() => {
                            json!(-v.as_i64().unwrap_or(0))
                        }
                        Some(n) => number(-n),
                        None => return fail(format!("cannot negate {}", type_name(&v))),
                    },
                }
            }
            Expr::Binary(op, a, b) => self.binary(*op, a, b)?,
            Expr::Cond(c, a, b) => {
                if truthy(&self.eval(c)?) {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Expr::Call(Builtin::Default, args) => {
                let (Some(value), Some(fallback)) = (args.first(), args.get(1)) else {
                    return fail("default() takes 2 arguments");
                };
                self.lenient += 1;
                let v = self.eval(value);
                self.lenient -= 1;
                match v? {
                    Value::Null => self.eval(fallback)?,
                    v => v,
                }
            }
            Expr::Call(each @ (Builtin::Filter | Builtin::Find), args) => self.each(*each, args)?,
            Expr::Call(f, args) => self.builtin(*f, args).map_err(|Fail(e)| {
                match args.first().and_then(|a| self.not_json(a)) {
                    Some(why) => Fail(format!("{e}: {why}")),
                    None => Fail(e),
                }
            })?,
            Expr::Lambda(item, _) => {
                return fail(format!(
                    "`{item} -> …` is evaluated only by filter() and find(), for each item"
                ))
            }
        })
    }

    /// The items of the list `e` is (none when it is null). Anything else fails with `needs`
    /// of its kind, and with why when it is the text of a response that was not JSON.
    fn items_of(&mut self, e: &'p Expr, needs: impl FnOnce(&str) -> String) -> R<Vec<Value>> {
        match self.eval(e)? {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => {
                let why = self.not_json(e).map_or(String::new(), |w| format!(": {w}"));
                fail(format!("{}{why}", needs(type_name(&other))))
            }
        }
    }

    /// `filter(list, item -> condition)`: the items for which the condition holds, in order;
    /// `find(…)`: the first of them, or null. The condition must be true or false for every
    /// item it is asked about (as a `when:` must); a null list has no items.
    fn each(&mut self, f: Builtin, args: &'p [Expr]) -> R<Value> {
        let name = f.name();
        let (Some(list), Some(Expr::Lambda(item, condition))) = (args.first(), args.get(1)) else {
            return fail(format!("{name}() takes a list and a condition `item -> …`"));
        };
        let items = self.items_of(list, |got| {
            format!("{name}() needs a list, but `{}` is {got}", path(list))
        })?;
        let saved = self.vars.remove(item.as_str());
        let result = (|| {
            let mut kept = Vec::new();
            for (i, v) in items.into_iter().enumerate() {
                self.vars.insert(Cow::Borrowed(item), v);
                let holds = match self.eval(condition) {
                    Ok(Value::Bool(b)) => b,
                    Ok(other) => {
                        return fail(format!(
                            "{name}(…, {item} -> …) needs true or false for each item, got {} \
                             for item {i}",
                            type_name(&other)
                        ))
                    }
                    Err(Fail(e)) => return fail(format!("{name}(…, {item} -> …), item {i}: {e}")),
                };
                if holds {
                    let v = self.vars.remove(item.as_str()).unwrap_or(Value::Null);
                    if f == Builtin::Find {
                        return Ok(v);
                    }
                    kept.push(v);
                }
            }
            Ok(match f {
                Builtin::Find => Value::Null,
                _ => Value::Array(kept),
            })
        })();
        self.vars.remove(item.as_str());
        if let Some(v) = saved {
            self.vars.insert(Cow::Borrowed(item), v);
        }
        result
    }

    /// `value.field`; a missing field (or a null `value`) fails unless `optional`.
    fn field(&mut self, base: &Expr, value: Value, field: &str, optional: bool) -> R<Value> {
        Ok(match value {
            Value::Object(mut m) => match m.remove(field) {
                Some(v) => v,
                None if optional => Value::Null,
                None => return fail(missing(&format!("{}.{field}", path(base)), base, &m)),
            },
            Value::Null if optional => Value::Null,
            Value::Array(items) if field == "length" => json!(items.len()),
            other => {
                let why = match (self.not_json(base), &other) {
                    (Some(why), _) => why,
                    // A step skipped by `when:`, a failed one under `on_fail: continue`, a
                    // `find` that found nothing: say how to read such a value.
                    (None, Value::Null) => format!(
                        "`{0}` is null (if it may be, read `{0}?.{field}`, which is null then, \
                         or `default({0}.{field}, …)`)",
                        path(base)
                    ),
                    (None, _) => format!("`{}` is {}", path(base), type_name(&other)),
                };
                return fail(format!("cannot read `{}.{field}`: {why}", path(base)));
            }
        })
    }

    fn binary(&mut self, op: BinaryOp, a: &'p Expr, b: &'p Expr) -> R<Value> {
        // Short-circuiting operators evaluate their right side only when needed.
        match op {
            BinaryOp::And => {
                return Ok(Value::Bool(
                    truthy(&self.eval(a)?) && truthy(&self.eval(b)?),
                ))
            }
            BinaryOp::Or => {
                return Ok(Value::Bool(
                    truthy(&self.eval(a)?) || truthy(&self.eval(b)?),
                ))
            }
            BinaryOp::Coalesce => {
                let v = self.eval(a)?;
                return if v.is_null() { self.eval(b) } else { Ok(v) };
            }
            _ => {}
        }
        let x = self.eval(a)?;
        let y = self.eval(b)?;
        arith_or_compare(op, &x, &y).map_err(|Fail(message)| {
            // A null read from the data: say which, and how to give it a value.
            let null = [(a, &x), (b, &y)]
                .into_iter()
                .find_map(|(e, v)| v.is_null().then(|| path_text(e)).flatten());
            Fail(match null {
                Some(path) => format!(
                    "{message}: `{path}` is null (give it a value with `{path} ?? 0`, or test \
                     `{path} != null` first)"
                ),
                None => message,
            })
        })
    }

    fn builtin(&mut self, f: Builtin, args: &'p [Expr]) -> R<Value> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a)?);
        }
        let arg = |i: usize| vals.get(i).cloned().unwrap_or(Value::Null);
        Ok(match f {
            Builtin::Now => Value::String(time::format(self.host.now())),
            Builtin::Today => self.period(PeriodUnit::Day, 0),
            Builtin::Yesterday => self.period(PeriodUnit::Day, -1),
            Builtin::Tomorrow => self.period(PeriodUnit::Day, 1),
            Builtin::ThisWeek => self.period(PeriodUnit::Week, 0),
            Builtin::LastWeek => self.period(PeriodUnit::Week, -1),
            Builtin::ThisMonth => self.period(PeriodUnit::Month, 0),
            Builtin::LastMonth => self.period(PeriodUnit::Month, -1),
            Builtin::ThisYear => self.period(PeriodUnit::Year, 0),
            Builtin::LastYear => self.period(PeriodUnit::Year, -1),
            Builtin::DaysAgo | Builtin::HoursAgo | Builtin::MinutesAgo => {
                let n = arg(0)
                    .as_f64()
                    .ok_or_else(|| Fail(format!("{}() needs a number", f.name())))?;
                let unit = match f {
                    Builtin::DaysAgo => 86_400_000.0,
                    Builtin::HoursAgo => 3_600_000.0,
                    _ => 60_000.0,
                };
                let now = self.host.now();
                Value::String(time::format(Instant {
                    unix_ms: now.unix_ms.saturating_sub((n * unit) as i64),
                    ..now
                }))
            }
            // A day (`2026-02-01`, a `date` field) formats as that day.
            Builtin::FormatDate if arg(0).as_str().is_some_and(|s| s.len() == 10) => {
                let v = arg(0);
                let text = v.as_str().unwrap_or_default();
                let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| Fail(format!("format_date() needs a timestamp, got {text}")))?;
                let pattern = match arg(1) {
                    Value::String(p) => p,
                    _ => "%Y-%m-%d".to_string(),
                };
                let mut out = String::new();
                use std::fmt::Write as _;
                write!(
                    out,
                    "{}",
                    day.and_time(chrono::NaiveTime::MIN).format(&pattern)
                )
                .map_err(|_| Fail(format!("invalid date pattern `{pattern}`")))?;
                Value::String(out)
            }
            Builtin::FormatDate => {
                let v = arg(0);
                let at = instant_of(&v).ok_or_else(|| {
                    Fail(format!(
                        "format_date() needs a timestamp, got {}",
                        display(&v)
                    ))
                })?;
                let pattern = match arg(1) {
                    Value::String(p) => p,
                    Value::Null => "%Y-%m-%d".to_string(),
                    other => {
                        return fail(format!(
                            "format_date() pattern must be a string, got {}",
                            type_name(&other)
                        ))
                    }
                };
                // In the job's timezone, whatever offset the value was written with (a
                // database gives UTC).
                let at = self.host.local(at.unix_ms);
                Value::String(
                    time::format_with(at, &pattern)
                        .ok_or_else(|| Fail(format!("invalid date pattern `{pattern}`")))?,
                )
            }
            Builtin::LastSyncTimestamp => self
                .host
                .state_get("last_sync_timestamp")
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| Value::String("1970-01-01T00:00:00Z".into())),
            Builtin::LastRunAt => self.host.state_get("last_run_at").unwrap_or(Value::Null),
            Builtin::StateGet => {
                let key = display(&arg(0));
                self.host.state_get(&key).unwrap_or_else(|| arg(1))
            }
            Builtin::Count | Builtin::Len => match arg(0) {
                Value::Array(a) => json!(a.len()),
                Value::Object(o) => json!(o.len()),
                Value::String(s) => json!(s.chars().count()),
                Value::Null => json!(0),
                other => {
                    return fail(format!(
                        "{}() needs a list, got {}",
                        f.name(),
                        type_name(&other)
                    ))
                }
            },
            Builtin::Sum | Builtin::Avg | Builtin::Min | Builtin::Max => {
                let nums = numbers(&arg(0), vals.get(1), f.name())?;
                match f {
                    Builtin::Sum => number(nums.iter().sum()),
                    Builtin::Avg if nums.is_empty() => json!(0),
                    Builtin::Avg => number(nums.iter().sum::<f64>() / nums.len() as f64),
                    Builtin::Min => nums
                        .iter()
                        .copied()
                        .reduce(f64::min)
                        .map(number)
                        .unwrap_or(Value::Null),
                    _ => nums
                        .iter()
                        .copied()
                        .reduce(f64::max)
                        .map(number)
                        .unwrap_or(Value::Null),
                }
            }
            Builtin::Pluck => {
                let field = display(&arg(1));
                match arg(0) {
                    Value::Array(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        for (i, v) in items.into_iter().enumerate() {
                            out.push(match v {
                                Value::Object(m) => field_of(&m, &field, i, "pluck")?.clone(),
                                _ => Value::Null,
                            });
                        }
                        Value::Array(out)
                    }
                    Value::Null => Value::Array(Vec::new()),
                    other => {
                        return fail(format!("pluck() needs a list, got {}", type_name(&other)))
                    }
                }
            }
            Builtin::First | Builtin::Last => match arg(0) {
                Value::Array(mut items) => {
                    if f == Builtin::First {
                        items.into_iter().next().unwrap_or(Value::Null)
                    } else {
                        items.pop().unwrap_or(Value::Null)
                    }
                }
                Value::Null => Value::Null,
                other => {
                    return fail(format!(
                        "{}() needs a list, got {}",
                        f.name(),
                        type_name(&other)
                    ))
                }
            },
            Builtin::Join => {
                let sep = match arg(1) {
                    Value::Null => ", ".to_string(),
                    v => display(&v),
                };
                match arg(0) {
                    Value::Array(items) => {
                        Value::String(items.iter().map(display).collect::<Vec<_>>().join(&sep))
                    }
                    Value::Null => Value::String(String::new()),
                    other => {
                        return fail(format!("join() needs a list, got {}", type_name(&other)))
                    }
                }
            }
            Builtin::Contains => match (arg(0), arg(1)) {
                (Value::Array(items), needle) => Value::Bool(items.iter().any(|i| {
                    arith_or_compare(BinaryOp::Eq, i, &needle).ok() == Some(Value::Bool(true))
                })),
                (Value::String(s), needle) => Value::Bool(s.contains(&display(&needle))),
                (Value::Object(m), needle) => Value::Bool(m.contains_key(&display(&needle))),
                (Value::Null, _) => Value::Bool(false),
                (other, _) => {
                    return fail(format!(
                        "contains() needs a list or a string, got {}",
                        type_name(&other)
                    ))
                }
            },
            Builtin::Round => {
                let x = num_arg(&arg(0), "round")?;
                let digits = arg(1).as_i64().unwrap_or(0).clamp(0, 12) as i32;
                let factor = 10f64.powi(digits);
                number((x * factor).round() / factor)
            }
            Builtin::Format => {
                // A number, or text that holds one (PostgreSQL's `numeric` comes as text).
                let x = match arg(0) {
                    Value::String(t) => t.trim().parse::<f64>().map_err(|_| {
                        Fail(format!("format() needs a number, got the text `{t}`"))
                    })?,
                    v => num_arg(&v, "format")?,
                };
                let pattern = match arg(1) {
                    Value::String(p) => p,
                    other => {
                        return fail(format!(
                            "format() pattern must be a string, got {}",
                            type_name(&other)
                        ))
                    }
                };
                Value::String(codeai_ir::number::format(x, &pattern).map_err(Fail)?)
            }
            Builtin::Abs => number(num_arg(&arg(0), "abs")?.abs()),
            Builtin::Floor => number(num_arg(&arg(0), "floor")?.floor()),
            Builtin::Ceil => number(num_arg(&arg(0), "ceil")?.ceil()),
            Builtin::Lower => Value::String(display(&arg(0)).to_lowercase()),
            Builtin::Upper => Value::String(display(&arg(0)).to_uppercase()),
            Builtin::Trim => Value::String(display(&arg(0)).trim().to_string()),
            // Lists join into one list; anything else joins as text.
            Builtin::Concat if vals.iter().all(Value::is_array) => Value::Array(
                vals.into_iter()
                    .flat_map(|v| match v {
                        Value::Array(items) => items,
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            Builtin::Concat => Value::String(vals.iter().map(display).collect()),
            Builtin::Coalesce => vals
                .into_iter()
                .find(|v| !v.is_null())
                .unwrap_or(Value::Null),
            Builtin::ToString => Value::String(display(&arg(0))),
            Builtin::ToNumber => match arg(0) {
                Value::Number(n) => Value::Number(n),
                Value::String(s) => match s.trim().parse::<f64>() {
                    Ok(n) => number(n),
                    Err(_) => return fail(format!("`{s}` is not a number")),
                },
                Value::Bool(b) => json!(u8::from(b)),
                other => return fail(format!("number() cannot convert {}", type_name(&other))),
            },
            // Evaluated in `each`, item by item.
            Builtin::Filter | Builtin::Find => {
                return fail(format!("{}() takes a condition `item -> …`", f.name()))
            }
            // Evaluated lazily in `eval`; reached only with the arguments already evaluated.
            Builtin::Default => vals
                .into_iter()
                .find(|v| !v.is_null())
                .unwrap_or(Value::Null),
        })
    }

    fn period(&mut self, unit: PeriodUnit, offset: i32) -> Value {
        let p = self.host.period(unit, offset);
        json!({
            "start": time::format(p.start),
            "end": time::format(p.end),
            "label": p.label,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Turns the ISO dates (`2026-01-12`) a value of type `ty` holds into the start of that day in
/// the job's timezone, as `yesterday().start` is; `today` is the job's current day, asked once.
fn iso_dates<H: Host + ?Sized>(
    host: &mut H,
    ty: &codeai_ir::input::InputType,
    v: &mut Value,
    today: &mut Option<chrono::NaiveDate>,
) {
    use codeai_ir::input::{parse_date, InputType};
    match (ty, v) {
        (InputType::Date, Value::String(s)) => {
            let Some((y, m, d)) = parse_date(s) else {
                return;
            };
            let Some(date) = chrono::NaiveDate::from_ymd_opt(y, m, d) else {
                return;
            };
            let today = *today.get_or_insert_with(|| {
                let label = host.period(PeriodUnit::Day, 0).label;
                parse_date(&label)
                    .and_then(|(y, m, d)| chrono::NaiveDate::from_ymd_opt(y, m, d))
                    .unwrap_or(date)
            });
            let days = date.signed_duration_since(today).num_days();
            if let Ok(days) = i32::try_from(days) {
                *s = time::format(host.period(PeriodUnit::Day, days).start);
            }
        }
        (InputType::List(t), Value::Array(items)) => {
            for item in items {
                iso_dates(host, t, item, today);
            }
        }
        (InputType::Optional(t), v) => iso_dates(host, t, v, today),
        _ => {}
    }
}

/// How an expression reads in an error message: `resp.data[0].sku`.
fn path(e: &Expr) -> String {
    match e {
        Expr::Var(name) => name.clone(),
        Expr::Field(base, f) => format!("{}.{f}", path(base)),
        Expr::OptField(base, f) => format!("{}?.{f}", path(base)),
        Expr::Index(base, i) => match &**i {
            Expr::Int(n) => format!("{}[{n}]", path(base)),
            Expr::Str(k) => format!("{}[\"{k}\"]", path(base)),
            _ => format!("{}[…]", path(base)),
        },
        Expr::Call(f, _) => format!("{}(…)", f.name()),
        _ => "(value)".to_string(),
    }
}

/// "`resp.data` is missing: `resp` has the keys `items`, `total`".
fn missing(what: &str, base: &Expr, object: &Map<String, Value>) -> String {
    const SHOWN: usize = 20;
    if object.is_empty() {
        return format!("`{what}` is missing: `{}` is an empty object", path(base));
    }
    let mut keys: Vec<String> = object
        .keys()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect();
    if object.len() > SHOWN {
        keys.push(format!("… ({} in all)", object.len()));
    }
    format!(
        "`{what}` is missing: `{}` has the keys {}",
        path(base),
        keys.join(", ")
    )
}

/// A JSON number, integral when the value is (so `3.0` prints as `3`).
fn number(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn num_arg(v: &Value, f: &str) -> R<f64> {
    v.as_f64()
        .ok_or_else(|| Fail(format!("{f}() needs a number, got {}", type_name(v))))
}

fn as_u32(v: &Value, what: &str) -> R<u32> {
    v.as_f64()
        .filter(|n| *n >= 0.0)
        .map(|n| n.min(f64::from(u32::MAX)) as u32)
        .ok_or_else(|| {
            Fail(format!(
                "{what} must be a non-negative number, got {}",
                display(v)
            ))
        })
}

/// The numbers of a list, or of one field of a list of objects.
/// Item `i`'s `name` for `f(list, "name")`: an item without the field is the step's error
/// (strict data), naming the fields it has; a field holding null is null.
fn field_of<'a>(m: &'a Map<String, Value>, name: &str, i: usize, f: &str) -> R<&'a Value> {
    m.get(name).ok_or_else(|| {
        let has: Vec<String> = m.keys().take(12).map(|k| format!("`{k}`")).collect();
        let has = match has.is_empty() {
            true => "no fields".to_string(),
            false => has.join(", "),
        };
        Fail(format!(
            "{f}(list, \"{name}\"): item {i} has no `{name}` (it has {has})"
        ))
    })
}

fn numbers(list: &Value, field: Option<&Value>, f: &str) -> R<Vec<f64>> {
    let items = match list {
        Value::Array(items) => items,
        Value::Null => return Ok(Vec::new()),
        other => return fail(format!("{f}() needs a list, got {}", type_name(other))),
    };
    let field = field.map(display);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v = match (&field, item) {
            (Some(name), Value::Object(m)) => field_of(m, name, i, f)?.clone(),
            (Some(name), other) => {
                return fail(format!(
                    "{f}(list, \"{name}\") needs objects, got {}",
                    type_name(other)
                ))
            }
            (None, v) => v.clone(),
        };
        match &v {
            Value::Null => {}
            Value::Number(n) => out.push(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => match s.parse::<f64>() {
                Ok(n) => out.push(n),
                Err(_) => return fail(format!("{f}() found a non-number `{s}`")),
            },
            other => return fail(format!("{f}() found {}", type_name(other))),
        }
    }
    Ok(out)
}

fn report_id(v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Object(m) => match m.get("id") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => fail("a report must have an `id`"),
        },
        other => fail(format!(
            "expected a report or a report id, got {}",
            type_name(other)
        )),
    }
}

fn delivery(d: Delivery) -> Value {
    match d {
        Delivery::Sent(id) => json!({"status": "sent", "id": id}),
        Delivery::Held(id) => json!({"status": "held", "id": id}),
    }
}

fn format_name(f: codeai_ir::ReportFormat) -> &'static str {
    match f {
        codeai_ir::ReportFormat::Pdf => "pdf",
        codeai_ir::ReportFormat::Csv => "csv",
        codeai_ir::ReportFormat::Html => "html",
    }
}

pub(crate) use codeai_ir::kind_of as type_name;

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// How a value reads inside text: strings without quotes, integral numbers without `.0`.
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => format!("{}", x as i64),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        Value::Object(_) => json_text(v),
    }
}

/// A timestamp value: an RFC 3339 string, or a period's start.
fn instant_of(v: &Value) -> Option<Instant> {
    match v {
        Value::String(s) => time::parse(s),
        Value::Object(m) => m
            .get("start")
            .and_then(|s| s.as_str())
            .and_then(time::parse),
        _ => None,
    }
}

/// `a.b?.c` as written, for a path of bindings and fields; `None` for anything else.
fn path_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Var(name) => Some(name.clone()),
        Expr::Field(inner, field) => Some(format!("{}.{field}", path_text(inner)?)),
        Expr::OptField(inner, field) => Some(format!("{}?.{field}", path_text(inner)?)),
        _ => None,
    }
}

fn arith_or_compare(op: BinaryOp, x: &Value, y: &Value) -> R<Value> {
    use std::cmp::Ordering;
    let ordering = || -> Option<Ordering> {
        match (x, y) {
            (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
            (Value::String(a), Value::String(b)) => match (time::parse(a), time::parse(b)) {
                (Some(p), Some(q)) => Some(p.unix_ms.cmp(&q.unix_ms)),
                _ => Some(a.cmp(b)),
            },
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    let equal = || match (x, y) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => ordering() == Some(Ordering::Equal) || x == y,
    };
    let cmp = |want: fn(Ordering) -> bool| -> R<Value> {
        match ordering() {
            Some(o) => Ok(Value::Bool(want(o))),
            None => fail(format!(
                "cannot compare {} with {}",
                type_name(x),
                type_name(y)
            )),
        }
    };
    match op {
        BinaryOp::Eq => Ok(Value::Bool(equal())),
        BinaryOp::Ne => Ok(Value::Bool(!equal())),
        BinaryOp::Lt => cmp(|o| o == Ordering::Less),
        BinaryOp::Le => cmp(|o| o != Ordering::Greater),
        BinaryOp::Gt => cmp(|o| o == Ordering::Greater),
        BinaryOp::Ge => cmp(|o| o != Ordering::Less),
        BinaryOp::Add | BinaryOp::Sub => {
            // timestamp ± milliseconds
            if let (Value::String(s), Some(ms)) = (x, y.as_f64()) {
                if let Some(at) = time::parse(s) {
                    let delta = if op == BinaryOp::Add { ms } else { -ms } as i64;
                    return Ok(Value::String(time::format(Instant {
                        unix_ms: at.unix_ms.saturating_add(delta),
                        ..at
                    })));
                }
            }
            // timestamp - timestamp = milliseconds
            if let (BinaryOp::Sub, Value::String(a), Value::String(b)) = (op, x, y) {
                if let (Some(p), Some(q)) = (time::parse(a), time::parse(b)) {
                    return Ok(json!(p.unix_ms.saturating_sub(q.unix_ms)));
                }
            }
            match (op, x, y) {
                (BinaryOp::Add, Value::String(a), b) => {
                    Ok(Value::String(format!("{a}{}", display(b))))
                }
                (BinaryOp::Add, Value::Array(a), Value::Array(b)) => {
                    Ok(Value::Array(a.iter().chain(b).cloned().collect()))
                }
                _ => numeric(op, x, y),
            }
        }
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => numeric(op, x, y),
        // Short-circuit operators are evaluated in `binary`; this is only reached by mistake.
        BinaryOp::And | BinaryOp::Or | BinaryOp::Coalesce => {
            fail(format!("{op:?} is not a comparison"))
        }
    }
}

fn numeric(op: BinaryOp, x: &Value, y: &Value) -> R<Value> {
    let (Some(a), Some(b)) = (x.as_f64(), y.as_f64()) else {
        let symbol = match op {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            _ => "%",
        };
        // Times subtract when both are timestamps; a day (`2026-02-01`) is not one.
        let hint = match (x, y) {
            (Value::String(_), Value::String(_)) if op == BinaryOp::Sub => {
                " (times subtract when both are timestamps such as `now()` or a datetime field; \
                 a `date` is a day: compare it with `format_date(t)`)"
            }
            _ => "",
        };
        return fail(format!(
            "cannot apply `{symbol}` to {} and {}{hint}",
            type_name(x),
            type_name(y)
        ));
    };
    let both_int = x.is_i64() && y.is_i64();
    Ok(match op {
        BinaryOp::Add if both_int => json!(x
            .as_i64()
            .unwrap_or(0)
            .saturating_add(y.as_i64().unwrap_or(0))),
        BinaryOp::Sub if both_int => json!(x
            .as_i64()
            .unwrap_or(0)
            .saturating_sub(y.as_i64().unwrap_or(0))),
        BinaryOp::Mul if both_int => json!(x
            .as_i64()
            .unwrap_or(0)
            .saturating_mul(y.as_i64().unwrap_or(0))),
        BinaryOp::Add => number(a + b),
        BinaryOp::Sub => number(a - b),
        BinaryOp::Mul => number(a * b),
        BinaryOp::Div | BinaryOp::Rem if b == 0.0 => return fail("division by zero"),
        BinaryOp::Div => number(a / b),
        _ => number(a % b),
    })
}

#[cfg(test)]
mod tests;

/// `order by` keys as the host takes them: (field, descending).
fn order_keys(order: &[codeai_ir::OrderBy]) -> Vec<(String, bool)> {
    order
        .iter()
        .map(|o| (o.field.clone(), o.descending))
        .collect()
}
