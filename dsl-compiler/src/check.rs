//! The checker: resolves the names and types of a parsed file and lowers every job to a
//! [`codeai_ir::Program`] (what the guest runs) and a [`codeai_ir::Manifest`] (what the host reads).
//!
//! It never stops at the first problem: every error is collected as a [`Diagnostic`] with the
//! span of the offending text and, where one helps, a hint ("did you mean `Product`?"). When
//! errors were reported, the returned jobs are a best-effort lowering (unresolved parts become
//! `null`) that is good for tooling but must not be emitted.
//!
//! The work is split by topic:
//! - `decls`: entities, integrations, templates, events and queues, checked once per file;
//! - `job`: the fields of a job (schedule, timezone, queue, retry…) and its manifest;
//! - `step`: the steps of a job and their kinds;
//! - `expr`: expressions, string interpolation, `where` filters, updates and scopes;
//! - `shape`: what is known of a binding's value (an object's fields, an entity's rows), so
//!   that reading a field it cannot have fails the build;
//! - `suggest`: edit distance and "did you mean" hints.

mod decls;
mod expr;
mod input;
mod job;
mod shape;
mod step;
mod suggest;
#[cfg(test)]
mod tests;
mod types;

use crate::ast::{self, Span};
use crate::diagnostic::{line_col, Diagnostic};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// One job, checked and lowered.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedJob {
    pub program: codeai_ir::Program,
    pub manifest: codeai_ir::Manifest,
}

/// Checks a parsed file and lowers each of its jobs.
///
/// `source` is the text `file` was parsed from (for the source hash and for locating text inside
/// string literals); `source_file` is the name recorded in manifests and step locations.
pub fn check(
    file: &ast::File,
    source: &str,
    source_file: &str,
) -> (Vec<CheckedJob>, Vec<Diagnostic>) {
    let mut cx = Cx {
        source,
        source_file,
        diagnostics: Vec::new(),
    };
    let decls = decls::collect(file, &mut cx);

    let mut jobs = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for item in &file.items {
        let ast::Item::Job(job) = item else { continue };
        if let Some(first) = seen.get(job.name.node.as_str()) {
            let hint = cx.first_declared(&job.name.node, *first);
            cx.error_hint(
                job.name.span,
                format!("duplicate job `{}`", job.name.node),
                hint,
            );
            continue;
        }
        seen.insert(&job.name.node, job.name.span);
        // The job's own text: editing another job of the file leaves this one's component (and
        // so its version on a host) as it was. What it uses is in its program and manifest.
        let text = source.get(job.span.start..job.span.end).unwrap_or(source);
        let source_hash = format!("{:x}", Sha256::digest(text.as_bytes()));
        let checked = job::check_job(job, &decls, &mut cx, &source_hash);
        readable_depth(&checked.program, job, &mut cx);
        jobs.push(checked);
    }
    for action in &decls.actions {
        job::check_action(action, &decls, &mut cx);
    }
    trigger_cycles(file, &jobs, &mut cx);
    // An action's steps are checked at every call and once on their own: one report each.
    let mut reported = std::collections::HashSet::new();
    cx.diagnostics
        .retain(|d| reported.insert((d.span, d.message.clone())));
    (jobs, cx.diagnostics)
}

/// A job that runs on an event (`trigger: on(E)`) and, through the events it and the jobs it
/// sets off emit, sets off `E` again would run forever: an error at its `trigger:`, naming the
/// chain. (Across files the host bounds the depth of such chains at run time.)
fn trigger_cycles(file: &ast::File, jobs: &[CheckedJob], cx: &mut Cx<'_>) {
    let emitted = |m: &codeai_ir::Manifest| -> Vec<String> {
        m.events.iter().map(|e| e.name.clone()).collect()
    };
    for job in jobs {
        let Some(start) = &job.manifest.trigger else {
            continue;
        };
        // Breadth first over events, remembering how each was reached: (job, event emitted).
        let mut reached: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let mut frontier: Vec<(String, Vec<(String, String)>)> = emitted(&job.manifest)
            .into_iter()
            .map(|e| (e.clone(), vec![(job.manifest.name.clone(), e)]))
            .collect();
        let mut cycle = None;
        while let Some((event, path)) = frontier.pop() {
            if &event == start {
                cycle = Some(path);
                break;
            }
            if reached.insert(event.clone(), path.clone()).is_some() {
                continue;
            }
            for next in jobs
                .iter()
                .filter(|j| j.manifest.trigger.as_deref() == Some(event.as_str()))
            {
                for e in emitted(&next.manifest) {
                    let mut longer = path.clone();
                    longer.push((next.manifest.name.clone(), e.clone()));
                    frontier.push((e, longer));
                }
            }
        }
        let Some(path) = cycle else { continue };
        let span = file
            .items
            .iter()
            .filter_map(|i| match i {
                ast::Item::Job(j) if j.name.node == job.manifest.name => Some(j),
                _ => None,
            })
            .flat_map(|j| j.fields.iter())
            .find(|f| f.key.node == "trigger")
            .map_or(Span::default(), |f| f.key.span);
        let chain: Vec<String> = path
            .iter()
            .map(|(j, e)| format!("`{j}` emits `{e}`"))
            .collect();
        cx.error_hint(
            span,
            format!(
                "job `{}` runs on `{start}` and sets it off again: {}",
                job.manifest.name,
                chain.join(", then ")
            ),
            "a chain of triggers must end: trigger on another event, or do not emit this one",
        );
    }
}

/// The state shared by every part of the checker: the source and the diagnostics found so far.
pub(crate) struct Cx<'s> {
    source: &'s str,
    source_file: &'s str,
    diagnostics: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(span, message));
    }

    fn error_hint(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(span, message).with_hint(hint));
    }

    /// An error with an optional hint.
    fn error_maybe(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let d = Diagnostic::error(span, message);
        self.diagnostics.push(match hint {
            Some(h) => d.with_hint(h),
            None => d,
        });
    }

    fn warning(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(span, message).with_hint(hint));
    }

    /// `file:line:col` of a span's start.
    fn location(&self, span: Span) -> String {
        let (line, col) = line_col(self.source, span.start);
        format!("{}:{line}:{col}", self.source_file)
    }

    /// The hint for a duplicate: "`Product` is first declared on line 10".
    fn first_declared(&self, name: &str, first: Span) -> String {
        let (line, _) = line_col(self.source, first.start);
        format!("`{name}` is first declared on line {line}")
    }

    /// The source text of a span (empty if the span is out of range).
    fn text(&self, span: Span) -> &str {
        self.source.get(span.range()).unwrap_or("")
    }

    /// Reports every name that appears twice; `what` is "entity", "field", …
    fn check_unique<'i>(&mut self, what: &str, names: impl IntoIterator<Item = &'i ast::Ident>) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for name in names {
            match seen.get(name.node.as_str()) {
                Some(first) => {
                    let hint = self.first_declared(&name.node, *first);
                    self.error_hint(name.span, format!("duplicate {what} `{}`", name.node), hint);
                }
                None => {
                    seen.insert(&name.node, name.span);
                }
            }
        }
    }
}

/// Reports a job whose program nests deeper than the runtime reads
/// ([`codeai_ir::MAX_PROGRAM_DEPTH`]): at the step that goes deepest, or at the job's name when
/// no step does (its input's defaults). The parser's nesting limit bounds the depth of what it
/// builds, but not in the program's own terms: an operand of an operator is two levels of the
/// program, an argument of a call or a field of an object literal three, and a step inside a
/// block more.
fn readable_depth(program: &codeai_ir::Program, job: &ast::Job, cx: &mut Cx) {
    fn depth(value: &impl serde::Serialize) -> usize {
        serde_json::to_vec(value).map_or(0, |text| codeai_ir::json_depth(&text))
    }
    let whole = depth(program);
    if whole <= codeai_ir::MAX_PROGRAM_DEPTH {
        return;
    }
    let why = format!(
        "too deeply to run: the job's compiled program is {whole} levels deep, and the runtime \
         reads {} at most",
        codeai_ir::MAX_PROGRAM_DEPTH
    );
    let hint = "split the deepest expression into steps that bind its parts (`as:`), or \
                shorten a long chain of operators, nested calls or nested object literals";
    // The program holds its steps two levels down (`{"steps": [step]}`).
    let deepest = program
        .steps
        .iter()
        .zip(&job.steps)
        .map(|(step, ast)| (depth(step) + 2, ast))
        .max_by_key(|(levels, _)| *levels);
    match deepest {
        Some((levels, step)) if levels == whole => cx.error_hint(
            step.name.span,
            format!(
                "step `{}` of job `{}` nests {why}",
                step.name.node, job.name.node
            ),
            hint,
        ),
        _ => cx.error_hint(
            job.name.span,
            format!("the input defaults of job `{}` nest {why}", job.name.node),
            hint,
        ),
    }
}
