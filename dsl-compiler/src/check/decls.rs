//! Declarations — entities, integrations, templates, events and queues — checked once per file
//! and lowered to the manifest types that jobs copy the parts they use from.

use super::suggest::hint_or_list;
use super::Cx;
use crate::ast::{self, Span};
use codeai_ir::platform::{builtin_entity, check_builtin_fields, BuiltinEntity, BUILTIN_ENTITIES};
use codeai_ir::{
    Auth, ColumnFormat, EntityDecl, EventDecl, FieldDecl, FieldType, IntegrationDecl,
    OperationDecl, ParamDecl, QueueDecl, TableDecl, TemplateDecl, ValueSource,
};

/// The built-in queues and their weights.
pub(super) const BUILTIN_QUEUES: [(&str, u32); 3] = [("critical", 6), ("default", 3), ("low", 1)];

/// The names of the built-in actions (`action: fail("…")`, …), which a declared action cannot take.
pub(super) const RESERVED_ACTIONS: &[&str] = &[
    "delete",
    "update",
    "insert",
    "maintain",
    "delete_report",
    "fail",
    "skip",
];

/// The HTTP methods an operation may use.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Timeout of an integration that does not set one.
const DEFAULT_INTEGRATION_TIMEOUT_MS: u64 = 30_000;

/// Every declaration of the file (the first of each name; duplicates are reported and dropped).
pub(super) struct Decls {
    pub(super) entities: Vec<EntityInfo>,
    pub(super) integrations: Vec<IntegrationDecl>,
    pub(super) templates: Vec<TemplateDecl>,
    pub(super) events: Vec<EventDecl>,
    /// The built-in queues (weights possibly overridden) and the declared ones.
    pub(super) queues: Vec<QueueDecl>,
    /// The user-defined actions, as written: each call site lowers the steps in the calling job.
    pub(super) actions: Vec<ast::ActionDecl>,
    /// The expressions of templates' `{{…}}` that are not paths, by template: each is written
    /// `{{__N}}` in the template's text, and a step using the template computes it over its
    /// data's fields and hands it over as the data's `__N`.
    pub(super) template_exprs: Vec<(String, String, ast::Expr)>,
}

/// An entity, with its field types as far as they resolved.
pub(super) struct EntityInfo {
    pub(super) decl: EntityDecl,
    /// Field name, type (`None` when the declared type is unknown) and whether it is optional.
    pub(super) fields: Vec<FieldInfo>,
    /// A platform table jobs may read (`JobExecution`, `Report`): read-only but for `delete`.
    pub(super) builtin: Option<&'static BuiltinEntity>,
}

pub(super) struct FieldInfo {
    pub(super) name: String,
    pub(super) ty: Option<FieldType>,
    pub(super) optional: bool,
}

impl EntityInfo {
    pub(super) fn name(&self) -> &str {
        &self.decl.name
    }

    pub(super) fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub(super) fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }
}

impl Decls {
    pub(super) fn action(&self, name: &str) -> Option<&ast::ActionDecl> {
        self.actions.iter().find(|a| a.name.node == name)
    }

    pub(super) fn entity(&self, name: &str) -> Option<&EntityInfo> {
        self.entities.iter().find(|e| e.decl.name == name)
    }

    pub(super) fn integration(&self, name: &str) -> Option<&IntegrationDecl> {
        self.integrations.iter().find(|i| i.name == name)
    }

    pub(super) fn template(&self, name: &str) -> Option<&TemplateDecl> {
        self.templates.iter().find(|t| t.name == name)
    }

    pub(super) fn event(&self, name: &str) -> Option<&EventDecl> {
        self.events.iter().find(|e| e.name == name)
    }

    pub(super) fn entity_names(&self) -> Vec<&str> {
        self.entities.iter().map(|e| e.decl.name.as_str()).collect()
    }

    pub(super) fn integration_names(&self) -> Vec<&str> {
        self.integrations.iter().map(|i| i.name.as_str()).collect()
    }

    pub(super) fn template_names(&self) -> Vec<&str> {
        self.templates.iter().map(|t| t.name.as_str()).collect()
    }

    pub(super) fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_str()).collect()
    }

    pub(super) fn queue_names(&self) -> Vec<&str> {
        self.queues.iter().map(|q| q.name.as_str()).collect()
    }
}

/// Checks every declaration of the file and collects them.
pub(super) fn collect(file: &ast::File, cx: &mut Cx<'_>) -> Decls {
    let mut decls = Decls {
        entities: Vec::new(),
        integrations: Vec::new(),
        templates: Vec::new(),
        events: Vec::new(),
        queues: BUILTIN_QUEUES
            .iter()
            .map(|(name, weight)| QueueDecl {
                name: name.to_string(),
                weight: *weight,
            })
            .collect(),
        actions: Vec::new(),
        template_exprs: Vec::new(),
    };
    let of_kind = |f: fn(&ast::Item) -> Option<&ast::Ident>| file.items.iter().filter_map(f);
    cx.check_unique(
        "entity",
        of_kind(|i| match i {
            ast::Item::Entity(e) => Some(&e.name),
            _ => None,
        }),
    );
    cx.check_unique(
        "integration",
        of_kind(|i| match i {
            ast::Item::Integration(e) => Some(&e.name),
            _ => None,
        }),
    );
    cx.check_unique(
        "template",
        of_kind(|i| match i {
            ast::Item::Template(e) => Some(&e.name),
            _ => None,
        }),
    );
    cx.check_unique(
        "event",
        of_kind(|i| match i {
            ast::Item::Event(e) => Some(&e.name),
            _ => None,
        }),
    );
    cx.check_unique(
        "queue",
        of_kind(|i| match i {
            ast::Item::Queue(e) => Some(&e.name),
            _ => None,
        }),
    );
    cx.check_unique(
        "action",
        of_kind(|i| match i {
            ast::Item::Action(e) => Some(&e.name),
            _ => None,
        }),
    );

    let mut declared_queues: Vec<&str> = Vec::new();
    for item in &file.items {
        match item {
            ast::Item::Entity(e) => {
                if decls.entity(&e.name.node).is_none() {
                    let info = entity(e, cx);
                    decls.entities.push(info);
                }
            }
            ast::Item::Integration(i) => {
                if decls.integration(&i.name.node).is_none() {
                    let info = integration(i, cx);
                    decls.integrations.push(info);
                }
            }
            ast::Item::Template(t) => {
                if decls.template(&t.name.node).is_none() {
                    let (info, exprs) = template(t, cx);
                    decls.templates.push(info);
                    let name = &t.name.node;
                    decls
                        .template_exprs
                        .extend(exprs.into_iter().map(|(k, e)| (name.clone(), k, e)));
                }
            }
            ast::Item::Event(e) => {
                if decls.event(&e.name.node).is_none() {
                    cx.check_unique("event field", e.fields.iter().map(|(n, _)| n));
                    decls.events.push(EventDecl {
                        name: e.name.node.clone(),
                        fields: params(&e.fields, cx),
                    });
                }
            }
            ast::Item::Queue(q) => {
                if !declared_queues.contains(&q.name.node.as_str()) {
                    declared_queues.push(&q.name.node);
                    queue(q, &mut decls.queues, cx);
                }
            }
            ast::Item::Action(a) => {
                if RESERVED_ACTIONS.contains(&a.name.node.as_str()) {
                    cx.error_hint(
                        a.name.span,
                        format!("`{}` is a built-in action", a.name.node),
                        format!(
                            "the built-in actions are {}; give this action another name",
                            super::suggest::list(RESERVED_ACTIONS)
                        ),
                    );
                } else if !decls.actions.iter().any(|b| b.name.node == a.name.node) {
                    cx.check_unique("parameter", a.params.iter());
                    decls.actions.push(a.clone());
                }
            }
            ast::Item::Job(_) => {}
        }
    }
    // The built-in entities are there without a declaration, under their usual names.
    for b in BUILTIN_ENTITIES {
        if decls.entity(b.entity).is_none() {
            decls.entities.push(builtin_info(b));
        }
    }
    decls
}

/// Resolves a type name, reporting unknown ones.
fn field_type(ty: &ast::Ident, cx: &mut Cx<'_>) -> Option<FieldType> {
    let found = FieldType::by_name(&ty.node);
    if found.is_none() {
        let names: Vec<&str> = FieldType::ALL.iter().map(|(_, n)| *n).collect();
        cx.error_hint(
            ty.span,
            format!("unknown field type `{}`", ty.node),
            hint_or_list(&ty.node, "the types", &names),
        );
    }
    found
}

fn entity(e: &ast::Entity, cx: &mut Cx<'_>) -> EntityInfo {
    cx.check_unique("field", e.fields.iter().map(|f| &f.name));
    let mut primary: Option<&ast::Ident> = None;
    let mut fields = Vec::new();
    let mut decl_fields = Vec::new();
    for f in &e.fields {
        if f.primary {
            match primary {
                Some(first) => cx.error_hint(
                    f.name.span,
                    format!("entity `{}` has more than one primary key", e.name.node),
                    format!("`{}` is already its primary key", first.node),
                ),
                None => primary = Some(&f.name),
            }
        }
        if fields.iter().any(|x: &FieldInfo| x.name == f.name.node) {
            continue;
        }
        let ty = field_type(&f.ty, cx);
        fields.push(FieldInfo {
            name: f.name.node.clone(),
            ty,
            optional: f.optional,
        });
        if f.unique && ty == Some(FieldType::Json) {
            cx.error_hint(
                f.name.span,
                format!(
                    "field `{}` is json; a json field cannot be `unique`",
                    f.name.node
                ),
                "make a scalar field unique (a string, a number, a uuid, a date)",
            );
        }
        decl_fields.push(FieldDecl {
            name: f.name.node.clone(),
            ty: ty.unwrap_or(FieldType::Json),
            primary: f.primary,
            optional: f.optional,
            unique: f.unique && !f.primary,
        });
    }
    let (table, table_span) = match &e.table {
        Some(t) => (t.node.clone(), t.span),
        None => (table_name(&e.name.node), e.name.span),
    };
    if let Err(message) = codeai_ir::platform::check_table_name(&table) {
        let hint = if codeai_ir::platform::PLATFORM_TABLES.contains(&table.as_str()) {
            "jobs reach the platform's data only through the built-in entities `JobExecution` \
             and `Report`; name your own table something else"
                .to_string()
        } else if e.table.is_none() {
            format!("the entity's table defaults to `{table}`; name another with `table: \"…\"`")
        } else {
            "a table name is lower-case letters, digits and `_`; the platform resolves it inside \
             the job's own namespace"
                .to_string()
        };
        cx.error_hint(table_span, message, hint);
    }
    let builtin = builtin_entity(&table);
    if let Some(b) = builtin {
        for f in &e.fields {
            let Some(ty) = FieldType::by_name(&f.ty.node) else {
                continue;
            };
            if let Err(message) = check_builtin_fields(b, &[(f.name.node.as_str(), ty, f.primary)])
            {
                cx.error_hint(
                    f.name.span,
                    message,
                    "declare a subset of the built-in fields, or leave the entity out: it is built in",
                );
            }
        }
    }
    EntityInfo {
        decl: EntityDecl {
            name: e.name.node.clone(),
            table,
            fields: decl_fields,
        },
        fields,
        builtin,
    }
}

/// A built-in entity a file uses without declaring it: every field of the platform's shape.
fn builtin_info(b: &'static BuiltinEntity) -> EntityInfo {
    EntityInfo {
        decl: EntityDecl {
            name: b.entity.to_string(),
            table: b.table.to_string(),
            fields: b
                .fields
                .iter()
                .map(|(name, ty, optional)| FieldDecl {
                    name: name.to_string(),
                    ty: *ty,
                    primary: *name == b.primary,
                    optional: *optional,
                    unique: false,
                })
                .collect(),
        },
        fields: b
            .fields
            .iter()
            .map(|(name, ty, optional)| FieldInfo {
                name: name.to_string(),
                ty: Some(*ty),
                optional: *optional,
            })
            .collect(),
        builtin: Some(b),
    }
}

/// The default table of an entity: the snake_case plural of its name
/// (`Product` → `products`, `JobExecution` → `job_executions`, `Category` → `categories`).
pub(super) fn table_name(entity: &str) -> String {
    let snake = crate::snake_case(entity);
    let consonant_y =
        snake.ends_with('y') && !snake[..snake.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    if consonant_y {
        format!("{}ies", &snake[..snake.len() - 1])
    } else if snake.ends_with(['s', 'x', 'z']) || snake.ends_with("ch") || snake.ends_with("sh") {
        format!("{snake}es")
    } else {
        format!("{snake}s")
    }
}

fn value_source(v: &ast::ValueSource) -> ValueSource {
    match v {
        ast::ValueSource::Literal(s) => ValueSource::Literal(s.clone()),
        ast::ValueSource::Env(s) => ValueSource::Env(s.clone()),
    }
}

fn params(list: &[(ast::Ident, ast::Ident)], cx: &mut Cx<'_>) -> Vec<ParamDecl> {
    let mut out: Vec<ParamDecl> = Vec::new();
    for (name, ty) in list {
        let ty = field_type(ty, cx);
        if out.iter().any(|p| p.name == name.node) {
            continue;
        }
        out.push(ParamDecl {
            name: name.node.clone(),
            ty: ty.unwrap_or(FieldType::Json),
        });
    }
    out
}

fn integration(i: &ast::Integration, cx: &mut Cx<'_>) -> IntegrationDecl {
    let base_url = match &i.base_url {
        Some(b) => {
            if let ast::ValueSource::Literal(url) = &b.node {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    cx.error_hint(
                        b.span,
                        format!("base URL `{url}` is not an http(s) URL"),
                        "write `https://…`, or read it from the environment with `env(\"NAME\")`",
                    );
                }
            }
            value_source(&b.node)
        }
        None => {
            let var = format!("{}_URL", crate::snake_case(&i.name.node).to_uppercase());
            cx.error_hint(
                i.name.span,
                format!("integration `{}` has no `base_url`", i.name.node),
                format!("add `base_url: env(\"{var}\")`"),
            );
            ValueSource::Literal(String::new())
        }
    };
    let auth = match i.auth.as_ref().map(|a| &a.node) {
        None | Some(ast::AuthDef::None) => Auth::None,
        Some(ast::AuthDef::Bearer(token)) => Auth::Bearer {
            token: value_source(token),
        },
        Some(ast::AuthDef::Header(name, value)) => Auth::Header {
            name: name.clone(),
            value: value_source(value),
        },
        Some(ast::AuthDef::Basic(user, password)) => Auth::Basic {
            user: value_source(user),
            password: value_source(password),
        },
    };
    let timeout_ms = match &i.timeout {
        Some(t) if t.node.millis == 0 => {
            cx.error(t.span, "an integration timeout must be greater than 0");
            DEFAULT_INTEGRATION_TIMEOUT_MS
        }
        Some(t) => t.node.millis,
        None => DEFAULT_INTEGRATION_TIMEOUT_MS,
    };
    cx.check_unique("operation", i.operations.iter().map(|o| &o.name));
    let mut operations: Vec<OperationDecl> = Vec::new();
    for op in &i.operations {
        let decl = operation(op, cx);
        if !operations.iter().any(|o| o.name == decl.name) {
            operations.push(decl);
        }
    }
    IntegrationDecl {
        name: i.name.node.clone(),
        base_url,
        auth,
        timeout_ms,
        operations,
    }
}

fn operation(op: &ast::Operation, cx: &mut Cx<'_>) -> OperationDecl {
    if !METHODS.contains(&op.method.node.as_str()) {
        let upper = op.method.node.to_ascii_uppercase();
        let hint = if METHODS.contains(&upper.as_str()) {
            format!("write it in capitals: `{upper}`")
        } else {
            format!("methods are {}", super::suggest::list(&METHODS))
        };
        cx.error_hint(
            op.method.span,
            format!("unknown HTTP method `{}`", op.method.node),
            hint,
        );
    }
    cx.check_unique("parameter", op.params.iter().map(|(n, _)| n));
    let params = params(&op.params, cx);
    let path = &op.path;
    if !path.node.starts_with('/') {
        cx.error_hint(
            path.span,
            format!("operation path `{}` must start with `/`", path.node),
            "the path is appended to the integration's base URL",
        );
    }
    // `{name}` placeholders must be parameters. Offsets map into the literal when it has no
    // escapes before the placeholder (the usual case); otherwise the whole literal is shown.
    let raw = cx.text(path.span).to_string();
    let mut rest = path.node.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            cx.error(path.span, format!("unclosed `{{` in path `{}`", path.node));
            break;
        };
        let name = &rest[open + 1..open + close];
        let at = offset + open;
        let span = if raw.get(1 + at..1 + at + close + 1) == Some(&rest[open..=open + close]) {
            Span::new(path.span.start + 1 + at, path.span.start + 2 + at + close)
        } else {
            path.span
        };
        if !params.iter().any(|p| p.name == name) {
            cx.error_hint(
                span,
                format!(
                    "path parameter `{{{name}}}` is not a parameter of operation `{}`",
                    op.name.node
                ),
                format!("declare it: `{{ {name}: string }}`"),
            );
        }
        offset += open + close + 1;
        rest = &rest[open + close + 1..];
    }
    OperationDecl {
        name: op.name.node.clone(),
        method: op.method.node.clone(),
        path: path.node.clone(),
        params,
    }
}

fn template(t: &ast::Template, cx: &mut Cx<'_>) -> (TemplateDecl, Vec<(String, ast::Expr)>) {
    let mut exprs = Vec::new();
    let mut text =
        |s: &Option<ast::Spanned<String>>| s.as_ref().map(|s| template_text(s, &mut exprs, cx));
    let (title, subtitle, subject, body) = (
        text(&t.title),
        text(&t.subtitle),
        text(&t.subject),
        text(&t.body),
    );
    let table = t.table.as_ref().map(|table| {
        cx.check_unique("column", table.columns.iter().map(|c| &c.field));
        TableDecl {
            source: table.source.node.clone(),
            columns: table
                .columns
                .iter()
                .map(|c| (c.field.node.clone(), c.header.node.clone()))
                .collect(),
            totals: Vec::new(),
            formats: table
                .columns
                .iter()
                .filter_map(|c| {
                    let (name, decimals) = c.format.as_ref()?;
                    Some((
                        c.field.node.clone(),
                        column_format(name, decimals.as_ref(), cx)?,
                    ))
                })
                .collect(),
        }
    });
    let mut table = table;
    match &mut table {
        Some(table) => {
            let columns: Vec<String> = table.columns.iter().map(|(c, _)| c.clone()).collect();
            let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
            for total in &t.totals {
                if columns.contains(&total.node) {
                    if !table.totals.contains(&total.node) {
                        table.totals.push(total.node.clone());
                    }
                } else {
                    cx.error_hint(
                        total.span,
                        format!(
                            "`totals` names `{}`, which is not a column of the table",
                            total.node
                        ),
                        hint_or_list(&total.node, "the columns", &column_refs),
                    );
                }
            }
        }
        None => {
            if let Some(first) = t.totals.first() {
                cx.error_hint(
                    first.span,
                    format!("template `{}` has `totals` but no `table`", t.name.node),
                    "totals are sums of table columns: add `table: source { field: \"Header\" }`",
                );
            }
        }
    }
    let decl = TemplateDecl {
        name: t.name.node.clone(),
        title,
        subtitle,
        subject,
        body,
        table,
    };
    (decl, exprs)
}

/// A template's text as the host renders it: a `{{…}}` that is a path stays; any other
/// expression is parsed here (its mistakes point into the string), kept in `exprs` under the
/// key `__N`, and written `{{__N}}` (README, "Templates").
fn template_text(
    text: &ast::Spanned<String>,
    exprs: &mut Vec<(String, ast::Expr)>,
    cx: &mut Cx<'_>,
) -> String {
    let raw = cx.text(text.span).to_string();
    let mut out = String::with_capacity(text.node.len());
    let mut at = 0;
    let mut raw_from = 0;
    for p in codeai_ir::template::placeholders(&text.node) {
        let written = &text.node[p.start..p.end];
        // Where the placeholder is in the source: exactly when it has no escapes.
        let found = raw[raw_from..].find(written).map(|i| raw_from + i);
        if let Some(i) = found {
            raw_from = i + written.len();
        }
        if codeai_ir::template::path(p.inner).is_some() {
            continue;
        }
        let parsed = match found {
            Some(i) => {
                let inner = &written[2..written.len() - 2];
                let offset = inner.len() - inner.trim_start().len();
                let start = text.span.start + i + 2 + offset;
                let span = Span::new(start, start + p.inner.len());
                crate::parser::parse_embedded_expr(cx.source, span)
            }
            None => {
                let whole = Span::new(0, p.inner.len());
                crate::parser::parse_embedded_expr(p.inner, whole).map(|mut e| {
                    e.respan(text.span);
                    e
                })
            }
        };
        match parsed {
            Ok(e) => {
                let key = format!("__{}", exprs.len());
                out.push_str(&text.node[at..p.start]);
                out.push_str(&format!("{{{{{key}}}}}"));
                at = p.end;
                exprs.push((key, e));
            }
            Err(diagnostics) => {
                for d in diagnostics {
                    let span = if found.is_some() { d.span } else { text.span };
                    match d.hint {
                        Some(h) => cx.error_hint(span, d.message, h),
                        None => cx.error(span, d.message),
                    }
                }
            }
        }
    }
    out.push_str(&text.node[at..]);
    out
}

/// `money`, `integer`, `decimal(N)`, `percent(N)`, `date`, `datetime` after a column's header.
fn column_format(
    name: &ast::Ident,
    decimals: Option<&ast::Spanned<i64>>,
    cx: &mut Cx<'_>,
) -> Option<ColumnFormat> {
    let names: Vec<&str> = ColumnFormat::NAMES.iter().map(|(n, _)| *n).collect();
    let Some((_, takes_decimals)) = ColumnFormat::NAMES.iter().find(|(n, _)| *n == name.node)
    else {
        let hint = match super::suggest::did_you_mean(&name.node, names.iter().copied()) {
            Some(hint) => hint,
            None => format!(
                "the column formats are {}; `decimal` and `percent` take a count of decimals: `decimal(2)`",
                super::suggest::list(&names)
            ),
        };
        cx.error_hint(
            name.span,
            format!("unknown column format `{}`", name.node),
            hint,
        );
        return None;
    };
    let n = match (takes_decimals, decimals) {
        (false, Some(d)) => {
            cx.error_hint(
                d.span,
                format!("the `{}` format takes no count of decimals", name.node),
                format!("write `{}` alone", name.node),
            );
            return None;
        }
        (false, None) => 0,
        (true, None) => 0,
        (true, Some(d)) if (0..=6).contains(&d.node) => d.node as u8,
        (true, Some(d)) => {
            cx.error_hint(
                d.span,
                format!("{} decimals is out of range", d.node),
                "a column shows 0 to 6 decimals",
            );
            return None;
        }
    };
    Some(match name.node.as_str() {
        "money" => ColumnFormat::Money,
        "integer" => ColumnFormat::Integer,
        "decimal" => ColumnFormat::Decimal(n),
        "percent" => ColumnFormat::Percent(n),
        "date" => ColumnFormat::Date,
        _ => ColumnFormat::Datetime,
    })
}

/// Adds a declared queue, or changes the weight of a built-in one. Only called for the first
/// declaration of a name (duplicates are reported by `collect`).
fn queue(q: &ast::Queue, queues: &mut Vec<QueueDecl>, cx: &mut Cx<'_>) {
    let weight = match &q.weight {
        Some(w) if !(1..=100).contains(&w.node) => {
            cx.error_hint(
                w.span,
                format!("queue weight {} is out of range 1-100", w.node),
                "the built-in weights are critical 6, default 3, low 1",
            );
            1
        }
        Some(w) => w.node as u32,
        None => 1,
    };
    match queues.iter_mut().find(|d| d.name == q.name.node) {
        Some(builtin) => builtin.weight = weight,
        None => queues.push(QueueDecl {
            name: q.name.node.clone(),
            weight,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::table_name;

    #[test]
    fn table_names_are_snake_case_plurals() {
        for (entity, table) in [
            ("Product", "products"),
            ("JobExecution", "job_executions"),
            ("Category", "categories"),
            ("Address", "addresses"),
            ("Key", "keys"),
            ("Box", "boxes"),
            ("Batch", "batches"),
        ] {
            assert_eq!(table_name(entity), table, "{entity}");
        }
    }
}
