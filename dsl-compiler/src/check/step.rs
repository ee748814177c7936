//! The steps of a job: which fields a step may have, its one kind (query, action, call,
//! template, send, emit, state, compute, log — or `for_each` around one of them), its policies
//! and its binding, lowered to [`codeai_ir::Step`].

use super::decls::EntityInfo;
use super::job::JobCx;
use super::shape::{Read, Shape};
use super::suggest::{did_you_mean, hint_or_list, list};
use crate::ast::{self, Span, StepValue};
use codeai_ir::{self as ir, LogLevel, MaintenanceOp, Policy, ReportFormat, StepKind};
use std::collections::HashMap;

/// The fields that give a step its kind (`for_each` wraps one of the others).
const KINDS: &[&str] = &[
    "query", "action", "call", "template", "send", "for_each", "emit", "state", "compute", "log",
];

/// Every field a step may have.
const STEP_FIELDS: &[&str] = &[
    "query", "action", "call", "template", "send", "for_each", "emit", "state", "compute", "log",
    "as", "on_empty", "on_fail", "timeout", "item", "parallel", "data", "format", "when",
    "paginate",
];

/// How many action calls one job may expand (an action's steps are lowered at every call, so
/// actions calling each other twice over would otherwise grow the program exponentially).
const MAX_ACTION_CALLS: usize = 256;

const MAX_PARALLEL: i64 = codeai_ir::limits::MAX_PARALLEL as i64;

/// The most pages one paginated call step may fetch.
const MAX_PAGES: i64 = 1_000;

/// A step's fields by name (the first of each; repeats are reported).
struct Fields<'a> {
    list: Vec<&'a ast::StepField>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a ast::StepField> {
        self.list.iter().copied().find(|f| f.key.node == key)
    }
}

/// An identifier value (`format: pdf`, `as: orders`), written bare.
fn ident_value(value: &StepValue) -> Option<ast::Ident> {
    match value {
        StepValue::Ident(i) => Some(i.clone()),
        StepValue::Expr(ast::Expr {
            kind: ast::ExprKind::Ident(n),
            span,
        }) => Some(ast::Ident::new(n.clone(), *span)),
        _ => None,
    }
}

impl JobCx<'_, '_> {
    /// `skip("…")`, `abort("…")` (the text may interpolate the step's names) or `continue`, of
    /// `key` (`on_empty`, `on_fail`) on step `step`. Without a text, the reason says which step
    /// and what happened: ``step `orders` found nothing (`on_empty: skip`)``.
    fn policy(&mut self, p: &ast::PolicyDef, key: &str, step: &str) -> Policy {
        let (what, more) = if key == "on_empty" {
            ("found nothing", "")
        } else {
            ("failed", "; its error is in the log")
        };
        let mut text = |reason: &Option<ast::Spanned<String>>, word: &str| match reason {
            Some(s) => self.string(&s.node, s.span),
            None => ir::Expr::Str(format!("step `{step}` {what} (`{key}: {word}`{more})")),
        };
        match p {
            ast::PolicyDef::Skip(reason) => Policy::Skip(text(reason, "skip")),
            ast::PolicyDef::Abort(reason) => Policy::Abort(text(reason, "abort")),
            ast::PolicyDef::Continue => Policy::Continue,
        }
    }

    /// Checks and lowers the steps of a job, in order.
    pub(super) fn steps(&mut self, job: &ast::Job) -> Vec<ir::Step> {
        self.steps_of(&job.steps)
    }

    /// Checks and lowers a block of steps (a job's, an action's or a `for_each`'s), in order;
    /// their bindings are added to the scope.
    pub(super) fn steps_of(&mut self, steps: &[ast::Step]) -> Vec<ir::Step> {
        self.cx.check_unique("step", steps.iter().map(|s| &s.name));
        // Every `as:` of the block, so that a use before its step is reported as such.
        let mut binders: HashMap<String, (String, Span)> = HashMap::new();
        for step in steps {
            for field in step.fields.iter().filter(|f| f.key.node == "as") {
                let Some(name) = ident_value(&field.value) else {
                    continue;
                };
                if let Some((other, first)) = binders.get(&name.node) {
                    let (line, _) = crate::diagnostic::line_col(self.cx.source, first.start);
                    let message = format!("`{}` is already bound by step `{other}`", name.node);
                    self.cx.error_hint(
                        name.span,
                        message,
                        format!(
                            "the first `as: {}` is on line {line}; give this binding another name",
                            name.node
                        ),
                    );
                } else if self.scope.contains(&name.node) {
                    self.cx.error_hint(
                        name.span,
                        format!("`as: {}` would hide the name `{}`", name.node, name.node),
                        "the input, a parameter or an earlier binding has this name: give this binding another name",
                    );
                } else {
                    binders.insert(name.node.clone(), (step.name.node.clone(), name.span));
                }
            }
        }
        self.later = binders
            .iter()
            .map(|(name, (step, _))| (name.clone(), step.clone()))
            .collect();

        let mut out = Vec::new();
        for step in steps {
            let lowered = self.step(step);
            if let Some(bind) = &lowered.bind {
                if binders.get(bind).is_some_and(|(s, _)| *s == step.name.node) {
                    self.later.remove(bind);
                    let shape = self.step_shape(step);
                    self.bind(bind, shape, false);
                }
            }
            out.push(lowered);
        }
        out
    }

    fn step(&mut self, step: &ast::Step) -> ir::Step {
        // Known, unrepeated fields.
        let mut fields = Fields { list: Vec::new() };
        for field in &step.fields {
            let key = field.key.node.as_str();
            if !STEP_FIELDS.contains(&key) {
                let hint = did_you_mean(key, STEP_FIELDS.iter().copied())
                    .unwrap_or_else(|| format!("a step is one of {}", list(KINDS)));
                self.cx
                    .error_hint(field.key.span, format!("unknown step field `{key}`"), hint);
            } else if let Some(first) = fields.get(key) {
                let (line, _) = crate::diagnostic::line_col(self.cx.source, first.key.span.start);
                self.cx.error_hint(
                    field.key.span,
                    format!("`{key}` is set twice in step `{}`", step.name.node),
                    format!("the first `{key}` is on line {line}"),
                );
            } else {
                fields.list.push(field);
            }
        }

        let for_each = fields.get("for_each");
        let body: Vec<&ast::StepField> = fields
            .list
            .iter()
            .copied()
            .filter(|f| KINDS.contains(&f.key.node.as_str()) && f.key.node != "for_each")
            .collect();
        if body.len() > 1 {
            self.cx.error_hint(
                body[1].key.span,
                format!(
                    "step `{}` has more than one kind: `{}` and `{}`",
                    step.name.node, body[0].key.node, body[1].key.node
                ),
                "a step does one thing: split it into two steps",
            );
        }

        // `for_each:` and its companions.
        let items = for_each.map(|f| match &f.value {
            StepValue::Expr(e) => self.expr(e),
            _ => {
                self.cx
                    .error(f.span, "`for_each` expects a list, like `for_each: orders`");
                ir::Expr::Null
            }
        });
        let item = match fields.get("item") {
            Some(f) => match ident_value(&f.value) {
                Some(name) => {
                    if for_each.is_none() {
                        self.cx
                            .error(f.key.span, "`item:` only applies to a `for_each` step");
                    }
                    name.node
                }
                None => {
                    self.cx
                        .error(f.span, "`item` expects a name, like `item: order`");
                    "item".to_string()
                }
            },
            None => "item".to_string(),
        };
        let parallel = match fields.get("parallel") {
            Some(f) => {
                if for_each.is_none() {
                    self.cx
                        .error(f.key.span, "`parallel:` only applies to a `for_each` step");
                }
                match &f.value {
                    StepValue::Expr(ast::Expr {
                        kind: ast::ExprKind::Int(n),
                        ..
                    }) if (1..=MAX_PARALLEL).contains(n) => *n as u32,
                    _ => {
                        self.cx.error(
                            f.span,
                            format!("`parallel` expects an integer from 1 to {MAX_PARALLEL}"),
                        );
                        1
                    }
                }
            }
            None => 1,
        };

        // `when:` sees what the step itself sees, the item of a `for_each` aside.
        let when = fields.get("when").map(|f| match &f.value {
            StepValue::Expr(e) => {
                let before = self.cx.diagnostics.len();
                let condition = self.condition(e, "`when:`");
                // Naming the item: the user meant a condition per item.
                if for_each.is_some() {
                    let unknown = format!("unknown name `{item}`");
                    for d in &mut self.cx.diagnostics[before..] {
                        if d.message == unknown {
                            d.hint = Some(format!(
                                "`when:` is checked once, before the step's items; to skip some \
                                 items, give the step a `steps {{ … }}` block whose step has \
                                 `when:` on `{item}`"
                            ));
                        }
                    }
                }
                condition
            }
            _ => {
                self.cx.error(
                    f.span,
                    "`when` expects a condition, like `when: count(rows) > 0`",
                );
                ir::Condition {
                    expr: ir::Expr::Bool(true),
                    text: String::new(),
                }
            }
        });

        // The kind, with the item variable in scope inside a `for_each`.
        if let Some(f) = for_each {
            let shape = match &f.value {
                StepValue::Expr(e) => self.shape_of(e).item(),
                _ => Shape::Unknown,
            };
            self.bind(&item, shape, true);
        }
        let mut kind = match (&step.body, body.first()) {
            (Some(block), other) => {
                if let Some(field) = other {
                    self.cx.error_hint(
                        field.key.span,
                        format!(
                            "step `{}` has both `steps {{ … }}` and `{}`",
                            step.name.node, field.key.node
                        ),
                        "put the work inside the `steps { … }` block",
                    );
                }
                if for_each.is_none() {
                    self.cx.error_hint(
                        block.span,
                        "`steps { … }` inside a step only applies to a `for_each` step",
                        "add `for_each: list` to run the steps once per item, or move them up into the job's steps",
                    );
                }
                if block.node.is_empty() {
                    self.cx.error_hint(
                        block.span,
                        format!("the `steps` of step `{}` are empty", step.name.node),
                        "add at least one step",
                    );
                }
                let (scope, shapes) = (self.scope.clone(), self.shapes.clone());
                let later = std::mem::take(&mut self.later);
                let steps = self.steps_of(&block.node);
                (self.scope, self.shapes) = (scope, shapes);
                self.later = later;
                StepKind::Block {
                    action: None,
                    bind: Vec::new(),
                    steps,
                }
            }
            (None, Some(field)) => self.kind(field, &fields, step),
            (None, None) => {
                if for_each.is_some() && !step.broken {
                    self.cx.error_hint(
                        step.name.span,
                        format!("`for_each` step `{}` has nothing to do for each item", step.name.node),
                        "add one of `action`, `call`, `send`, `template`, `emit`, `state`, `compute` or `log`",
                    );
                } else if !step.broken && fields.list.is_empty() {
                    // An empty step is a placeholder while a job is being written (the spec's
                    // skeleton has one): it builds, and runs as a no-op.
                    self.cx.warning(
                        step.name.span,
                        format!("step `{}` does nothing", step.name.node),
                        format!("give it one of {}", list(KINDS)),
                    );
                } else if !step.broken {
                    self.cx.error_hint(
                        step.name.span,
                        format!("step `{}` does nothing", step.name.node),
                        format!("give it one of {}", list(KINDS)),
                    );
                }
                StepKind::Compute {
                    value: ir::Expr::Null,
                }
            }
        };
        if let Some(f) = fields.get("paginate") {
            let lowered = self.paginate(f, &kind);
            if let StepKind::Call { paginate, .. } = &mut kind {
                *paginate = lowered;
            }
        }
        if for_each.is_some() {
            self.unbind(true);
            self.past_items.push((item.clone(), step.name.node.clone()));
        }

        // Fields that belong to a `template` step.
        if !matches!(kind, StepKind::Report { .. }) {
            for key in ["data", "format"] {
                if let Some(f) = fields.get(key) {
                    self.cx.error_hint(
                        f.key.span,
                        format!("`{key}:` only applies to a `template` step"),
                        "the data of a message goes inside `send: email(…) { data: … }`",
                    );
                }
            }
        }

        let timeout_ms = fields.get("timeout").and_then(|f| match &f.value {
            StepValue::Duration(d) => {
                if !matches!(kind, StepKind::Call { .. }) {
                    self.cx
                        .error(f.key.span, "`timeout:` only applies to a `call` step");
                    None
                } else if d.node.millis == 0 {
                    self.cx
                        .error(d.span, "a call timeout must be greater than 0");
                    None
                } else {
                    Some(d.node.millis)
                }
            }
            _ => {
                self.cx
                    .error(f.span, "`timeout` expects a duration, like `timeout: 60s`");
                None
            }
        });

        let policy_of = |this: &mut Self, key: &str| {
            fields.get(key).and_then(|f| match &f.value {
                StepValue::Policy(p) => Some(this.policy(&p.node, key, &step.name.node)),
                _ => {
                    this.cx.error(
                        f.span,
                        format!(
                            "`{key}` expects `skip(\"reason\")`, `abort(\"reason\")` or `continue`"
                        ),
                    );
                    None
                }
            })
        };
        let on_empty = policy_of(self, "on_empty");
        let on_fail = policy_of(self, "on_fail");
        if on_empty.is_some()
            && for_each.is_none()
            && matches!(
                kind,
                StepKind::Log { .. }
                    | StepKind::Emit { .. }
                    | StepKind::SetState { .. }
                    | StepKind::Email { .. }
                    | StepKind::Slack { .. }
                    | StepKind::Report { .. }
                    | StepKind::Maintain { .. }
                    | StepKind::Fail { .. }
                    | StepKind::Skip { .. }
            )
        {
            if let Some(f) = fields.get("on_empty") {
                self.cx.error(
                    f.key.span,
                    "`on_empty:` only applies to a step that returns rows, a count or a list",
                );
            }
        }

        let bind = fields.get("as").and_then(|f| match ident_value(&f.value) {
            Some(name) => Some(name.node),
            None => {
                self.cx
                    .error(f.span, "`as` expects a name, like `as: orders`");
                None
            }
        });

        let kind = match items {
            Some(items) => StepKind::ForEach {
                items,
                item,
                parallel,
                body: Box::new(kind),
            },
            None => kind,
        };
        ir::Step {
            name: step.name.node.clone(),
            location: self.cx.location(step.name.span),
            kind,
            bind,
            on_empty,
            on_fail,
            timeout_ms,
            when,
        }
    }

    /// `paginate: { next: page.…, param: "…", items: page.…, max_pages: N }` of a call step:
    /// `next` and `items` see the response as `page`; `param` is a parameter of the operation.
    fn paginate(&mut self, f: &ast::StepField, kind: &StepKind) -> Option<ir::Paginate> {
        const USAGE: &str = "e.g. `paginate: { next: page.next_cursor, param: \"cursor\", items: page.data, max_pages: 20 }`";
        let StepKind::Call {
            integration,
            operation,
            ..
        } = kind
        else {
            self.cx
                .error(f.key.span, "`paginate:` only applies to a `call` step");
            return None;
        };
        let StepValue::Expr(ast::Expr {
            kind: ast::ExprKind::Object(entries),
            ..
        }) = &f.value
        else {
            self.cx
                .error_hint(f.span, "`paginate` expects an object", USAGE);
            return None;
        };
        self.cx.check_unique("key", entries.iter().map(|(k, _)| k));
        let (mut next, mut param, mut items, mut max_pages) = (None, None, None, 10);
        self.bind("page", Shape::Unknown, false);
        for (key, value) in entries {
            match key.node.as_str() {
                "next" => next = Some(self.expr(value)),
                "items" => items = Some(self.expr(value)),
                "param" => match &value.kind {
                    ast::ExprKind::Str(name) => param = Some((name.clone(), value.span)),
                    _ => self.cx.error_hint(
                        value.span,
                        "`param` names the operation's parameter in quotes",
                        "e.g. `param: \"cursor\"`",
                    ),
                },
                "max_pages" => match value.kind {
                    ast::ExprKind::Int(n) if (1..=MAX_PAGES).contains(&n) => max_pages = n as u32,
                    _ => self.cx.error(
                        value.span,
                        format!("`max_pages` expects an integer from 1 to {MAX_PAGES}"),
                    ),
                },
                other => {
                    let hint =
                        hint_or_list(other, "its keys", &["next", "param", "items", "max_pages"]);
                    self.cx
                        .error_hint(key.span, format!("`paginate` has no key `{other}`"), hint);
                }
            }
        }
        self.unbind(false);
        let (Some(next), Some((param, span))) = (next, param) else {
            self.cx
                .error_hint(f.span, "`paginate` needs `next` and `param`", USAGE);
            return None;
        };
        let op = self
            .decls
            .integration(integration)
            .and_then(|i| i.operations.iter().find(|o| &o.name == operation));
        if let Some(op) = op {
            if !op.params.iter().any(|p| p.name == param) {
                let names: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
                let hint = hint_or_list(&param, "its parameters", &names);
                self.cx.error_hint(
                    span,
                    format!("operation `{integration}.{operation}` has no parameter `{param}`"),
                    hint,
                );
            }
        }
        Some(ir::Paginate {
            next,
            param,
            items,
            max_pages,
        })
    }

    /// Lowers the kind field of a step.
    fn kind(&mut self, field: &ast::StepField, fields: &Fields<'_>, step: &ast::Step) -> StepKind {
        let key = field.key.node.as_str();
        match (key, &field.value) {
            ("query", StepValue::Query(q)) => self.query(q),
            ("action", StepValue::Action(a)) => self.action(a),
            ("call", StepValue::Call(c)) => {
                self.call_step(c, fields.get("paginate").and_then(paginated_param))
            }
            ("send", StepValue::Send(s)) => self.send(s),
            ("emit", StepValue::Emit { event, payload }) => self.emit(event, payload.as_ref()),
            ("log", StepValue::Log { level, message }) => {
                let level = match level.as_ref().map(|l| l.node.as_str()) {
                    None | Some("info") => LogLevel::Info,
                    Some("debug") => LogLevel::Debug,
                    Some("warn") => LogLevel::Warn,
                    Some("error") => LogLevel::Error,
                    Some(other) => {
                        let span = level.as_ref().map(|l| l.span).unwrap_or(field.span);
                        let hint =
                            hint_or_list(other, "the levels", &["debug", "info", "warn", "error"]);
                        self.cx
                            .error_hint(span, format!("unknown log level `{other}`"), hint);
                        LogLevel::Info
                    }
                };
                StepKind::Log {
                    level,
                    message: self.expr(message),
                }
            }
            ("template", StepValue::Expr(e)) => self.report(e, fields),
            ("state", StepValue::Expr(e)) => match &e.kind {
                ast::ExprKind::Object(entries) => {
                    self.usage.caps.insert("state");
                    StepKind::SetState {
                        values: self.object(entries),
                    }
                }
                _ => {
                    self.cx.error(
                        e.span,
                        "`state` expects an object, like `state: { last_sync: now() }`",
                    );
                    StepKind::SetState { values: Vec::new() }
                }
            },
            ("compute", StepValue::Expr(e)) => StepKind::Compute {
                value: self.expr(e),
            },
            _ => {
                self.cx.error(
                    field.span,
                    format!(
                        "step `{}`: `{key}` has a value of the wrong kind",
                        step.name.node
                    ),
                );
                StepKind::Compute {
                    value: ir::Expr::Null,
                }
            }
        }
    }

    /// A built-in entity (the platform's executions and reports) is read and deleted from, never
    /// written or maintained by a job.
    fn refuse_builtin(&mut self, info: Option<&EntityInfo>, entity: &ast::Ident, what: &str) {
        if let Some(b) = info.and_then(|e| e.builtin) {
            self.cx.error_hint(
                entity.span,
                format!(
                    "cannot {what} `{}`: it is the platform's table `{}`, which jobs only read \
                     and delete from",
                    entity.node, b.table
                ),
                "the platform writes executions and reports itself",
            );
        }
    }

    /// The fields an `upsert` matches rows on: those of `on [...]`, each the primary key or a
    /// `unique` field and given a value; the primary key when `on` is left out.
    fn upsert_keys(
        &mut self,
        e: &EntityInfo,
        values: &[(ast::Ident, ast::Expr)],
        keys: &[ast::Ident],
        span: Span,
    ) -> Vec<String> {
        if keys.is_empty() {
            return match e.decl.fields.iter().find(|f| f.primary) {
                Some(primary) if values.iter().any(|(f, _)| f.node == primary.name) => {
                    vec![primary.name.clone()]
                }
                Some(primary) => {
                    // Left out, `on` is the primary key, which the row must then give.
                    // A `unique` field the row gives could be the key instead.
                    let unique: Vec<&str> = e
                        .decl
                        .fields
                        .iter()
                        .filter(|f| f.unique && f.ty != codeai_ir::FieldType::Json)
                        .filter(|f| values.iter().any(|(v, _)| v.node == f.name))
                        .map(|f| f.name.as_str())
                        .collect();
                    let hint = match unique.first() {
                        Some(field) => format!(
                            "match on a `unique` field the row gives, e.g. `on [{field}]`, or add \
                             `{}: …` to the row",
                            primary.name
                        ),
                        None => format!(
                            "add `{}: …` to the row, or declare a field the row gives `unique` \
                             and match on it with `on [field]`",
                            primary.name
                        ),
                    };
                    self.cx.error_hint(
                        span,
                        format!(
                            "the upsert gives no value for its key `{}` (the primary key of `{}`, \
                             matched on when `on` is left out)",
                            primary.name,
                            e.name()
                        ),
                        hint,
                    );
                    Vec::new()
                }
                None => {
                    self.cx.error_hint(
                        span,
                        format!(
                            "`upsert {}` needs `on [field]`: the entity has no primary key",
                            e.name()
                        ),
                        "name the field that identifies a row, e.g. `on [sku]`, and declare it `unique`",
                    );
                    Vec::new()
                }
            };
        }
        if let [_, second, ..] = keys {
            self.cx.error_hint(
                second.span,
                "an upsert matches rows on one key field",
                "name the primary key or one `unique` field; keys of several fields are not \
                 supported",
            );
        }
        let mut lowered = Vec::new();
        for key in keys {
            let Some(decl) = e.decl.fields.iter().find(|f| f.name == key.node) else {
                let hint = hint_or_list(&key.node, "its fields", &e.field_names());
                self.cx.error_hint(
                    key.span,
                    format!("entity `{}` has no field `{}`", e.name(), key.node),
                    hint,
                );
                continue;
            };
            if !decl.primary && !decl.unique {
                self.cx.error_hint(
                    key.span,
                    format!(
                        "`{}` is not a key of `{}`: an upsert matches rows on the primary key \
                         or on `unique` fields",
                        key.node,
                        e.name()
                    ),
                    format!(
                        "declare it `{}: … unique` in entity `{}`",
                        key.node,
                        e.name()
                    ),
                );
            }
            if !values.iter().any(|(f, _)| f.node == key.node) {
                self.cx.error_hint(
                    key.span,
                    format!("the upsert gives no value for its key `{}`", key.node),
                    format!("add `{}: …` to the row", key.node),
                );
            }
            lowered.push(key.node.clone());
        }
        lowered
    }

    /// Looks an entity up and records its use.
    fn use_entity(&mut self, name: &ast::Ident) -> Option<usize> {
        self.usage.caps.insert("data");
        match self
            .decls
            .entities
            .iter()
            .position(|e| e.decl.name == name.node)
        {
            Some(i) => {
                self.usage.entities.insert(name.node.clone());
                Some(i)
            }
            None => {
                let hint = hint_or_list(
                    &name.node,
                    "the declared entities",
                    &self.decls.entity_names(),
                );
                self.cx
                    .error_hint(name.span, format!("unknown entity `{}`", name.node), hint);
                None
            }
        }
    }

    fn query(&mut self, q: &ast::Query) -> StepKind {
        let decls = self.decls;
        let entity = self.use_entity(&q.entity).map(|i| &decls.entities[i]);
        let filter = match (entity, &q.filter) {
            (Some(e), Some(f)) => Some(self.filter(f, e)),
            (None, Some(f)) => {
                // Still check the names the values use.
                self.filter_values_only(f);
                None
            }
            _ => None,
        };
        if let Some(agg) = &q.aggregate {
            return self.aggregate(q, agg, entity, filter);
        }
        if q.count {
            if let Some((first, _)) = q.order.first() {
                self.cx.error(first.span, "`count` has no `order by`");
            }
            if let Some(limit) = &q.limit {
                self.cx.error(limit.span, "`count` has no `limit`");
            }
            return StepKind::Count {
                entity: q.entity.node.clone(),
                filter,
            };
        }
        let order = match entity {
            Some(e) => self.order(&q.order, e),
            None => Vec::new(),
        };
        let limit = q.limit.as_ref().map(|l| {
            if let ast::ExprKind::Int(n) = l.kind {
                if n < 1 {
                    self.cx
                        .error(l.span, format!("`limit` must be at least 1, found {n}"));
                }
            }
            self.expr(l)
        });
        let offset = q.offset.as_ref().map(|o| {
            match &o.kind {
                ast::ExprKind::Unary(ast::UnaryOp::Neg, _) => {
                    self.cx.error(o.span, "`offset` cannot be negative");
                }
                ast::ExprKind::Int(_) if q.order.is_empty() => {
                    self.cx.warning(
                        o.span,
                        "`offset` without `order by`: the database may return the rows in any order, so pages can overlap or miss rows",
                        "add `order by` a field that tells the rows apart, e.g. `order by id`",
                    );
                }
                ast::ExprKind::Str(_) | ast::ExprKind::Float(_) | ast::ExprKind::Bool(_) => {
                    self.cx.error_hint(
                        o.span,
                        "`offset` is a whole number of rows",
                        "e.g. `offset 100`, or `offset page * 50`",
                    );
                }
                _ => {}
            }
            self.expr(o)
        });
        StepKind::Query {
            entity: q.entity.node.clone(),
            filter,
            order,
            limit,
            offset,
        }
    }

    /// `query: aggregate E { name: func(field), … } where … group by … order by … limit …`.
    fn aggregate(
        &mut self,
        q: &ast::Query,
        agg: &ast::Aggregate,
        entity: Option<&EntityInfo>,
        filter: Option<ir::Filter>,
    ) -> StepKind {
        use codeai_ir::{AggColumn, AggFunc, FieldType};
        if agg.columns.is_empty() {
            self.cx.error_hint(
                q.entity.span,
                "an aggregate needs at least one column",
                "e.g. `aggregate Order { orders: count(), revenue: sum(total) }`",
            );
        }
        self.cx
            .check_unique("column", agg.columns.iter().map(|(n, _)| n));
        self.cx.check_unique("group field", agg.group_by.iter());
        let mut columns = Vec::new();
        for (name, e) in &agg.columns {
            let ast::ExprKind::Call(func, args) = &e.kind else {
                self.cx.error_hint(
                    e.span,
                    format!("column `{}` is not an aggregate", name.node),
                    "a column is `count()`, `count(field)`, `sum(field)`, `avg(field)`, \
                     `min(field)` or `max(field)`",
                );
                continue;
            };
            let Some(f) = AggFunc::by_name(&func.node) else {
                let hint = hint_or_list(
                    &func.node,
                    "the aggregates",
                    &["count", "sum", "avg", "min", "max"],
                );
                self.cx.error_hint(
                    func.span,
                    format!("unknown aggregate `{}`", func.node),
                    hint,
                );
                continue;
            };
            let field = match (f, args.as_slice()) {
                (AggFunc::Count, []) => None,
                (_, [arg]) => match &arg.kind {
                    ast::ExprKind::Ident(field) => Some((field.clone(), arg.span)),
                    _ => {
                        self.cx.error_hint(
                            arg.span,
                            format!("`{}` takes a field of `{}`", f.name(), q.entity.node),
                            "aggregates compute over the entity's columns, not over values",
                        );
                        continue;
                    }
                },
                _ => {
                    let takes = if f == AggFunc::Count {
                        "no field or one"
                    } else {
                        "one field"
                    };
                    self.cx.error(
                        e.span,
                        format!("`{}` takes {takes}, found {}", f.name(), args.len()),
                    );
                    continue;
                }
            };
            if let (Some(info), Some((field, span))) = (entity, &field) {
                let ident = ast::Ident {
                    node: field.clone(),
                    span: *span,
                };
                if let Some(x) = self.entity_field(info, &ident) {
                    {
                        let numeric = matches!(x.ty, Some(FieldType::Int | FieldType::Float));
                        let ordered = !matches!(
                            x.ty,
                            Some(FieldType::Json | FieldType::Bool | FieldType::Uuid)
                        );
                        let refused = match f {
                            AggFunc::Sum | AggFunc::Avg if !numeric => Some("a number"),
                            AggFunc::Min | AggFunc::Max if !ordered => {
                                Some("a number, a string, a date or a datetime")
                            }
                            _ => None,
                        };
                        if let (Some(wanted), Some(ty)) = (refused, x.ty) {
                            self.cx.error(
                                *span,
                                format!(
                                    "`{}` needs {wanted}; `{field}` is {}",
                                    f.name(),
                                    ty.name()
                                ),
                            );
                        }
                    }
                }
            }
            columns.push(AggColumn {
                name: name.node.clone(),
                func: f,
                field: field.map(|(f, _)| f),
            });
        }
        if let Some(info) = entity {
            for g in &agg.group_by {
                if let Some(x) = self.entity_field(info, g) {
                    if x.ty == Some(FieldType::Json) {
                        self.cx.error(
                            g.span,
                            format!("`{}` is json; rows cannot be grouped by it", g.node),
                        );
                    }
                }
                if let Some((clash, _)) = agg.columns.iter().find(|(n, _)| n.node == g.node) {
                    self.cx.error_hint(
                        clash.span,
                        format!("column `{}` has the name of a group field", clash.node),
                        "each row holds its group's fields under their names; name the column \
                         otherwise",
                    );
                }
            }
        }
        let mut order = Vec::new();
        for (key, descending) in &q.order {
            let known = agg.columns.iter().any(|(n, _)| n.node == key.node)
                || agg.group_by.iter().any(|g| g.node == key.node);
            if !known {
                let mut names: Vec<&str> =
                    agg.columns.iter().map(|(n, _)| n.node.as_str()).collect();
                names.extend(agg.group_by.iter().map(|g| g.node.as_str()));
                let hint = hint_or_list(&key.node, "the columns and group fields", &names);
                self.cx.error_hint(
                    key.span,
                    format!(
                        "`{}` is neither a column nor a group field of the aggregate",
                        key.node
                    ),
                    hint,
                );
            }
            order.push(ir::OrderBy {
                field: key.node.clone(),
                descending: *descending,
            });
        }
        if let Some(offset) = &q.offset {
            self.cx.error_hint(
                offset.span,
                "an aggregate has no `offset`",
                "order the groups and keep the first with `limit`, or `select` the rows to page them",
            );
        }
        let limit = q.limit.as_ref().map(|l| {
            if agg.group_by.is_empty() {
                self.cx.error(
                    l.span,
                    "an aggregate without `group by` has one row: no `limit`",
                );
            }
            self.expr(l)
        });
        StepKind::Aggregate {
            entity: q.entity.node.clone(),
            columns,
            filter,
            group_by: agg.group_by.iter().map(|g| g.node.clone()).collect(),
            order,
            limit,
        }
    }

    /// For a filter on an unknown entity: checks only the right-hand values.
    fn filter_values_only(&mut self, e: &ast::Expr) {
        match &e.kind {
            ast::ExprKind::Binary(ast::BinaryOp::And | ast::BinaryOp::Or, a, b) => {
                self.filter_values_only(a);
                self.filter_values_only(b);
            }
            ast::ExprKind::Unary(ast::UnaryOp::Not, inner) => self.filter_values_only(inner),
            ast::ExprKind::Binary(_, _, right)
                if !matches!(right.kind, ast::ExprKind::Ident(_)) =>
            {
                self.expr(right);
            }
            _ => {}
        }
    }

    fn action(&mut self, a: &ast::Action) -> StepKind {
        let decls = self.decls;
        match a {
            ast::Action::Delete {
                entity,
                filter,
                span,
            } => {
                let info = self.use_entity(entity).map(|i| &decls.entities[i]);
                let lowered = match (info, filter) {
                    (Some(e), Some(f)) => Some(self.filter(f, e)),
                    (None, Some(f)) => {
                        self.filter_values_only(f);
                        None
                    }
                    (_, None) => {
                        self.cx.warning(
                            *span,
                            format!("`delete {}` without `where` deletes every row", entity.node),
                            "add a `where` filter, or `where id != null` if every row is meant",
                        );
                        None
                    }
                };
                StepKind::Delete {
                    entity: entity.node.clone(),
                    filter: lowered,
                }
            }
            ast::Action::Update {
                entity,
                set,
                filter,
                ..
            } => {
                let info = self.use_entity(entity).map(|i| &decls.entities[i]);
                self.refuse_builtin(info, entity, "update");
                let (set, filter) = match info {
                    Some(e) => (
                        self.assignments(set, e),
                        filter.as_ref().map(|f| self.filter(f, e)),
                    ),
                    None => {
                        for (_, v) in set {
                            self.expr(v);
                        }
                        (Vec::new(), None)
                    }
                };
                StepKind::Update {
                    entity: entity.node.clone(),
                    set,
                    filter,
                }
            }
            ast::Action::Insert { entity, values, .. } => {
                let info = self.use_entity(entity).map(|i| &decls.entities[i]);
                self.refuse_builtin(info, entity, "insert into");
                let values = match info {
                    Some(e) => {
                        self.required_given(e, values, entity, "insert");
                        self.insert_values(values, e)
                    }
                    None => values
                        .iter()
                        .map(|(k, v)| (k.node.clone(), self.expr(v)))
                        .collect(),
                };
                StepKind::Insert {
                    entity: entity.node.clone(),
                    values,
                }
            }
            ast::Action::Upsert {
                entity,
                values,
                keys,
                span,
            } => {
                let info = self.use_entity(entity).map(|i| &decls.entities[i]);
                self.refuse_builtin(info, entity, "upsert into");
                let Some(e) = info else {
                    for (_, v) in values {
                        self.expr(v);
                    }
                    return StepKind::Upsert {
                        entity: entity.node.clone(),
                        values: Vec::new(),
                        keys: Vec::new(),
                    };
                };
                // A key left out has its own error.
                if keys
                    .iter()
                    .all(|k| values.iter().any(|(v, _)| v.node == k.node))
                {
                    self.required_given(e, values, entity, "upsert");
                }
                let lowered = self.insert_values(values, e);
                let keys = self.upsert_keys(e, values, keys, *span);
                StepKind::Upsert {
                    entity: entity.node.clone(),
                    values: lowered,
                    keys,
                }
            }
            ast::Action::Maintain { op, entity, .. } => {
                self.usage.caps.insert("data");
                let lowered = match op.node.as_str() {
                    "vacuum" => MaintenanceOp::Vacuum,
                    "analyze" => MaintenanceOp::Analyze,
                    "reindex" => MaintenanceOp::Reindex,
                    other => {
                        let hint = hint_or_list(
                            other,
                            "the operations",
                            &["vacuum", "analyze", "reindex"],
                        );
                        self.cx.error_hint(
                            op.span,
                            format!("unknown maintenance operation `{other}`"),
                            hint,
                        );
                        MaintenanceOp::Analyze
                    }
                };
                if let Some(e) = entity {
                    let info = self.use_entity(e).map(|i| &decls.entities[i]);
                    self.refuse_builtin(info, e, "maintain");
                }
                StepKind::Maintain {
                    op: lowered,
                    entity: entity.as_ref().map(|e| e.node.clone()),
                }
            }
            ast::Action::Proc { name, args, span } => {
                if let Some(kind) = self.user_action(name, args, *span) {
                    return kind;
                }
                let lowered: Vec<ir::Expr> = args.iter().map(|a| self.expr(a)).collect();
                if let "fail" | "skip" = name.node.as_str() {
                    if lowered.len() != 1 {
                        self.cx.error_hint(
                            *span,
                            format!(
                                "`{}` takes 1 argument (the {}), found {}",
                                name.node,
                                if name.node == "fail" {
                                    "message"
                                } else {
                                    "reason"
                                },
                                lowered.len()
                            ),
                            format!("write it like `action: {}(\"…\")`", name.node),
                        );
                    }
                    let text = lowered.into_iter().next().unwrap_or(ir::Expr::Null);
                    return if name.node == "fail" {
                        StepKind::Fail { message: text }
                    } else {
                        StepKind::Skip { reason: text }
                    };
                }
                if name.node != "delete_report" {
                    let mut names = vec!["delete_report", "fail", "skip"];
                    names.extend(decls.actions.iter().map(|a| a.name.node.as_str()));
                    let hint = did_you_mean(&name.node, names.iter().copied()).unwrap_or_else(|| {
                        "actions are `delete`, `update`, `insert`, `maintain`, `delete_report(id)`, `fail(\"…\")`, `skip(\"…\")` and the file's own `action name(…) { steps { … } }`".to_string()
                    });
                    self.cx
                        .error_hint(name.span, format!("unknown action `{}`", name.node), hint);
                    return StepKind::Compute {
                        value: ir::Expr::Null,
                    };
                }
                self.usage.caps.insert("report");
                if lowered.len() != 1 {
                    self.cx.error(
                        *span,
                        format!(
                            "`delete_report` takes 1 argument (the report id), found {}",
                            lowered.len()
                        ),
                    );
                }
                StepKind::DeleteReport {
                    id: lowered.into_iter().next().unwrap_or(ir::Expr::Null),
                }
            }
        }
    }

    /// `action: name(args)` of a declared action: its steps, lowered here (so that what they use
    /// counts towards this job's manifest), its parameters bound to the arguments. `None` when
    /// no action of that name is declared.
    fn user_action(
        &mut self,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<StepKind> {
        let decls = self.decls;
        let decl = decls.action(&name.node)?;
        let lowered: Vec<ir::Expr> = args.iter().map(|a| self.expr(a)).collect();
        if args.len() != decl.params.len() {
            let params: Vec<&str> = decl.params.iter().map(|p| p.node.as_str()).collect();
            self.cx.error_hint(
                span,
                format!(
                    "action `{}` takes {} argument{}, found {}",
                    name.node,
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
                format!(
                    "it is declared as `action {}({})`",
                    name.node,
                    params.join(", ")
                ),
            );
        }
        let null = || StepKind::Compute {
            value: ir::Expr::Null,
        };
        if let Some(at) = self.action_stack.iter().position(|a| *a == name.node) {
            let mut cycle = self.action_stack[at..].to_vec();
            cycle.push(name.node.clone());
            self.cx.error_hint(
                name.span,
                format!(
                    "action `{}` calls itself: {}",
                    name.node,
                    cycle
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
                "actions cannot be recursive; repeat work over a list with `for_each`",
            );
            return Some(null());
        }
        self.action_calls += 1;
        if self.action_calls > MAX_ACTION_CALLS {
            if self.action_calls == MAX_ACTION_CALLS + 1 {
                self.cx.error_hint(
                    name.span,
                    format!("this job expands more than {MAX_ACTION_CALLS} action calls"),
                    "actions that call other actions several times multiply; call fewer of them, or loop with `for_each`",
                );
            }
            return Some(null());
        }
        let steps = self.action_steps(decl);
        Some(StepKind::Block {
            action: Some(name.node.clone()),
            bind: decl
                .params
                .iter()
                .map(|p| p.node.clone())
                .zip(lowered)
                .collect(),
            steps,
        })
    }

    /// The steps of a declared action, checked in a scope of their own: its parameters, then
    /// its own bindings.
    pub(super) fn action_steps(&mut self, decl: &ast::ActionDecl) -> Vec<ir::Step> {
        self.action_stack.push(decl.name.node.clone());
        let scope = std::mem::replace(
            &mut self.scope,
            decl.params.iter().map(|p| p.node.clone()).collect(),
        );
        let later = std::mem::take(&mut self.later);
        // The caller's bindings and items are not the action's.
        let shapes = std::mem::take(&mut self.shapes);
        let items = std::mem::take(&mut self.items);
        let past_items = std::mem::take(&mut self.past_items);
        let steps = match decl.steps_span {
            _ if decl.steps.is_empty() && decl.broken => Vec::new(),
            None => {
                self.cx.error_hint(
                    decl.name.span,
                    format!("action `{}` has no `steps`", decl.name.node),
                    "add `steps { … }` with at least one step",
                );
                Vec::new()
            }
            Some(span) if decl.steps.is_empty() => {
                self.cx.error_hint(
                    span,
                    format!("action `{}` has no steps", decl.name.node),
                    "add at least one step",
                );
                Vec::new()
            }
            Some(_) => self.steps_of(&decl.steps),
        };
        self.scope = scope;
        self.later = later;
        (self.shapes, self.items, self.past_items) = (shapes, items, past_items);
        self.action_stack.pop();
        steps
    }

    /// A `call:` step; `paged` is the parameter its `paginate:` sets, which the first call may
    /// leave out.
    fn call_step(&mut self, c: &ast::CallSpec, paged: Option<&str>) -> StepKind {
        self.usage.caps.insert("http");
        let args: Vec<(String, ir::Expr)> = {
            self.cx
                .check_unique("argument", c.args.iter().map(|(k, _)| k));
            c.args
                .iter()
                .map(|(k, v)| (k.node.clone(), self.expr(v)))
                .collect()
        };
        let lowered = StepKind::Call {
            integration: c.integration.node.clone(),
            operation: c.operation.node.clone(),
            args,
            paginate: None,
        };
        let Some(integration) = self.decls.integration(&c.integration.node) else {
            let hint = hint_or_list(
                &c.integration.node,
                "the declared integrations",
                &self.decls.integration_names(),
            );
            self.cx.error_hint(
                c.integration.span,
                format!("unknown integration `{}`", c.integration.node),
                hint,
            );
            return lowered;
        };
        self.usage.integrations.insert(integration.name.clone());
        let Some(op) = integration
            .operations
            .iter()
            .find(|o| o.name == c.operation.node)
        else {
            let names: Vec<&str> = integration
                .operations
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            let hint = hint_or_list(&c.operation.node, "its operations", &names);
            self.cx.error_hint(
                c.operation.span,
                format!(
                    "integration `{}` has no operation `{}`",
                    integration.name, c.operation.node
                ),
                hint,
            );
            return lowered;
        };
        let params: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
        for (name, value) in &c.args {
            if let Some(p) = op.params.iter().find(|p| p.name == name.node) {
                if let Some(this) = misfit(p.ty, value) {
                    self.cx.error(
                        value.span,
                        format!(
                            "parameter `{}` of `{}.{}` is {}; this is {this}",
                            p.name,
                            integration.name,
                            op.name,
                            p.ty.name()
                        ),
                    );
                }
            }
            if !params.contains(&name.node.as_str()) {
                let hint = hint_or_list(&name.node, "its parameters", &params);
                self.cx.error_hint(
                    name.span,
                    format!(
                        "operation `{}.{}` has no parameter `{}`",
                        integration.name, op.name, name.node
                    ),
                    hint,
                );
            }
        }
        for p in &op.params {
            if !c.args.iter().any(|(n, _)| n.node == p.name) && paged != Some(p.name.as_str()) {
                self.cx.error_hint(
                    c.operation.span,
                    format!(
                        "missing argument `{}` for `{}.{}`",
                        p.name, integration.name, op.name
                    ),
                    format!("add `{}: …` to the call's arguments", p.name),
                );
            }
        }
        lowered
    }

    /// A template name given as a string literal; records its use.
    fn template_name(&mut self, e: &ast::Expr) -> Option<String> {
        let name = match &e.kind {
            ast::ExprKind::Str(s) => s.clone(),
            ast::ExprKind::Ident(n) => {
                self.cx.error_hint(
                    e.span,
                    "a template name is a string",
                    format!("write `\"{n}\"`"),
                );
                return None;
            }
            _ => {
                self.cx.error(
                    e.span,
                    "expected the name of a template, like `\"daily_report\"`",
                );
                return None;
            }
        };
        if self.decls.template(&name).is_none() {
            let hint = hint_or_list(
                &name,
                "the declared templates",
                &self.decls.template_names(),
            );
            self.cx
                .error_hint(e.span, format!("unknown template `{name}`"), hint);
            return None;
        }
        self.usage.templates.insert(name.clone());
        Some(name)
    }

    /// An `insert`/`upsert` gives every field a row needs: all but the optional ones and a
    /// `uuid primary`, which is generated.
    fn required_given(
        &mut self,
        entity: &EntityInfo,
        values: &[(ast::Ident, ast::Expr)],
        at: &ast::Ident,
        what: &str,
    ) {
        // A platform table or a misspelt field is reported already: one error is enough.
        let unknown = values.iter().any(|(k, _)| entity.field(&k.node).is_none());
        if entity.builtin.is_some() || unknown {
            return;
        }
        let missing: Vec<String> = entity
            .decl
            .fields
            .iter()
            .filter(|f| !(f.optional || (f.primary && f.ty == codeai_ir::FieldType::Uuid)))
            .filter(|f| !values.iter().any(|(k, _)| k.node == f.name))
            .map(|f| format!("`{}`", f.name))
            .collect();
        if missing.is_empty() {
            return;
        }
        let (noun, them) = match missing.len() {
            1 => ("field", "it"),
            _ => ("fields", "them"),
        };
        self.cx.error_hint(
            at.span,
            format!(
                "{what} `{}` leaves out the required {noun} {}",
                at.node,
                missing.join(", ")
            ),
            format!(
                "give {them} a value, or declare {them} `optional` in `entity {}`",
                at.node
            ),
        );
    }

    /// A template's `{{…}}` paths (and for a report its table's rows) must be in the `data`
    /// the step hands it, as far as the data is written out as objects here (the rest is
    /// checked when it runs). A message shows the table only when its data holds the rows.
    fn template_data(
        &mut self,
        template: &str,
        data: Option<&ast::Expr>,
        at: Span,
        report: bool,
    ) -> Vec<(String, ir::Expr)> {
        let Some(decl) = self.decls.template(template) else {
            return Vec::new();
        };
        let mut paths: Vec<String> = [&decl.title, &decl.subtitle, &decl.subject, &decl.body]
            .into_iter()
            .flatten()
            .flat_map(|t| codeai_ir::template::placeholders(t))
            .map(|p| p.inner.to_string())
            // `{{__N}}` is an expression of the template's, computed below.
            .filter(|p| !p.starts_with("__"))
            .collect();
        if report {
            paths.extend(decl.table.as_ref().map(|t| t.source.clone()));
        }
        let mut seen = std::collections::BTreeSet::new();
        paths.retain(|p| seen.insert(p.clone()));
        if data.is_none() && !paths.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| format!("`{{{{{p}}}}}`")).collect();
            let fields: Vec<String> = self
                .template_names(template)
                .iter()
                .map(|n| format!("{n}: …"))
                .collect();
            self.cx.error_hint(
                at,
                format!(
                    "template `{template}` reads {}, but this step gives it no `data`",
                    shown.join(", ")
                ),
                format!(
                    "add `data: {{ {} }}`: the fields the template reads",
                    fields.join(", ")
                ),
            );
            return Vec::new();
        }
        for inner in paths {
            let Some(segments) = codeai_ir::template::path(&inner) else {
                continue;
            };
            self.template_path(template, &inner, &segments, data);
        }
        if let (Some(table), Some(data)) = (&decl.table, data) {
            self.table_columns(template, table, data);
        }
        self.template_exprs(template, data, at)
    }

    /// One `{{path}}` of a template against the data a step hands it: through the object the
    /// step writes out, then through what is known of the values it holds (a binding's object,
    /// a query's rows, a list's items), as far as it is known.
    fn template_path(
        &mut self,
        template: &str,
        inner: &str,
        segments: &[codeai_ir::template::Segment<'_>],
        data: Option<&ast::Expr>,
    ) {
        let Some(mut value) = data else { return };
        // Past the object written out here: the shape of a value in it, where that value is
        // written, and the value's text while the path has not gone further into it.
        let mut beyond: Option<(Shape, Span, Option<String>)> = None;
        let mut so_far: Vec<&str> = Vec::new();
        for segment in segments {
            if segment.optional {
                return;
            }
            if beyond.is_none() {
                match &value.kind {
                    ast::ExprKind::Object(fields) => {
                        match fields.iter().find(|(k, _)| k.node == segment.name) {
                            Some((_, v)) => {
                                value = v;
                                so_far.push(segment.name);
                                continue;
                            }
                            None => {
                                let keys: Vec<&str> =
                                    fields.iter().map(|(k, _)| k.node.as_str()).collect();
                                let hint = hint_or_list(segment.name, "its fields", &keys);
                                let whose = data_place(&so_far, None, None);
                                self.cx.error_hint(
                                    value.span,
                                    format!(
                                        "template `{template}` reads `{{{{{inner}}}}}`, but \
                                         {whose} has no `{}`",
                                        segment.name
                                    ),
                                    hint,
                                );
                                return;
                            }
                        }
                    }
                    _ => {
                        let text = self.path_text(value);
                        beyond = Some((self.shape_of(value), value.span, Some(text)));
                    }
                }
            }
            let Some((shape, span, origin)) = beyond.take() else {
                return;
            };
            let whose = data_place(&so_far, origin.as_deref(), shape.describe());
            let position = segment.name.parse::<usize>().is_ok();
            let next = match (&shape, position) {
                (Shape::Unknown, _) => return,
                (Shape::List(item), true) => Read::Found((**item).clone()),
                (Shape::List(_), false) => Read::Missing(
                    format!(
                        "template `{template}` reads `{{{{{inner}}}}}`, but {whose} is a list: \
                         it has no `{}`",
                        segment.name
                    ),
                    format!(
                        "a template reads an item by its position, like `{{{{{}.0.{}}}}}`, or \
                         shows every item in its `table`",
                        so_far.join("."),
                        segment.name
                    ),
                ),
                _ => match self.read(&shape, "", segment.name) {
                    Read::Missing(_, hint) => Read::Missing(
                        format!(
                            "template `{template}` reads `{{{{{inner}}}}}`, but {whose} has no \
                             `{}`",
                            segment.name
                        ),
                        hint,
                    ),
                    found => found,
                },
            };
            match next {
                Read::Found(next) => {
                    so_far.push(segment.name);
                    beyond = Some((next, span, None));
                }
                Read::Missing(message, hint) => {
                    self.cx.error_hint(span, message, hint);
                    return;
                }
            }
        }
    }

    /// A template's table columns against the rows the step hands it, where they are known
    /// (a query's rows, objects written out): a column no row has would be empty.
    fn table_columns(&mut self, template: &str, table: &ir::TableDecl, data: &ast::Expr) {
        let Some((rows, span, text)) = self.data_value(data, &table.source) else {
            return;
        };
        let item = match &rows {
            Shape::List(item) => (**item).clone(),
            _ => return,
        };
        let whose = data_place(&[table.source.as_str()], Some(&text), None);
        let what = rows.describe().unwrap_or_default();
        for (column, _) in &table.columns {
            if let Read::Missing(_, hint) = self.read(&item, "", column) {
                self.cx.error_hint(
                    span,
                    format!(
                        "template `{template}` has a table column `{column}`, but {whose} is \
                         {what}, which have no `{column}`"
                    ),
                    hint,
                );
            }
        }
    }

    /// The shape of the data's field `name`, where it is and how it reads, when the data is
    /// written out here (or is a binding whose object is known).
    fn data_value(&self, data: &ast::Expr, name: &str) -> Option<(Shape, Span, String)> {
        match &data.kind {
            ast::ExprKind::Object(fields) => {
                let (_, value) = fields.iter().find(|(k, _)| k.node == name)?;
                Some((self.shape_of(value), value.span, self.path_text(value)))
            }
            _ => match self.shape_of(data) {
                Shape::Object(fields) => {
                    let (_, shape) = fields.into_iter().find(|(k, _)| k == name)?;
                    Some((shape, data.span, format!("{}.{name}", self.path_text(data))))
                }
                _ => None,
            },
        }
    }

    /// A template's `{{…}}` expressions, computed over the data's fields where the step
    /// writes its data out: each becomes the data's `__N` (see [`super::decls::Decls`]).
    fn template_exprs(
        &mut self,
        template: &str,
        data: Option<&ast::Expr>,
        at: Span,
    ) -> Vec<(String, ir::Expr)> {
        let exprs: Vec<(String, ast::Expr)> = self
            .decls
            .template_exprs
            .iter()
            .filter(|(t, ..)| t == template)
            .map(|(_, k, e)| (k.clone(), e.clone()))
            .collect();
        if exprs.is_empty() {
            return Vec::new();
        }
        let Some(ast::ExprKind::Object(fields)) = data.map(|d| &d.kind) else {
            // Say which `{{…}}` it is, and write the object out from what the template reads.
            let shown = exprs
                .first()
                .map(|(_, e)| self.cx.text(e.span).to_string())
                .filter(|t| !t.contains("{{"))
                .unwrap_or_else(|| "…".to_string());
            let names = self.template_names(template);
            let (message, hint) = match data {
                Some(d) => {
                    let given = self.path_text(d);
                    let fields: Vec<String> = names
                        .iter()
                        .map(|n| match &d.kind {
                            ast::ExprKind::Ident(_)
                            | ast::ExprKind::Field(..)
                            | ast::ExprKind::Index(..) => format!("{n}: {given}.{n}"),
                            _ => format!("{n}: …"),
                        })
                        .collect();
                    (
                        format!(
                            "template `{template}` computes `{{{{{shown}}}}}` from the fields of \
                             its data, so this step writes its data out as an object, not as \
                             `{given}`"
                        ),
                        format!(
                            "write `data: {{ {} }}`: the fields the template reads",
                            fields.join(", ")
                        ),
                    )
                }
                None => {
                    let fields: Vec<String> = names.iter().map(|n| format!("{n}: …")).collect();
                    (
                        format!(
                            "template `{template}` computes `{{{{{shown}}}}}` from the fields of \
                             its data, but this step gives it no `data`"
                        ),
                        format!(
                            "add `data: {{ {} }}`: the fields the template reads",
                            fields.join(", ")
                        ),
                    )
                }
            };
            self.cx
                .error_hint(data.map_or(at, |d| d.span), message, hint);
            return Vec::new();
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.node.as_str()).collect();
        let mut extras = Vec::new();
        for (key, mut e) in exprs {
            let mut unknown = Vec::new();
            in_data(&mut e, fields, &mut Vec::new(), &mut unknown);
            for name in &unknown {
                let hint = hint_or_list(name, "its fields", &keys);
                self.cx.error_hint(
                    data.map_or(at, |d| d.span),
                    format!(
                        "template `{template}` computes with `{name}`, but this data has no `{name}`"
                    ),
                    hint,
                );
            }
            if !unknown.is_empty() {
                continue;
            }
            // The data's own expressions were checked once already: no second message.
            let before = self.cx.diagnostics.len();
            let lowered = self.expr(&e);
            let (old, new) = self.cx.diagnostics.split_at(before);
            let new: Vec<_> = new.iter().filter(|d| !old.contains(d)).cloned().collect();
            self.cx.diagnostics.truncate(before);
            self.cx.diagnostics.extend(new);
            extras.push((key, lowered));
        }
        extras
    }

    /// The names of the data a template reads, in the order it reads them: the first names of
    /// its paths, then its table's rows, then the names its expressions compute with.
    fn template_names(&self, template: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let Some(decl) = self.decls.template(template) else {
            return names;
        };
        let texts = [&decl.title, &decl.subtitle, &decl.subject, &decl.body];
        let paths = texts
            .into_iter()
            .flatten()
            .flat_map(|t| codeai_ir::template::placeholders(t))
            .filter_map(|p| Some(codeai_ir::template::path(p.inner)?[0].name.to_string()))
            .filter(|n| !n.starts_with("__"));
        for name in paths.chain(decl.table.as_ref().map(|t| t.source.clone())) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for (_, _, e) in self
            .decls
            .template_exprs
            .iter()
            .filter(|(t, ..)| t == template)
        {
            free_names(e, &mut Vec::new(), &mut names);
        }
        names
    }

    /// `template: "t"  data: {…}  format: pdf`.
    fn report(&mut self, template: &ast::Expr, fields: &Fields<'_>) -> StepKind {
        self.usage.caps.insert("report");
        let name = self.template_name(template).unwrap_or_default();
        let data_ast = match fields.get("data").map(|f| &f.value) {
            Some(StepValue::Expr(e)) => Some(e),
            _ => None,
        };
        let mut data = match fields.get("data") {
            Some(f) => match &f.value {
                StepValue::Expr(e) => self.expr(e),
                _ => {
                    self.cx.error(
                        f.span,
                        "`data` expects an expression, like `data: { orders: orders }`",
                    );
                    ir::Expr::Null
                }
            },
            None => ir::Expr::Object(Vec::new()),
        };
        let extras = self.template_data(&name, data_ast, template.span, true);
        with_extras(&mut data, extras);
        let format = match fields.get("format") {
            Some(f) => match ident_value(&f.value) {
                Some(n) => match n.node.as_str() {
                    "pdf" => ReportFormat::Pdf,
                    "csv" => ReportFormat::Csv,
                    "html" => ReportFormat::Html,
                    other => {
                        let hint = hint_or_list(other, "the formats", &["pdf", "csv", "html"]);
                        self.cx.error_hint(
                            n.span,
                            format!("unknown report format `{other}`"),
                            hint,
                        );
                        ReportFormat::Pdf
                    }
                },
                None => {
                    self.cx
                        .error(f.span, "`format` expects `pdf`, `csv` or `html`");
                    ReportFormat::Pdf
                }
            },
            None => ReportFormat::Pdf,
        };
        StepKind::Report {
            template: name,
            data,
            format,
        }
    }

    /// `send: email(to) { … }` / `send: slack("#chan") { … }`.
    fn send(&mut self, s: &ast::Send) -> StepKind {
        let target = self.expr(&s.target);
        let allowed: &[&str] = match s.channel_kind.node.as_str() {
            "email" => &["template", "subject", "attachment", "data", "text"],
            "slack" => &["template", "data", "text"],
            other => {
                let hint = hint_or_list(other, "the channels", &["email", "slack"]);
                self.cx.error_hint(
                    s.channel_kind.span,
                    format!("unknown channel `{other}`"),
                    hint,
                );
                for (_, v) in &s.fields {
                    self.expr(v);
                }
                return StepKind::Compute {
                    value: ir::Expr::Null,
                };
            }
        };
        self.cx
            .check_unique("field", s.fields.iter().map(|(k, _)| k));
        let mut template = None;
        let mut subject = None;
        let mut attachments = Vec::new();
        let mut data = None;
        let mut data_ast = None;
        let mut text = None;
        for (key, value) in &s.fields {
            if !allowed.contains(&key.node.as_str()) {
                let hint = hint_or_list(
                    &key.node,
                    &format!("the fields of `send: {}`", s.channel_kind.node),
                    allowed,
                );
                self.cx.error_hint(
                    key.span,
                    format!(
                        "unknown field `{}` in `send: {}`",
                        key.node, s.channel_kind.node
                    ),
                    hint,
                );
                self.expr(value);
                continue;
            }
            match key.node.as_str() {
                "template" if template.is_none() => template = Some(self.template_name(value)),
                "subject" if subject.is_none() => subject = Some(self.expr(value)),
                "data" if data.is_none() => {
                    data = Some(self.expr(value));
                    data_ast = Some(value);
                }
                "text" if text.is_none() => text = Some((self.expr(value), key.span)),
                "attachment" if attachments.is_empty() => match &value.kind {
                    ast::ExprKind::List(items) => {
                        attachments = items.iter().map(|i| self.expr(i)).collect()
                    }
                    _ => attachments.push(self.expr(value)),
                },
                // A repeated field, already reported.
                _ => {}
            }
        }
        let found = template.is_some();
        let template = template.flatten();
        if let Some(name) = &template {
            let extras = self.template_data(name, data_ast, s.channel_kind.span, false);
            if let Some(data) = &mut data {
                with_extras(data, extras);
            }
        }
        // Without a template, `text` (or `data`) is the message: one of them, and something.
        let channel = s.channel_kind.node.as_str();
        let data = match (text, &template) {
            (Some((_, span)), Some(_)) => {
                self.cx.error_hint(
                    span,
                    format!(
                        "{} has a `template` or a `text`, not both",
                        message(channel)
                    ),
                    "remove one of them",
                );
                data
            }
            (Some((_, span)), None) if data.is_some() => {
                self.cx.error_hint(
                    span,
                    "`text` and `data` cannot both be set without a template",
                    "without a template, `data` is the text: remove one of them",
                );
                data
            }
            (Some((t, _)), None) => Some(t),
            // A template that was named but is unknown is reported already.
            (None, None) if data.is_none() && !found => {
                self.cx.error_hint(
                    s.channel_kind.span,
                    format!("{} needs a `template` or a `text`", message(channel)),
                    "add `text: \"…\"` or `template: \"name\"` with `data: …`",
                );
                None
            }
            (None, _) => data,
        };
        if channel == "email" {
            self.usage.caps.insert("email");
            // The template's own subject is used when it declares one.
            let template_subject = template
                .as_deref()
                .and_then(|t| self.decls.template(t))
                .is_some_and(|t| t.subject.is_some());
            // A template named but unknown is reported already: its subject is unknown too.
            let unknown_template = found && template.is_none();
            let subject = subject.unwrap_or_else(|| {
                if !template_subject && !unknown_template {
                    self.cx.error_hint(
                        s.channel_kind.span,
                        "an email needs a `subject`",
                        "add `subject: \"…\"` inside the braces, or use a template that declares one",
                    );
                }
                ir::Expr::Null
            });
            StepKind::Email {
                to: target,
                subject,
                template,
                data,
                attachments,
            }
        } else {
            self.usage.caps.insert("slack");
            StepKind::Slack {
                channel: target,
                template,
                data,
            }
        }
    }

    /// `emit: Event { … }`.
    fn emit(&mut self, event: &ast::Ident, payload: Option<&ast::Expr>) -> StepKind {
        self.usage.caps.insert("events");
        let decl = self.decls.event(&event.node);
        match decl {
            Some(d) => {
                self.usage.events.insert(d.name.clone());
            }
            None => {
                let hint = hint_or_list(
                    &event.node,
                    "the declared events",
                    &self.decls.event_names(),
                );
                self.cx
                    .error_hint(event.span, format!("unknown event `{}`", event.node), hint);
            }
        }
        let payload = match payload {
            None => {
                if let Some(f) = decl.and_then(|d| d.fields.first()) {
                    self.cx.error_hint(
                        event.span,
                        format!("event `{}` has fields; `emit` gives none", event.node),
                        format!("e.g. `emit: {} {{ {}: … }}`", event.node, f.name),
                    );
                }
                ir::Expr::Object(Vec::new())
            }
            Some(ast::Expr {
                kind: ast::ExprKind::Object(entries),
                span,
            }) => {
                if let Some(d) = decl {
                    self.check_payload(d, entries, *span);
                }
                ir::Expr::Object(self.object(entries))
            }
            Some(other) => self.expr(other),
        };
        StepKind::Emit {
            event: event.node.clone(),
            payload,
        }
    }
}

impl JobCx<'_, '_> {
    /// An `emit`'s literal payload against its event: no unknown field, every declared one given,
    /// no value whose type the text shows that the field cannot take (the host checks the values
    /// again when the event is emitted).
    fn check_payload(
        &mut self,
        d: &ir::EventDecl,
        entries: &[(ast::Ident, ast::Expr)],
        span: Span,
    ) {
        let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
        for (key, value) in entries {
            let Some(field) = d.fields.iter().find(|f| f.name == key.node) else {
                let hint = hint_or_list(&key.node, "its fields", &names);
                self.cx.error_hint(
                    key.span,
                    format!("event `{}` has no field `{}`", d.name, key.node),
                    hint,
                );
                continue;
            };
            if let Some(this) = misfit(field.ty, value) {
                self.cx.error(
                    value.span,
                    format!(
                        "field `{}` of event `{}` is {}; this is {this}",
                        field.name,
                        d.name,
                        field.ty.name(),
                    ),
                );
            }
        }
        for f in &d.fields {
            if !entries.iter().any(|(k, _)| k.node == f.name) {
                self.cx.error_hint(
                    span,
                    format!(
                        "the payload of `{}` gives no `{}` ({})",
                        d.name,
                        f.name,
                        f.ty.name()
                    ),
                    format!("add `{}: …`; every declared field is carried", f.name),
                );
            }
        }
    }
}

/// What `value` is, in words, when the compiler can tell that it does not fit a field of type
/// `field` (an event's field, an operation's parameter); `None` when it fits or cannot be known.
fn misfit(field: codeai_ir::FieldType, value: &ast::Expr) -> Option<&'static str> {
    use super::types::{ty, Ty};
    use codeai_ir::FieldType as F;
    let t = ty(value);
    let fits = match field {
        F::Json => true,
        F::Int | F::Float => matches!(t, Ty::Number | Ty::Unknown),
        F::Bool => matches!(t, Ty::Bool | Ty::Unknown),
        F::String | F::Uuid | F::Date | F::Datetime => matches!(t, Ty::Str | Ty::Unknown),
    } && !(field == F::Int && matches!(value.kind, ast::ExprKind::Float(_)));
    match (fits, &value.kind) {
        (true, _) => None,
        (false, ast::ExprKind::Float(_)) => Some("a number with a fraction"),
        (false, _) => Some(t.describe()),
    }
}

/// Where in a template's data a value is, for messages: "this data", "this data's `customer`
/// (`first(rows)`, a row of `Customer`)" — the value's text when it differs from the path.
fn data_place(path: &[&str], text: Option<&str>, shape: Option<String>) -> String {
    let path = path.join(".");
    let place = match path.is_empty() {
        true => "this data".to_string(),
        false => format!("this data's `{path}`"),
    };
    let mut about = Vec::new();
    if let Some(text) = text.filter(|t| *t != path) {
        about.push(format!("`{text}`"));
    }
    about.extend(shape);
    match about.is_empty() {
        true => place,
        false => format!("{place} ({})", about.join(", ")),
    }
}

/// A message of a channel, in words: `an email`, `a Slack message`.
fn message(channel: &str) -> &'static str {
    match channel {
        "email" => "an email",
        _ => "a Slack message",
    }
}

/// The `param` of a `paginate: { … }` field, as written.
fn paginated_param(f: &ast::StepField) -> Option<&str> {
    let StepValue::Expr(ast::Expr {
        kind: ast::ExprKind::Object(entries),
        ..
    }) = &f.value
    else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match &v.kind {
        ast::ExprKind::Str(name) if k.node == "param" => Some(name.as_str()),
        _ => None,
    })
}

/// Puts the data's field expressions in place of the names of a template's expression (not
/// the item of an `item -> …` condition, in `bound`); the names the data does not hold go to
/// `unknown`.
fn in_data(
    e: &mut ast::Expr,
    fields: &[(ast::Ident, ast::Expr)],
    bound: &mut Vec<String>,
    unknown: &mut Vec<String>,
) {
    match &mut e.kind {
        ast::ExprKind::Ident(n) if bound.contains(n) => {}
        ast::ExprKind::Ident(n) => match fields.iter().find(|(k, _)| k.node == *n) {
            Some((_, value)) => *e = value.clone(),
            None if !unknown.contains(n) => unknown.push(n.clone()),
            None => {}
        },
        ast::ExprKind::Lambda(item, body) => {
            bound.push(item.node.clone());
            in_data(body, fields, bound, unknown);
            bound.pop();
        }
        _ => {
            for part in e.parts_mut() {
                in_data(part, fields, bound, unknown);
            }
        }
    }
}

/// The names an expression reads (not functions, fields or keys, nor the item of an
/// `item -> …` condition), each once, in order.
fn free_names(e: &ast::Expr, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.kind {
        ast::ExprKind::Ident(n) => {
            if !bound.contains(n) && !out.contains(n) {
                out.push(n.clone());
            }
        }
        ast::ExprKind::Lambda(item, body) => {
            bound.push(item.node.clone());
            free_names(body, bound, out);
            bound.pop();
        }
        _ => {
            for part in e.parts() {
                free_names(part, bound, out);
            }
        }
    }
}

/// Adds a template's computed `__N` values to the data object a step hands over.
fn with_extras(data: &mut ir::Expr, extras: Vec<(String, ir::Expr)>) {
    if let ir::Expr::Object(fields) = data {
        fields.extend(extras);
    }
}
