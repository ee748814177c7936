//! The syntax tree of a `.codeai` file, as the parser produces it: every node carries the byte
//! span it came from, nothing is resolved yet. The checker (`check.rs`) resolves names and types
//! and lowers the tree to `codeai_ir::Program` values.

use std::ops::Range;

/// A byte range in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

/// A value with the span it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// An identifier with its span.
pub type Ident = Spanned<String>;

/// A whole `.codeai` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Entity(Entity),
    Integration(Integration),
    Template(Template),
    Event(Event),
    Queue(Queue),
    Job(Job),
    Action(ActionDecl),
}

/// `action process_item(item) { steps { … } }`: steps a job runs with `action: process_item(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub steps: Vec<Step>,
    /// Span of the `steps` keyword, if the action has a `steps { }` block.
    pub steps_span: Option<Span>,
    pub span: Span,
    /// Part of the action failed to parse (and was reported).
    pub broken: bool,
}

/// `entity Product { table: "products"  id: uuid primary  name: string optional … }`
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: Ident,
    pub table: Option<Spanned<String>>,
    pub fields: Vec<FieldDef>,
    pub span: Span,
}

/// `name: type [primary] [optional]`
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    pub name: Ident,
    /// The type name as written; the checker resolves it.
    pub ty: Ident,
    pub primary: bool,
    pub optional: bool,
    /// `unique`: no two rows of a tenant share the value (an `upsert` may match on it).
    pub unique: bool,
}

/// `integration WarehouseAPI { base_url: env("X")  auth: bearer(env("K"))  timeout: 30s
///   get_inventory: GET "/v1/inventory" { since: datetime } }`
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub name: Ident,
    pub base_url: Option<Spanned<ValueSource>>,
    pub auth: Option<Spanned<AuthDef>>,
    pub timeout: Option<Spanned<Duration>>,
    pub operations: Vec<Operation>,
    pub span: Span,
}

/// `"literal"` or `env("NAME")`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    Literal(String),
    Env(String),
}

/// `bearer(v)`, `header("Name", v)`, `basic(user, password)` or `none`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthDef {
    None,
    Bearer(ValueSource),
    Header(String, ValueSource),
    Basic(ValueSource, ValueSource),
}

/// `name: METHOD "/path/{param}" { param: type, … }`
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: Ident,
    pub method: Ident,
    pub path: Spanned<String>,
    pub params: Vec<(Ident, Ident)>,
}

/// `template name { title: "…" subtitle: "…" subject: "…" body: "…"
///   table: source { field: "Header" … }  totals: [field, …] }`
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: Ident,
    pub title: Option<Spanned<String>>,
    pub subtitle: Option<Spanned<String>>,
    pub subject: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub table: Option<TableDef>,
    pub totals: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub source: Ident,
    pub columns: Vec<Column>,
}

/// `field: "Header"` or `field: "Header" money` / `decimal(2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub field: Ident,
    pub header: Spanned<String>,
    /// The format's name and its count of decimals, if given in parentheses.
    pub format: Option<(Ident, Option<Spanned<i64>>)>,
}

/// `event Name { field: type, … }` (the braces are optional for an event without fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: Ident,
    pub fields: Vec<(Ident, Ident)>,
    pub span: Span,
}

/// `queue name { weight: 5 }` — declares a queue beside the built-in critical/default/low.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: Ident,
    pub weight: Option<Spanned<i64>>,
    pub span: Span,
}

/// A `job` block. Fields are kept as written (repeated or missing ones too) so that the checker
/// can report them; the parser only checks the syntax of each.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: Ident,
    pub fields: Vec<JobField>,
    pub steps: Vec<Step>,
    /// Span of the `steps` keyword, if the job has a `steps { }` block.
    pub steps_span: Option<Span>,
    pub span: Span,
    /// Part of the job failed to parse (and was reported): the checker does not complain
    /// about what is missing from it.
    pub broken: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobField {
    /// The field name (`schedule`, `run_at`, `timezone`, …) as written.
    pub key: Ident,
    pub value: JobValue,
    /// Span of the whole `key: value`.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobValue {
    /// `description: "…"`, `schedule: "0 6 * * *"`, `run_at: "…"`, `timezone: "…"`
    Str(Spanned<String>),
    /// `schedule: every 30m`
    Every(Spanned<Duration>),
    /// `timeout: 30m`
    Duration(Spanned<Duration>),
    /// `queue: default`, `job_type: report`, `overlap: skip`
    Ident(Ident),
    /// `retry: 3 times [with exponential_backoff]`
    Retry {
        times: Spanned<i64>,
        strategy: Option<Ident>,
    },
    /// `retry_delays: [1m, 5m]`
    Durations(Vec<Spanned<Duration>>),
    /// `on_complete: emit(Event)`, `on_fail: emit(Event)`
    Emit(Ident),
    /// `trigger: on(Event)`
    On(Ident),
    /// `input: { … }` and any other expression-valued field.
    Expr(Expr),
}

/// A duration literal: `100ms`, `30s`, `5m`, `2h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub millis: u64,
}

/// `name { field: value … }` inside `steps { }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: Ident,
    pub fields: Vec<StepField>,
    /// `steps { … }` inside the step: the body of a `for_each`, several steps per item.
    pub body: Option<Spanned<Vec<Step>>>,
    pub span: Span,
    /// A field of the step failed to parse (and was reported): the checker does not complain
    /// about what is missing from it.
    pub broken: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepField {
    pub key: Ident,
    pub value: StepValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepValue {
    /// `query: select E where … order by … limit …` / `query: count E where …`
    Query(Query),
    /// `action: delete|update|insert|upsert|maintain …` or `action: builtin_proc(args)`
    Action(Action),
    /// `call: Integration.operation { arg: expr … }`
    Call(CallSpec),
    /// `send: email(to) { … }` / `send: slack("#chan") { … }`
    Send(Send),
    /// `format: pdf`, `item: name`, `as: name`
    Ident(Ident),
    /// `timeout: 60s`
    Duration(Spanned<Duration>),
    /// `on_empty:` / `on_fail:` — `skip("…")`, `abort("…")`, `continue`
    Policy(Spanned<PolicyDef>),
    /// `emit: Event { … }` (payload optional)
    Emit { event: Ident, payload: Option<Expr> },
    /// `log: [level] expr`
    Log { level: Option<Ident>, message: Expr },
    /// Everything else: `template: "t"`, `data: {…}`, `compute: {…}`, `for_each: expr`,
    /// `parallel: 10`, `state: {…}`, `subject: "…"` …
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyDef {
    /// The reason, as written (it may interpolate `{{…}}`).
    Skip(Option<Spanned<String>>),
    Abort(Option<Spanned<String>>),
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `select` or `count`
    pub count: bool,
    pub entity: Ident,
    /// `aggregate E { name: func(field), … } … group by f, …`
    pub aggregate: Option<Aggregate>,
    pub filter: Option<Expr>,
    pub order: Vec<(Ident, bool)>,
    pub limit: Option<Expr>,
    /// `offset n`: rows of the order passed over first (boxed: it is rare, and a query is
    /// held in every step value).
    pub offset: Option<Box<Expr>>,
    pub span: Span,
}

/// The columns and groups of `query: aggregate E { revenue: sum(total) } group by status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Each column's name and its `func(field)` as written.
    pub columns: Vec<(Ident, Expr)>,
    pub group_by: Vec<Ident>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Delete {
        entity: Ident,
        filter: Option<Expr>,
        span: Span,
    },
    Update {
        entity: Ident,
        set: Vec<(Ident, Expr)>,
        filter: Option<Expr>,
        span: Span,
    },
    Insert {
        entity: Ident,
        values: Vec<(Ident, Expr)>,
        span: Span,
    },
    /// `upsert E { f: v, … } [on [key, …]]`: inserts the row, or updates the one with the same
    /// keys (the primary key when `on` is left out).
    Upsert {
        entity: Ident,
        values: Vec<(Ident, Expr)>,
        keys: Vec<Ident>,
        span: Span,
    },
    /// `maintain vacuum [Entity]`
    Maintain {
        op: Ident,
        entity: Option<Ident>,
        span: Span,
    },
    /// `delete_report(id)` and other procedure calls.
    Proc {
        name: Ident,
        args: Vec<Expr>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    pub integration: Ident,
    pub operation: Ident,
    pub args: Vec<(Ident, Expr)>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// `email` or `slack`
    pub channel_kind: Ident,
    /// The argument in parentheses: recipients or channel.
    pub target: Expr,
    /// The fields in braces: `template`, `subject`, `attachment`, `data`.
    pub fields: Vec<(Ident, Expr)>,
    pub span: Span,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string literal, escapes resolved. `{{…}}` parts are split out by the checker.
    Str(String),
    Duration(Duration),
    Ident(String),
    Field(Box<Expr>, Ident),
    /// `expr?.field`: null when `expr` is null or has no `field`.
    OptField(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Object(Vec<(Ident, Expr)>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `name(args)`
    Call(Ident, Vec<Expr>),
    /// `item -> condition`: a condition on each item of a list (an argument of `filter` and
    /// `find`), its item named.
    Lambda(Ident, Box<Expr>),
}

impl Expr {
    /// The expressions directly inside this one (not names: a field's, a function's, a key).
    pub fn parts(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Field(x, _)
            | ExprKind::OptField(x, _)
            | ExprKind::Unary(_, x)
            | ExprKind::Lambda(_, x) => vec![x],
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => vec![a, b],
            ExprKind::Cond(a, b, c) => vec![a, b, c],
            ExprKind::List(items) | ExprKind::Call(_, items) => items.iter().collect(),
            ExprKind::Object(fields) => fields.iter().map(|(_, x)| x).collect(),
            _ => Vec::new(),
        }
    }

    /// [`Expr::parts`], to change them.
    pub fn parts_mut(&mut self) -> Vec<&mut Expr> {
        match &mut self.kind {
            ExprKind::Field(x, _)
            | ExprKind::OptField(x, _)
            | ExprKind::Unary(_, x)
            | ExprKind::Lambda(_, x) => vec![x],
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => vec![a, b],
            ExprKind::Cond(a, b, c) => vec![a, b, c],
            ExprKind::List(items) | ExprKind::Call(_, items) => items.iter_mut().collect(),
            ExprKind::Object(fields) => fields.iter_mut().map(|(_, x)| x).collect(),
            _ => Vec::new(),
        }
    }

    /// Puts `span` on this expression and every part of it, names included: for one read from
    /// text that is not the source's (an interpolation with escapes), so that messages point
    /// at where it was written.
    pub fn respan(&mut self, span: Span) {
        self.span = span;
        match &mut self.kind {
            ExprKind::Field(_, name)
            | ExprKind::OptField(_, name)
            | ExprKind::Call(name, _)
            | ExprKind::Lambda(name, _) => name.span = span,
            ExprKind::Object(fields) => fields.iter_mut().for_each(|(name, _)| name.span = span),
            _ => {}
        }
        for part in self.parts_mut() {
            part.respan(span);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Coalesce,
    /// `field in [..]`
    In,
    /// `field like "a%"`
    Like,
}
