//! The wasm side of the guest: the WIT bindings and a [`Host`] made of the generated imports.
//! Only compiled for `wasm32`.
//!
//! The job's program is not in this module: `codeai build` writes it into the component's
//! `codeai-program` custom section, and the host hands it over through `program.get` at the
//! start of each run. The module is the same for every job, so a host compiles it once.
//!
//! Every capability is reached through one function of the `calls` interface, `call-encoded`: a
//! request names the `job` world function and carries its arguments, the response its result,
//! each sent as postcard bytes. A fresh instance of a component costs the host work for each
//! function it imports, and this runtime would otherwise import two dozen; and a host that runs
//! this module without its component (as ours does) lifts one byte string per call instead of
//! every case of `request`. `log.step`, which every step calls, is the one other import.
//!
//! A host that runs a job many times reads its program once: `decode-program`, in an instance
//! of its own, returns the image of the arena holding the program read ([`crate::heap::image`]),
//! and each run's fresh instance gets that image through `run-decoded` instead of reading the
//! text again. `run` stays for hosts (and components) that do not.

wit_bindgen::generate!({
    path: "../wit",
    world: "job-runtime",
    additional_derives: [serde::Serialize, serde::Deserialize],
});

use crate::host::{self as h, CapError, Host};
use crate::interp::json_text as json;
use codeai::host::calls::{self, Request, Response};
use codeai::host::{clock, data, email, http, log, report, types};
use codeai_ir::Program;
use serde_json::Value;

struct Runtime;

impl Guest for Runtime {
    fn run(input: String) -> Result<types::Outcome, types::JobError> {
        set_panic_hook();
        let program = read_program(program_text())?;
        run_program(&program, &input)
    }
}

impl exports::codeai::host::decoded::Guest for Runtime {
    fn decode_program() -> Result<Vec<u8>, types::JobError> {
        set_panic_hook();
        // Read outside the arena (reading leaves blocks behind: the text, a `Vec` outgrown),
        // then cloned into it: a clone takes each block at its size, so the image holds the
        // program and nothing else.
        let program = crate::heap::outside_arena(|| read_program(program_text()))?;
        let root = Box::into_raw(Box::new(program.clone())) as usize;
        Ok(crate::heap::image(root).unwrap_or_default())
    }

    fn run_decoded(image: Vec<u8>, input: String) -> Result<types::Outcome, types::JobError> {
        set_panic_hook();
        match crate::heap::adopt(image, core::alloc::Layout::new::<Program>()) {
            // SAFETY: `adopt` checked that the image lies at the addresses it was taken from,
            // in this instance's arena, and holds a `Program` at `root`: the one another
            // instance of this same module read (`decode_program`), every block it points to
            // inside the image or in the module's own static data. It is never freed.
            Some(root) => run_program(unsafe { &*(root as *const Program) }, &input),
            None => run_program(&read_program(program_text())?, &input),
        }
    }
}

/// `run-decoded` for a host that wrote its two arguments into this instance's memory itself,
/// where the canonical ABI would have put them: a core export, not in the component's interface.
///
/// Lowering `run-decoded(image, input)` is two calls of `cabi_realloc(0, 0, 1, len)` — each a
/// call into the instance, which a host with async support makes on a fiber of its own (the two
/// ~0.45 µs of a no-op job's ~7.6, measured) — a copy into each block, then the call of the export. A fresh
/// instance's first blocks are the start of its arena, the same addresses in every instance,
/// which the image names ([`crate::heap::image`]): so the host writes both lists there and calls
/// this with the four words it would have passed `run-decoded`. This makes the two
/// `cabi_realloc` calls itself, in the same order, and runs `run-decoded` on their blocks only
/// when they are where the host wrote: otherwise it traps before any of the job's code runs. So a
/// run here makes the canonical run's allocations and call, in the guest's memory byte for byte,
/// minus two fiber switches (and plus the few instructions of this wrapper, in fuel).
///
/// # Safety
/// Called by the host only, as a canonical export: `image_ptr..+image_len` and
/// `input_ptr..+input_len` hold the lists (the input UTF-8), written before any other code of
/// this instance ran.
#[export_name = "codeai-run-decoded-in-place"]
unsafe extern "C" fn run_decoded_in_place(
    image_ptr: *mut u8,
    image_len: usize,
    input_ptr: *mut u8,
    input_len: usize,
) -> *mut u8 {
    // SAFETY: `cabi_realloc`'s contract for a new block (no old block); the blocks are then
    // exactly what the canonical lowering would have handed `run-decoded`.
    unsafe {
        let image = wit_bindgen::rt::cabi_realloc(core::ptr::null_mut(), 0, 1, image_len);
        let input = wit_bindgen::rt::cabi_realloc(core::ptr::null_mut(), 0, 1, input_len);
        if image != image_ptr || input != input_ptr {
            core::arch::wasm32::unreachable();
        }
        exports::codeai::host::decoded::_export_run_decoded_cabi::<Runtime>(
            image, image_len, input, input_len,
        )
    }
}

fn set_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        call(&Request::LogWrite((
            log::Level::Error,
            format!("guest panic: {info}"),
        )));
    }));
}

/// `calls.call`, through `calls.call-encoded`: the request and the response in postcard. A
/// response that is not one ends the run (the host sent what it may not).
fn call(request: &Request) -> Response {
    let bytes = postcard::to_allocvec(request).expect("a request encodes");
    let response = calls::call_encoded(&bytes);
    postcard::from_bytes(&response).expect("the host's response is a `response`")
}

/// The component's `codeai-program` section (`program.get`).
fn program_text() -> Vec<u8> {
    match call(&Request::ProgramGet) {
        Response::Program(bytes) => bytes,
        _ => Vec::new(),
    }
}

/// The program from the text of the component's `codeai-program` section, of this runtime's
/// IR version.
fn read_program(bytes: Vec<u8>) -> Result<Program, types::JobError> {
    let unreadable = |e: &dyn std::fmt::Display| types::JobError {
        step: None,
        message: format!("the component's program is unreadable: {e}"),
    };
    // Checked as UTF-8 once, then read as text: `from_slice` checks each string on its own,
    // which was a third of the time a no-op job spent reading its program.
    let text = core::str::from_utf8(&bytes).map_err(|e| unreadable(&e))?;
    let program: Program = serde_json::from_str(text).map_err(|e| unreadable(&e))?;
    if program.ir_version != codeai_ir::IR_VERSION {
        return Err(types::JobError {
            step: None,
            message: format!(
                "the program has IR version {}, this runtime runs {}",
                program.ir_version,
                codeai_ir::IR_VERSION
            ),
        });
    }
    Ok(program)
}

fn run_program(program: &Program, input: &str) -> Result<types::Outcome, types::JobError> {
    let input: Value = if input == "{}" {
        // What a schedule's fire and most runs pass: no need to read it.
        Value::Object(serde_json::Map::new())
    } else if input.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(input).map_err(|e| types::JobError {
            step: None,
            message: format!("the input is not JSON: {e}"),
        })?
    };
    match crate::interp::run(program, input, &mut Imports) {
        Ok(crate::interp::Outcome::Completed(v)) => {
            let text = crate::interp::output_text(&v);
            crate::heap::discard(v);
            Ok(types::Outcome::Completed(text))
        }
        Ok(crate::interp::Outcome::Skipped(reason)) => Ok(types::Outcome::Skipped(reason)),
        Err(e) => Err(types::JobError {
            step: e.step,
            message: e.message,
        }),
    }
}

export!(Runtime);

/// The [`Host`] made of the WIT imports.
struct Imports;

fn cap(e: types::CapError) -> CapError {
    match e {
        types::CapError::Denied(m) => CapError::Denied(m),
        types::CapError::Invalid(m) => CapError::Invalid(m),
        types::CapError::Timeout(m) => CapError::Timeout(m),
        types::CapError::Failed(m) => CapError::Failed(m),
    }
}

fn parse_json(text: &str) -> Result<Value, CapError> {
    serde_json::from_str(text)
        .map_err(|e| CapError::Invalid(format!("the host sent invalid JSON: {e}")))
}

fn filter(f: Option<h::Filter>) -> Option<data::Filter> {
    f.map(|f| data::Filter {
        root: f.root,
        nodes: f
            .nodes
            .into_iter()
            .map(|n| match n {
                h::FilterNode::All(c) => data::FilterNode::All(c),
                h::FilterNode::Any(c) => data::FilterNode::Any(c),
                h::FilterNode::Not(c) => data::FilterNode::Not(c),
                h::FilterNode::Compare { field, op, value } => {
                    data::FilterNode::Compare(data::Comparison {
                        field,
                        op: compare_op(op),
                        value: json(&value),
                    })
                }
                h::FilterNode::Terms {
                    terms,
                    left,
                    op,
                    right,
                } => data::FilterNode::Terms(data::TermComparison {
                    terms: terms.into_iter().map(term).collect(),
                    left,
                    op: compare_op(op),
                    right,
                }),
            })
            .collect(),
    })
}

fn term(t: h::Term) -> data::Term {
    use codeai_ir::{ArithOp as A, TermFunc as F};
    match t {
        h::Term::Column(c) => data::Term::Column(c),
        h::Term::Value(v) => data::Term::Value(json(&v)),
        h::Term::Arith(op, a, b) => data::Term::Arith((
            match op {
                A::Add => data::ArithOp::Add,
                A::Sub => data::ArithOp::Sub,
                A::Mul => data::ArithOp::Mul,
                A::Div => data::ArithOp::Div,
            },
            a,
            b,
        )),
        h::Term::Func(f, a) => data::Term::Apply((
            match f {
                F::Lower => data::TermFunc::Lowercase,
                F::Upper => data::TermFunc::Uppercase,
                F::Length => data::TermFunc::Length,
                F::Year => data::TermFunc::Year,
                F::Month => data::TermFunc::Month,
                F::Day => data::TermFunc::Day,
                F::Hour => data::TermFunc::Hour,
            },
            a,
        )),
    }
}

fn compare_op(op: codeai_ir::CompareOp) -> data::CompareOp {
    use codeai_ir::CompareOp as C;
    match op {
        C::Eq => data::CompareOp::Eq,
        C::Ne => data::CompareOp::Ne,
        C::Lt => data::CompareOp::Lt,
        C::Le => data::CompareOp::Le,
        C::Gt => data::CompareOp::Gt,
        C::Ge => data::CompareOp::Ge,
        C::Like => data::CompareOp::Like,
        C::In => data::CompareOp::In,
        C::IsNull => data::CompareOp::IsNull,
        C::IsNotNull => data::CompareOp::IsNotNull,
    }
}

fn call_request(r: &h::CallRequest) -> http::CallRequest {
    http::CallRequest {
        integration: r.integration.clone(),
        operation: r.operation.clone(),
        args: json(&r.args),
        timeout_ms: r.timeout_ms,
    }
}

fn call_response(
    r: Result<http::CallResponse, types::CapError>,
) -> Result<h::CallResponse, CapError> {
    let r = r.map_err(cap)?;
    Ok(h::CallResponse {
        status: r.status,
        body: parse_json(&r.body)?,
    })
}

fn delivery(d: types::Delivery) -> h::Delivery {
    match d {
        types::Delivery::Sent(id) => h::Delivery::Sent(id),
        types::Delivery::Held(id) => h::Delivery::Held(id),
    }
}

fn report_format(f: codeai_ir::ReportFormat) -> report::Format {
    match f {
        codeai_ir::ReportFormat::Pdf => report::Format::Pdf,
        codeai_ir::ReportFormat::Csv => report::Format::Csv,
        codeai_ir::ReportFormat::Html => report::Format::Html,
    }
}

fn instant(i: clock::Instant) -> h::Instant {
    h::Instant {
        unix_ms: i.unix_ms,
        utc_offset_seconds: i.utc_offset_seconds,
    }
}

/// What a response of the wrong shape is: the host answered another function. Never the
/// guest's doing, and a host of this runtime never does it.
fn unexpected(function: &str) -> CapError {
    CapError::Invalid(format!(
        "the host answered `{function}` with another function's result"
    ))
}

/// Calls `calls.call` with `request` and takes the result out of the response case `case`
/// (`Result<_, cap-error>`, made a [`CapError`]); another case is [`unexpected`].
macro_rules! ask {
    ($request:expr, $case:ident, $function:literal) => {
        match call(&$request) {
            Response::$case(result) => result.map_err(cap),
            _ => Err(unexpected($function)),
        }
    };
}

/// `clock.*` calls that return an instant; they have no error channel, so a wrong answer
/// ends the run.
fn instant_of(request: &Request, function: &str) -> h::Instant {
    match call(request) {
        Response::Instant(i) => instant(i),
        _ => panic!("{}", unexpected(function)),
    }
}

impl Host for Imports {
    fn select(&mut self, q: h::Query) -> Result<Value, CapError> {
        let query = data::Query {
            entity: q.entity,
            filter: filter(q.filter),
            order: order_by(q.order),
            limit: q.limit,
        };
        match q.offset {
            0 => ask!(Request::DataSelect(query), Rows, "data.select")
                .and_then(|rows| parse_json(&rows)),
            offset => ask!(
                Request::DataSelectPage((query, offset)),
                Rows,
                "data.select-page"
            )
            .and_then(|rows| parse_json(&rows)),
        }
    }

    fn aggregate(&mut self, q: h::AggregateQuery) -> Result<Value, CapError> {
        let columns = q
            .columns
            .into_iter()
            .map(|c| data::AggregateColumn {
                name: c.name,
                function: match c.func {
                    codeai_ir::AggFunc::Count => data::AggFunc::Count,
                    codeai_ir::AggFunc::Sum => data::AggFunc::Sum,
                    codeai_ir::AggFunc::Avg => data::AggFunc::Avg,
                    codeai_ir::AggFunc::Min => data::AggFunc::Min,
                    codeai_ir::AggFunc::Max => data::AggFunc::Max,
                },
                field: c.field,
            })
            .collect();
        let query = data::AggregateQuery {
            entity: q.entity,
            columns,
            filter: filter(q.filter),
            group_by: q.group_by,
            order: order_by(q.order),
            limit: q.limit,
        };
        ask!(Request::DataAggregate(query), Rows, "data.aggregate")
            .and_then(|rows| parse_json(&rows))
    }

    fn count(&mut self, entity: &str, f: Option<h::Filter>) -> Result<u64, CapError> {
        ask!(
            Request::DataCount((entity.to_string(), filter(f))),
            Count,
            "data.count"
        )
    }

    fn delete(&mut self, entity: &str, f: Option<h::Filter>) -> Result<u64, CapError> {
        ask!(
            Request::DataDelete((entity.to_string(), filter(f))),
            Count,
            "data.delete"
        )
    }

    fn update(
        &mut self,
        entity: &str,
        f: Option<h::Filter>,
        set: Vec<h::Assign>,
    ) -> Result<u64, CapError> {
        let set: Vec<data::Assignment> = set
            .into_iter()
            .map(|a| match a {
                h::Assign::Set(field, v) => data::Assignment {
                    field,
                    value: data::NewValue::Set(json(&v)),
                },
                h::Assign::Add(field, n) => data::Assignment {
                    field,
                    value: data::NewValue::Add(n),
                },
            })
            .collect();
        ask!(
            Request::DataUpdate((entity.to_string(), filter(f), set)),
            Count,
            "data.update"
        )
    }

    fn insert(&mut self, entity: &str, rows: Value) -> Result<u64, CapError> {
        ask!(
            Request::DataInsert((entity.to_string(), json(&rows))),
            Count,
            "data.insert"
        )
    }

    fn upsert(&mut self, entity: &str, rows: Value, keys: &[String]) -> Result<u64, CapError> {
        ask!(
            Request::DataUpsert((entity.to_string(), json(&rows), keys.to_vec())),
            Count,
            "data.upsert"
        )
    }

    fn maintain(
        &mut self,
        op: codeai_ir::MaintenanceOp,
        entity: Option<&str>,
    ) -> Result<String, CapError> {
        let op = match op {
            codeai_ir::MaintenanceOp::Vacuum => data::MaintenanceOp::Vacuum,
            codeai_ir::MaintenanceOp::Analyze => data::MaintenanceOp::Analyze,
            codeai_ir::MaintenanceOp::Reindex => data::MaintenanceOp::Reindex,
        };
        ask!(
            Request::DataMaintain((op, entity.map(str::to_string))),
            Summary,
            "data.maintain"
        )
    }

    fn call(&mut self, request: h::CallRequest) -> Result<h::CallResponse, CapError> {
        match call(&Request::HttpCall(call_request(&request))) {
            Response::Called(r) => call_response(r),
            _ => Err(unexpected("http.call")),
        }
    }

    fn call_many(
        &mut self,
        requests: Vec<h::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<h::CallResponse, CapError>> {
        let n = requests.len();
        let requests: Vec<http::CallRequest> = requests.iter().map(call_request).collect();
        match call(&Request::HttpCallMany((requests, concurrency))) {
            Response::CalledMany(all) => all.into_iter().map(call_response).collect(),
            _ => (0..n).map(|_| Err(unexpected("http.call-many"))).collect(),
        }
    }

    fn send_email(&mut self, m: h::EmailMessage) -> Result<h::Delivery, CapError> {
        let message = email::Message {
            to: m.to,
            subject: m.subject,
            template: m.template,
            data: json(&m.data),
            attachments: m.attachments,
        };
        ask!(Request::EmailSend(message), Delivered, "email.send").map(delivery)
    }

    fn post_slack(
        &mut self,
        channel: &str,
        template: Option<&str>,
        data: Value,
    ) -> Result<h::Delivery, CapError> {
        let request = Request::SlackPost((
            channel.to_string(),
            template.map(str::to_string),
            json(&data),
        ));
        ask!(request, Delivered, "slack.post").map(delivery)
    }

    fn render_report(
        &mut self,
        template: &str,
        data: Value,
        format: codeai_ir::ReportFormat,
    ) -> Result<h::Rendered, CapError> {
        let request =
            Request::ReportRender((template.to_string(), json(&data), report_format(format)));
        let r = ask!(request, Rendered, "report.render")?;
        Ok(h::Rendered {
            id: r.id,
            format,
            size: r.size,
            name: r.name,
        })
    }

    fn delete_report(&mut self, id: &str) -> Result<bool, CapError> {
        ask!(
            Request::ReportDelete(id.to_string()),
            Deleted,
            "report.delete"
        )
    }

    fn emit_event(&mut self, name: &str, payload: Value) -> Result<(), CapError> {
        ask!(
            Request::EventsEmit((name.to_string(), json(&payload))),
            Done,
            "events.emit"
        )
    }

    fn state_get(&mut self, key: &str) -> Option<Value> {
        match call(&Request::StateGet(key.to_string())) {
            Response::Value(text) => text.and_then(|text| serde_json::from_str(&text).ok()),
            _ => None,
        }
    }

    fn state_set(&mut self, key: &str, value: Value) -> Result<(), CapError> {
        ask!(
            Request::StateSet((key.to_string(), json(&value))),
            Done,
            "state.set"
        )
    }

    fn log(&mut self, level: codeai_ir::LogLevel, message: &str) {
        let level = match level {
            codeai_ir::LogLevel::Debug => log::Level::Debug,
            codeai_ir::LogLevel::Info => log::Level::Info,
            codeai_ir::LogLevel::Warn => log::Level::Warn,
            codeai_ir::LogLevel::Error => log::Level::Error,
        };
        call(&Request::LogWrite((level, message.to_string())));
    }

    fn step(&mut self, name: &str) {
        // Its own import: every step of every job calls it, and a direct call costs ~120 ns less
        // than a request through `calls` (BENCHMARKS.md, "Two imports instead of 24").
        log::step(name);
    }

    fn now(&mut self) -> h::Instant {
        instant_of(&Request::ClockNow, "clock.now")
    }

    fn local(&mut self, unix_ms: i64) -> h::Instant {
        instant_of(&Request::ClockLocal(unix_ms), "clock.local")
    }

    fn period(&mut self, unit: h::PeriodUnit, offset: i32) -> h::Period {
        let unit = match unit {
            h::PeriodUnit::Day => clock::PeriodUnit::Day,
            h::PeriodUnit::Week => clock::PeriodUnit::Week,
            h::PeriodUnit::Month => clock::PeriodUnit::Month,
            h::PeriodUnit::Year => clock::PeriodUnit::Year,
        };
        match call(&Request::ClockPeriod((unit, offset))) {
            Response::Period(p) => h::Period {
                start: instant(p.start),
                end: instant(p.end),
                label: p.label,
            },
            _ => panic!("{}", unexpected("clock.period")),
        }
    }
}

/// `order by` keys, (field, descending), as WIT records.
fn order_by(order: Vec<(String, bool)>) -> Vec<data::OrderBy> {
    order
        .into_iter()
        .map(|(field, descending)| data::OrderBy { field, descending })
        .collect()
}
