//! The guest's view of the platform: a trait with one method per WIT import, in plain Rust types.
//!
//! The interpreter only talks to a [`Host`]; the wasm build implements it with the generated WIT
//! bindings (`component.rs`), and tests implement it with a recording fake. Values that cross as
//! JSON text in WIT are `serde_json::Value` here.

use codeai_ir::{ArithOp, CompareOp, LogLevel, MaintenanceOp, ReportFormat, TermFunc};
use serde_json::Value;

/// Why a capability call failed (WIT `cap-error`).
#[derive(Debug, Clone, PartialEq)]
pub enum CapError {
    Denied(String),
    Invalid(String),
    Timeout(String),
    Failed(String),
}

impl std::fmt::Display for CapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapError::Denied(m) => write!(f, "denied: {m}"),
            CapError::Invalid(m) => write!(f, "invalid: {m}"),
            CapError::Timeout(m) => write!(f, "timed out: {m}"),
            CapError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

/// One node of a flattened filter (WIT `filter-node`); children are indices into the node list.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterNode {
    All(Vec<u32>),
    Any(Vec<u32>),
    Not(u32),
    Compare {
        field: String,
        op: CompareOp,
        value: Value,
    },
    /// WIT `term-comparison`: operands are indices into `terms`, each below its user's index.
    Terms {
        terms: Vec<Term>,
        left: u32,
        op: CompareOp,
        right: u32,
    },
}

/// One term of a [`FilterNode::Terms`] (WIT `term`).
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Column(String),
    Value(Value),
    Arith(ArithOp, u32, u32),
    Func(TermFunc, u32),
}

/// A filter tree flattened into a list (WIT `filter`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub nodes: Vec<FilterNode>,
    pub root: u32,
}

/// `select <entity> where <filter> order by <order> limit <limit>` (WIT `query`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub entity: String,
    pub filter: Option<Filter>,
    /// (field, descending)
    pub order: Vec<(String, bool)>,
    pub limit: Option<u32>,
    /// Rows of the order passed over first (`offset n`); 0 for none.
    pub offset: u32,
}

/// `aggregate <entity> { columns } where <filter> group by … order by … limit …` (WIT
/// `aggregate-query`).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateQuery {
    pub entity: String,
    pub columns: Vec<codeai_ir::AggColumn>,
    pub filter: Option<Filter>,
    pub group_by: Vec<String>,
    /// (column or group field, descending)
    pub order: Vec<(String, bool)>,
    pub limit: Option<u32>,
}

/// The new value of a column in an update (WIT `assignment`).
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    Set(String, Value),
    Add(String, f64),
}

/// `Integration.operation { args }` (WIT `call-request`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    pub integration: String,
    pub operation: String,
    pub args: Value,
    pub timeout_ms: Option<u32>,
}

/// A 2xx response (WIT `call-response`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallResponse {
    pub status: u16,
    pub body: Value,
}

/// An outgoing email (WIT `email.message`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub to: Vec<String>,
    pub subject: String,
    pub template: Option<String>,
    pub data: Value,
    pub attachments: Vec<String>,
}

/// What happened to a message (WIT `delivery`).
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent(String),
    Held(String),
}

/// A stored report (WIT `report.rendered`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub id: String,
    pub format: ReportFormat,
    pub size: u64,
    pub name: String,
}

/// A point in time and the job timezone's offset there (WIT `clock.instant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    pub unix_ms: i64,
    pub utc_offset_seconds: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    Day,
    Week,
    Month,
    Year,
}

/// A calendar period in the job's timezone (WIT `clock.calendar-period`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub start: Instant,
    pub end: Instant,
    pub label: String,
}

/// The capabilities, one method per WIT function.
pub trait Host {
    fn select(&mut self, query: Query) -> Result<Value, CapError>;
    fn count(&mut self, entity: &str, filter: Option<Filter>) -> Result<u64, CapError>;
    /// The rows of an aggregate (one without `group by`), as a JSON array of objects.
    fn aggregate(&mut self, query: AggregateQuery) -> Result<Value, CapError>;
    fn delete(&mut self, entity: &str, filter: Option<Filter>) -> Result<u64, CapError>;
    fn update(
        &mut self,
        entity: &str,
        filter: Option<Filter>,
        set: Vec<Assign>,
    ) -> Result<u64, CapError>;
    fn insert(&mut self, entity: &str, rows: Value) -> Result<u64, CapError>;
    fn upsert(&mut self, entity: &str, rows: Value, keys: &[String]) -> Result<u64, CapError>;
    fn maintain(&mut self, op: MaintenanceOp, entity: Option<&str>) -> Result<String, CapError>;
    fn call(&mut self, request: CallRequest) -> Result<CallResponse, CapError>;
    fn call_many(
        &mut self,
        requests: Vec<CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<CallResponse, CapError>>;
    fn send_email(&mut self, message: EmailMessage) -> Result<Delivery, CapError>;
    fn post_slack(
        &mut self,
        channel: &str,
        template: Option<&str>,
        data: Value,
    ) -> Result<Delivery, CapError>;
    fn render_report(
        &mut self,
        template: &str,
        data: Value,
        format: ReportFormat,
    ) -> Result<Rendered, CapError>;
    fn delete_report(&mut self, id: &str) -> Result<bool, CapError>;
    fn emit_event(&mut self, name: &str, payload: Value) -> Result<(), CapError>;
    fn state_get(&mut self, key: &str) -> Option<Value>;
    fn state_set(&mut self, key: &str, value: Value) -> Result<(), CapError>;
    fn log(&mut self, level: LogLevel, message: &str);
    /// Marks the start of one of the job's own steps (for the host's traces).
    fn step(&mut self, _name: &str) {}
    fn now(&mut self) -> Instant;
    /// The instant at `unix_ms` with the job timezone's offset at that point.
    fn local(&mut self, unix_ms: i64) -> Instant;
    fn period(&mut self, unit: PeriodUnit, offset: i32) -> Period;
}
