//! The two artefacts `codeai build` writes into every job component, as plain serde types.
//!
//! - [`Program`] is what the guest runtime (`guest-stdlib`) interprets: the job's steps with every
//!   name already resolved and every expression already parsed. The guest never sees DSL text.
//! - [`Manifest`] is what the host reads from the component's `codeai-manifest` custom section to
//!   register and run the job without the source: schedule, queue, limits, retry policy, the
//!   capabilities the program uses, and the declarations (entities, integrations, templates,
//!   events) that bound what those capabilities may touch.
//!
//! This crate knows nothing about parsing, wasm or the host. Both artefacts are serialised as
//! JSON; [`IR_VERSION`] changes whenever a change here is not backwards compatible.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A JSON value's kind in words, for messages: `null`, `a boolean`, `a number`, `a string`,
/// `a list`, `an object`.
pub fn kind_of(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub mod input;
pub mod limits;
pub mod number;
pub mod platform;
pub mod template;

/// Version of the [`Program`] and [`Manifest`] formats. A host refuses components whose IR version
/// it does not know.
pub const IR_VERSION: u32 = 1;

/// Name of the custom section holding the JSON [`Manifest`].
pub const MANIFEST_SECTION: &str = "codeai-manifest";

/// Name of the custom section holding the JSON [`Program`]. The host hands its bytes to the
/// guest runtime through the WIT import `program.get`.
pub const PROGRAM_SECTION: &str = "codeai-program";

/// The deepest nesting of lists and objects a [`Program`]'s JSON may have. The guest runtime
/// reads programs with `serde_json`, whose recursion limit (127 levels are read, the 128th is
/// refused) keeps a hostile program from exhausting the reader's stack. The compiler refuses a
/// job whose program would nest deeper: it would build, and fail at every run with "the
/// component's program is unreadable".
pub const MAX_PROGRAM_DEPTH: usize = 127;

/// The deepest nesting of lists and objects in JSON `text` (brackets inside strings do not
/// count). `text` is taken to be JSON, as serialising gives it.
pub fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

// ---------------------------------------------------------------------------------------------
// Program (compiler -> guest)
// ---------------------------------------------------------------------------------------------

/// A compiled job: what the guest runtime executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub ir_version: u32,
    pub job: String,
    /// Default input; keys of the trigger's input override these. Every key is bound as a variable.
    pub input_defaults: BTreeMap<String, Expr>,
    /// The typed input declaration, when the job has one: the guest checks a run's input
    /// against it and turns ISO dates into the start of that day in the job's timezone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<input::InputField>>,
    pub steps: Vec<Step>,
}

/// One named step of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// `file:line:col` of the step in the source, for error messages at run time.
    pub location: String,
    pub kind: StepKind,
    /// `as: name` — the binding that receives the step's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// `on_empty:` — what to do when the result is an empty list (or zero rows affected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_empty: Option<Policy>,
    /// `on_fail:` — what to do when the step fails. `None` means the job fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<Policy>,
    /// `timeout:` of a call step, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `when: cond` — the step runs only when this holds; otherwise it is skipped (logged with
    /// the condition's text) and its binding is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// `paginate: { next: page.next_cursor, param: "cursor", items: page.data, max_pages: 20 }` on a
/// call step: after each response (bound as `page` in `next` and `items`), while `next` is not
/// null or empty and fewer than `max_pages` pages were fetched, the call is made again with the
/// parameter `param` set to `next`. The step binds the items of every page, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paginate {
    pub next: Expr,
    pub param: String,
    /// The page's items (default: the response, which must be a list).
    pub items: Option<Expr>,
    pub max_pages: u32,
}

/// A step's `when:` condition: the expression and its source text, the reason given when the
/// step is skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub expr: Expr,
    pub text: String,
}

/// What a step does when it is empty or fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    /// End the job with status `skipped` and this reason (text, or text with `{{…}}`).
    Skip(Expr),
    /// Fail the job with this message.
    Abort(Expr),
    /// Log and go on with the next step (the binding holds `null` after a failure).
    Continue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StepKind {
    /// `query: select E where … order by … limit … offset …` — binds a list of row objects.
    Query {
        entity: String,
        filter: Option<Filter>,
        order: Vec<OrderBy>,
        limit: Option<Expr>,
        /// Rows of the order to pass over first (a page after the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<Expr>,
    },
    /// `query: aggregate E { name: func(field), … } where … group by g, … order by … limit …` —
    /// binds one object of the columns, or with `group by` a list of them, each with its group's
    /// fields.
    Aggregate {
        entity: String,
        columns: Vec<AggColumn>,
        filter: Option<Filter>,
        group_by: Vec<String>,
        /// By a group field or a column's name.
        order: Vec<OrderBy>,
        limit: Option<Expr>,
    },
    /// `query: count E where …` — binds a number.
    Count {
        entity: String,
        filter: Option<Filter>,
    },
    /// `action: delete E where …` — binds the number of rows deleted.
    Delete {
        entity: String,
        filter: Option<Filter>,
    },
    /// `action: update E set f = v, … where …` — binds the number of rows changed.
    Update {
        entity: String,
        set: Vec<Assignment>,
        filter: Option<Filter>,
    },
    /// `action: insert E { f: v, … }` — binds the number of rows inserted.
    Insert {
        entity: String,
        values: Vec<(String, Expr)>,
    },
    /// `action: upsert E { f: v, … } on [k, …]` — inserts the row or, when a row with the same
    /// `keys` (the primary key or `unique` fields) exists, sets the given fields on it; binds the
    /// number of rows written.
    Upsert {
        entity: String,
        values: Vec<(String, Expr)>,
        keys: Vec<String>,
    },
    /// `action: maintain vacuum|analyze|reindex [E]` — binds the host's summary text.
    Maintain {
        op: MaintenanceOp,
        entity: Option<String>,
    },
    /// `action: delete_report(id)` — binds whether the report existed.
    DeleteReport { id: Expr },
    /// `call: Integration.operation { arg: v, … }` — binds the response body, or with
    /// `paginate:` the items of every page.
    Call {
        integration: String,
        operation: String,
        args: Vec<(String, Expr)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paginate: Option<Paginate>,
    },
    /// `template: "t" data: {…} format: pdf` — binds `{id, format, size, name}` of the stored report.
    Report {
        template: String,
        data: Expr,
        format: ReportFormat,
    },
    /// `send: email(to) { template subject attachment data }` — binds the delivery.
    Email {
        to: Expr,
        subject: Expr,
        template: Option<String>,
        data: Option<Expr>,
        attachments: Vec<Expr>,
    },
    /// `send: slack("#chan") { template data }` — binds the delivery.
    Slack {
        channel: Expr,
        template: Option<String>,
        data: Option<Expr>,
    },
    /// `emit: Event { … }` — binds null.
    Emit { event: String, payload: Expr },
    /// `state: { key: v, … }` — stores per-job values; binds null.
    SetState { values: Vec<(String, Expr)> },
    /// `compute: expr` — binds the value of the expression.
    Compute { value: Expr },
    /// `log: "text"` (or `log: warn "text"`) — writes to the execution log; binds null.
    Log { level: LogLevel, message: Expr },
    /// `for_each: list  item: name  [parallel: N]` with one body step. Binds a list with one
    /// `{item, ok, value, error}` object per element.
    ForEach {
        items: Expr,
        item: String,
        parallel: u32,
        body: Box<StepKind>,
    },
    /// Several steps run in order in a scope of their own: a user-defined action
    /// (`action: name(args)`, its parameters bound to the arguments) or the `steps { }` of a
    /// `for_each`. Binds the object of the inner steps' `as:` bindings.
    Block {
        /// The action's name, or `None` for a `for_each` body.
        action: Option<String>,
        /// Parameters bound before the steps run (the arguments, evaluated in the caller).
        bind: Vec<(String, Expr)>,
        steps: Vec<Step>,
    },
    /// `action: fail("message")` — fails the step (its `on_fail` applies).
    Fail { message: Expr },
    /// `action: skip("reason")` — ends the job as skipped with this reason.
    Skip { reason: Expr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaintenanceOp {
    Vacuum,
    Analyze,
    Reindex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportFormat {
    Pdf,
    Csv,
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A filter over an entity's fields; values are guest expressions evaluated before the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        field: String,
        op: CompareOp,
        value: Expr,
    },
    /// `left op right` where either side involves a field beyond `field op value`:
    /// `quantity <= reorder_level`, `lower(name) = x`, `price * quantity > 100`.
    Terms {
        left: Term,
        op: CompareOp,
        right: Term,
    },
}

/// One side of a [`Filter::Terms`] comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Term {
    /// A declared field of the entity.
    Column(String),
    /// A value, evaluated by the guest before the call.
    Value(Expr),
    Arith(ArithOp, Box<Term>, Box<Term>),
    Func(TermFunc, Box<Term>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// The functions a filter applies to fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TermFunc {
    Lower,
    Upper,
    Length,
    Year,
    Month,
    Day,
    Hour,
}

impl TermFunc {
    pub const ALL: [(TermFunc, &'static str); 7] = [
        (TermFunc::Lower, "lower"),
        (TermFunc::Upper, "upper"),
        (TermFunc::Length, "length"),
        (TermFunc::Year, "year"),
        (TermFunc::Month, "month"),
        (TermFunc::Day, "day"),
        (TermFunc::Hour, "hour"),
    ];

    pub fn by_name(name: &str) -> Option<TermFunc> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    In,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggColumn {
    pub name: String,
    pub func: AggFunc,
    /// `None` for `count()`: the rows.
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFunc {
    pub const ALL: [(AggFunc, &'static str); 5] = [
        (AggFunc::Count, "count"),
        (AggFunc::Sum, "sum"),
        (AggFunc::Avg, "avg"),
        (AggFunc::Min, "min"),
        (AggFunc::Max, "max"),
    ];

    pub fn by_name(name: &str) -> Option<AggFunc> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, n)| n)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
}

/// `field = value` in an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Assignment {
    Set {
        field: String,
        value: Expr,
    },
    /// `field = field + n` (or `- n`, stored negated).
    Add {
        field: String,
        amount: Expr,
    },
}

/// An expression evaluated by the guest against its bindings. Values are JSON values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A string with `{{path}}` parts, concatenated after evaluation.
    Interpolated(Vec<Part>),
    /// A duration literal, in milliseconds.
    Duration(u64),
    /// A binding by name (`orders`, `input`, an item variable).
    Var(String),
    /// `expr.field` — reading a field that is not there fails the step.
    Field(Box<Expr>, String),
    /// `expr?.field` — null when `expr` is null or has no such field.
    OptField(Box<Expr>, String),
    /// `expr[index]`
    Index(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Object(Vec<(String, Expr)>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `cond ? a : b`
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A built-in function call.
    Call(Builtin, Vec<Expr>),
    /// `item -> condition`: a condition on each item of a list, the second argument of
    /// `filter` and `find` (which bind the item under this name while they evaluate it).
    Lambda(String, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `a ?? b`: a unless it is null.
    Coalesce,
}

/// The built-in functions of the language. The checker knows each one's arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    // time
    Now,
    Today,
    Yesterday,
    Tomorrow,
    ThisWeek,
    LastWeek,
    ThisMonth,
    LastMonth,
    ThisYear,
    LastYear,
    DaysAgo,
    HoursAgo,
    MinutesAgo,
    FormatDate,
    // state
    LastSyncTimestamp,
    LastRunAt,
    StateGet,
    // lists and aggregates
    Count,
    Len,
    Sum,
    Avg,
    Min,
    Max,
    Pluck,
    First,
    Last,
    Join,
    Contains,
    // scalars
    Round,
    Abs,
    Floor,
    Ceil,
    Lower,
    Upper,
    Trim,
    Concat,
    Coalesce,
    ToString,
    ToNumber,
    /// `default(path, value)`: `value` when `path` is missing or null.
    Default,
    /// `format(x, "#,##0.00")`: a number as text in a pattern.
    Format,
    /// `filter(list, item -> condition)`: the items for which the condition holds, in order.
    Filter,
    /// `find(list, item -> condition)`: the first item for which the condition holds, or null.
    Find,
}

impl Builtin {
    /// Every built-in with its DSL name and accepted argument counts (min, max).
    pub const ALL: &'static [(Builtin, &'static str, usize, usize)] = &[
        (Builtin::Now, "now", 0, 0),
        (Builtin::Today, "today", 0, 0),
        (Builtin::Yesterday, "yesterday", 0, 0),
        (Builtin::Tomorrow, "tomorrow", 0, 0),
        (Builtin::ThisWeek, "this_week", 0, 0),
        (Builtin::LastWeek, "last_week", 0, 0),
        (Builtin::ThisMonth, "this_month", 0, 0),
        (Builtin::LastMonth, "last_month", 0, 0),
        (Builtin::ThisYear, "this_year", 0, 0),
        (Builtin::LastYear, "last_year", 0, 0),
        (Builtin::DaysAgo, "days_ago", 1, 1),
        (Builtin::HoursAgo, "hours_ago", 1, 1),
        (Builtin::MinutesAgo, "minutes_ago", 1, 1),
        (Builtin::FormatDate, "format_date", 1, 2),
        (Builtin::LastSyncTimestamp, "last_sync_timestamp", 0, 0),
        (Builtin::LastRunAt, "last_run_at", 0, 0),
        (Builtin::StateGet, "state", 1, 2),
        (Builtin::Count, "count", 1, 1),
        (Builtin::Len, "len", 1, 1),
        (Builtin::Sum, "sum", 1, 2),
        (Builtin::Avg, "avg", 1, 2),
        (Builtin::Min, "min", 1, 2),
        (Builtin::Max, "max", 1, 2),
        (Builtin::Pluck, "pluck", 2, 2),
        (Builtin::First, "first", 1, 1),
        (Builtin::Last, "last", 1, 1),
        (Builtin::Join, "join", 1, 2),
        (Builtin::Contains, "contains", 2, 2),
        (Builtin::Filter, "filter", 2, 2),
        (Builtin::Find, "find", 2, 2),
        (Builtin::Round, "round", 1, 2),
        (Builtin::Abs, "abs", 1, 1),
        (Builtin::Floor, "floor", 1, 1),
        (Builtin::Ceil, "ceil", 1, 1),
        (Builtin::Lower, "lower", 1, 1),
        (Builtin::Upper, "upper", 1, 1),
        (Builtin::Trim, "trim", 1, 1),
        (Builtin::Concat, "concat", 1, usize::MAX),
        (Builtin::Coalesce, "coalesce", 1, usize::MAX),
        (Builtin::ToString, "string", 1, 1),
        (Builtin::ToNumber, "number", 1, 1),
        (Builtin::Default, "default", 2, 2),
        (Builtin::Format, "format", 2, 2),
    ];

    /// Looks a built-in up by its DSL name.
    pub fn by_name(name: &str) -> Option<(Builtin, usize, usize)> {
        Self::ALL
            .iter()
            .find(|(_, n, _, _)| *n == name)
            .map(|(b, _, min, max)| (*b, *min, *max))
    }

    /// The DSL name of a built-in.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(b, ..)| *b == self)
            .map(|(_, n, ..)| *n)
            .unwrap_or("?")
    }
}

// ---------------------------------------------------------------------------------------------
// Manifest (compiler -> host)
// ---------------------------------------------------------------------------------------------

/// Everything the host needs to register and run a job from its component alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub ir_version: u32,
    pub name: String,
    pub description: Option<String>,
    /// `report`, `cleanup`, `maintenance`, `sync`, `alert`, `processing` … (free-form, from `job_type:`
    /// or inferred from the steps).
    pub job_type: String,
    pub schedule: Schedule,
    /// IANA name; `UTC` when the job does not say.
    pub timezone: String,
    pub queue: String,
    /// The queues the source declared, with their weights (the built-in three included).
    pub queues: Vec<QueueDecl>,
    pub timeout_ms: u64,
    pub retry: RetryPolicy,
    /// What a fire does while the previous run of the job is pending or active.
    pub overlap: Overlap,
    /// Event the host emits after the job completes or is skipped (`on_complete: emit(E)`).
    pub on_complete: Option<String>,
    /// Event the host emits after the job's final failure, retries exhausted (`on_fail: emit(E)`).
    pub on_fail: Option<String>,
    /// `trigger: on(E)`: the job runs once per event `E` of its tenant, with the event's data as
    /// its input (beside its schedule, if it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// WIT interface names the program calls (`data`, `http`, `email`, `slack`, `report`, `events`,
    /// `state`, `log`, `clock`). The host denies the others.
    pub capabilities: Vec<String>,
    pub entities: Vec<EntityDecl>,
    pub integrations: Vec<IntegrationDecl>,
    pub templates: Vec<TemplateDecl>,
    pub events: Vec<EventDecl>,
    /// The typed input declaration (`input: { name: type = default }`), when the job has one:
    /// the host refuses a run whose input does not fit it. `None`: any JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<input::InputField>>,
    /// Hex SHA-256 of the job's own text in its source file (`job Name { … }`): another job of
    /// the same file changing leaves it as it was (and so the component and its version).
    pub source_hash: String,
    /// The source file name (not its path).
    pub source_file: String,
    /// The compiler's version.
    pub compiler: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A 5-field cron expression, evaluated in the job's timezone.
    Cron { expression: String },
    /// `every N<unit>`.
    Interval { every_ms: u64 },
    /// A one-time run at an RFC 3339 instant.
    Once { at: String },
    /// Only runs when triggered.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDecl {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `retry: 3 times` allows 4 attempts).
    pub max_retries: u32,
    pub backoff: Backoff,
}

/// What a fire does while the previous run of the job is still pending or active
/// (`overlap:` in the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is recorded as a skipped execution with its reason (the default).
    #[default]
    Skip,
    /// The fire is enqueued and waits until the previous run ends (one at a time).
    Queue,
    /// The fire runs beside the previous run.
    Allow,
}

impl Overlap {
    pub const ALL: [Overlap; 3] = [Overlap::Skip, Overlap::Queue, Overlap::Allow];

    /// The policy's name in the source and in manifests.
    pub const fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }

    /// The policy named `name`, if there is one.
    pub fn named(name: &str) -> Option<Overlap> {
        Overlap::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed { delay_ms: u64 },
    /// `base_ms * 2^n` before retry n (0-based): 100ms, 200ms, 400ms …
    Exponential { base_ms: u64 },
    /// `retry_delays: [...]`; the last delay repeats if there are more retries than delays.
    Custom { delays_ms: Vec<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityDecl {
    pub name: String,
    pub table: String,
    pub fields: Vec<FieldDecl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDecl {
    pub name: String,
    pub ty: FieldType,
    pub primary: bool,
    pub optional: bool,
    /// No two rows of a tenant share the value (a unique index; an upsert may match on it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Float,
    Bool,
    Datetime,
    Date,
    Uuid,
    Json,
}

impl FieldType {
    pub const ALL: &'static [(FieldType, &'static str)] = &[
        (FieldType::String, "string"),
        (FieldType::Int, "int"),
        (FieldType::Float, "float"),
        (FieldType::Bool, "bool"),
        (FieldType::Datetime, "datetime"),
        (FieldType::Date, "date"),
        (FieldType::Uuid, "uuid"),
        (FieldType::Json, "json"),
    ];

    pub fn by_name(name: &str) -> Option<FieldType> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationDecl {
    pub name: String,
    /// The environment variable holding the base URL (`base_url: env("X")`), or a literal URL.
    pub base_url: ValueSource,
    pub auth: Auth,
    pub timeout_ms: u64,
    pub operations: Vec<OperationDecl>,
}

/// A configuration value: a literal, or the name of an environment variable read by the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ValueSource {
    Literal(String),
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        token: ValueSource,
    },
    /// A custom header.
    Header {
        name: String,
        value: ValueSource,
    },
    /// HTTP basic auth.
    Basic {
        user: ValueSource,
        password: ValueSource,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationDecl {
    pub name: String,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Path under the base URL; `{param}` placeholders are filled from the arguments.
    pub path: String,
    pub params: Vec<ParamDecl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDecl {
    pub name: String,
    pub ty: FieldType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDecl {
    pub name: String,
    pub title: Option<String>,
    pub subtitle: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub table: Option<TableDecl>,
}

/// The table of a report template: rows from `data[source]`, one column per field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDecl {
    pub source: String,
    /// (field, header) in order.
    pub columns: Vec<(String, String)>,
    /// Fields summed in a totals row.
    pub totals: Vec<String>,
    /// How a column's values read, by field (`total: "Total" money`); a column without one
    /// shows its numbers with the decimals of its most precise value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub formats: std::collections::BTreeMap<String, ColumnFormat>,
}

/// The format of a report column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnFormat {
    /// Two decimals; thousands separated by `,` in PDF and HTML (not in CSV): `1,249.50`.
    Money,
    /// Rounded to a whole number: `12`.
    Integer,
    /// A fixed number of decimals (0–6): `decimal(1)` → `23.7`.
    Decimal(u8),
    /// A fraction shown as a percentage with a fixed number of decimals: `percent(1)` of
    /// `0.125` → `12.5%`.
    Percent(u8),
    /// A timestamp as its day in the job's time zone: `2026-01-12`.
    Date,
    /// A timestamp in the job's time zone to the minute: `2026-01-12 14:05`.
    Datetime,
}

impl ColumnFormat {
    /// The names a template writes after a column's header, and whether they take a count of
    /// decimals in parentheses.
    pub const NAMES: &'static [(&'static str, bool)] = &[
        ("money", false),
        ("integer", false),
        ("decimal", true),
        ("percent", true),
        ("date", false),
        ("datetime", false),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDecl {
    pub name: String,
    pub fields: Vec<ParamDecl>,
}

impl Manifest {
    /// Parses a manifest and checks its IR version.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))?;
        if m.ir_version != IR_VERSION {
            return Err(format!(
                "manifest has IR version {}, this host understands {IR_VERSION}",
                m.ir_version
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}\"[{{]}}\\\"\"{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn json_depth_is_what_serde_json_reads_up_to() {
        for levels in [
            1,
            2,
            MAX_PROGRAM_DEPTH - 1,
            MAX_PROGRAM_DEPTH,
            MAX_PROGRAM_DEPTH + 1,
        ] {
            let text = nested(levels);
            // The brackets inside the string (and its escaped quote) do not count.
            assert_eq!(json_depth(text.as_bytes()), levels, "{text}");
            let read = serde_json::from_str::<serde_json::Value>(&text);
            assert_eq!(
                read.is_ok(),
                levels <= MAX_PROGRAM_DEPTH,
                "{levels}: {read:?}"
            );
        }
        assert_eq!(json_depth(br#"{"a":[1,{"b":[]}],"c":{}}"#), 4);
        assert_eq!(json_depth(b"42"), 0);
    }
}
