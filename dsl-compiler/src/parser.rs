//! The parser: tokens (from the nom lexer in [`lexer`]) → [`ast::File`].
//!
//! It never fails and never panics. A syntax error becomes a [`Diagnostic`] ("expected X, found
//! Y") and the parser resynchronises — inside a block at the next line that starts a field or at
//! the block's closing brace, at top level at the next line starting with an item keyword — so
//! that every syntax error of a file is reported in one run and the items that did parse are kept
//! for the checker.

pub(crate) mod lexer;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use lexer::{Tok, TokKind};

/// Deepest nesting of expressions and blocks accepted; deeper input is reported, not recursed into.
const MAX_DEPTH: usize = 64;

const ITEM_KEYWORDS: &[&str] = &[
    "entity",
    "integration",
    "template",
    "event",
    "queue",
    "job",
    "action",
];

/// Words that end an expression: they introduce the next clause of a query or a field.
const CLAUSE_WORDS: &[&str] = &[
    "where", "order", "by", "limit", "offset", "set", "asc", "desc", "times", "with",
];

/// Parses a whole file. Always returns a tree (possibly partial) and the syntax diagnostics.
pub fn parse(source: &str) -> (File, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let tokens = lexer::lex(source, &mut diagnostics);
    // An unterminated string or comment swallows the rest of its line (or file), braces
    // included: a `}` then missing at the end of the file is a consequence, not a new mistake.
    let eof_explained = diagnostics
        .iter()
        .any(|d| d.message.starts_with("unterminated "));
    let mut p = Parser::new(source, tokens, diagnostics, eof_explained);
    let file = p.file();
    (file, p.diagnostics)
}

/// Parses the expression at `span` of `source` (the inside of a `{{…}}` in a string literal):
/// spans and messages point into `source`. The diagnostics when it is not one expression.
pub(crate) fn parse_embedded_expr(source: &str, span: Span) -> Result<Expr, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let Some(text) = source.get(span.range()) else {
        return Err(vec![Diagnostic::error(span, "not an expression")]);
    };
    let mut tokens = lexer::lex(text, &mut diagnostics);
    for t in &mut tokens {
        t.span = Span::new(t.span.start + span.start, t.span.end + span.start);
    }
    // The lexer's own diagnostics (a stray `'`) point into the string too.
    for d in &mut diagnostics {
        d.span = Span::new(d.span.start + span.start, d.span.end + span.start);
    }
    let mut p = Parser::new(source, tokens, diagnostics, true);
    let parsed = p.expr();
    if parsed.is_ok() && !p.at_eof() {
        let found = p.peek().describe(source);
        let at = p.peek().span;
        p.diagnostics.push(Diagnostic::error(
            at,
            format!("expected the end of the expression, found {found}"),
        ));
    }
    for d in &mut p.diagnostics {
        d.message = d.message.replace("end of file", "the end of the `{{…}}`");
    }
    match parsed {
        Ok(e) if p.diagnostics.is_empty() => Ok(e),
        _ if p.diagnostics.is_empty() => Err(vec![Diagnostic::error(span, "not an expression")]),
        _ => Err(p.diagnostics),
    }
}

/// A syntax error; the diagnostic has already been recorded when this is returned.
struct Failed;

type PResult<T> = Result<T, Failed>;

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Tok>,
    pos: usize,
    diagnostics: Vec<Diagnostic>,
    depth: usize,
    /// The deepest `depth` reached since [`Parser::measured`] last looked: how far down the
    /// expression being parsed goes, counting each level entered (a bracket, a call's
    /// arguments) and each link of a chain.
    high: usize,
    /// Failures at a token the lexer already reported (a malformed literal): no new diagnostic,
    /// but the construct is still broken. Counted so that [`Parser::error_mark`] sees them.
    silent_failures: usize,
    /// A missing `}` at the end of the file is already explained (reported once, or caused by
    /// an unterminated string or comment): further blocks open at the end close silently.
    eof_explained: bool,
}

impl<'s> Parser<'s> {
    fn new(
        source: &'s str,
        tokens: Vec<Tok>,
        diagnostics: Vec<Diagnostic>,
        eof_explained: bool,
    ) -> Parser<'s> {
        Parser {
            source,
            tokens,
            pos: 0,
            diagnostics,
            depth: 0,
            high: 0,
            silent_failures: 0,
            eof_explained,
        }
    }
}

impl Parser<'_> {
    // -----------------------------------------------------------------------------------------
    // Token helpers
    // -----------------------------------------------------------------------------------------

    fn peek(&self) -> &Tok {
        let last = self.tokens.len() - 1;
        &self.tokens[self.pos.min(last)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + n).min(last)]
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        tok
    }

    fn at_eof(&self) -> bool {
        self.peek().kind == TokKind::Eof
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().kind, TokKind::Punct(q) if *q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().kind, TokKind::Ident(s) if s == w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// A mark that grows with every failure, reported here or by the lexer; a construct whose
    /// mark grew while it was parsed is `broken`.
    fn error_mark(&self) -> usize {
        self.diagnostics.len() + self.silent_failures
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    /// Records "expected X, found Y" at the current token.
    fn expected<T>(&mut self, what: &str) -> PResult<T> {
        let tok = self.peek().clone();
        if tok.kind == TokKind::Error {
            // The lexer has reported this token already.
            self.silent_failures += 1;
            return Err(Failed);
        }
        let found = tok.describe(self.source);
        let message = if tok.kind == TokKind::Eof {
            format!("expected {what}, found end of file")
        } else {
            format!("expected {what}, found {found}")
        };
        self.diagnostics.push(Diagnostic::error(tok.span, message));
        Err(Failed)
    }

    fn expected_hint<T>(&mut self, what: &str, hint: &str) -> PResult<T> {
        let r = self.expected(what);
        if let Some(d) = self.diagnostics.last_mut() {
            d.hint = Some(hint.to_string());
        }
        r
    }

    fn expect_punct(&mut self, p: &str) -> PResult<Span> {
        if self.is_punct(p) {
            Ok(self.bump().span)
        } else {
            self.expected(&format!("`{p}`"))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        match &self.peek().kind {
            TokKind::Ident(name) => {
                let name = name.clone();
                let span = self.bump().span;
                Ok(Spanned::new(name, span))
            }
            _ => self.expected(what),
        }
    }

    fn string(&mut self, what: &str) -> PResult<Spanned<String>> {
        match &self.peek().kind {
            TokKind::Str(s) => {
                let s = s.clone();
                let span = self.bump().span;
                Ok(Spanned::new(s, span))
            }
            _ => self.expected(what),
        }
    }

    fn duration(&mut self) -> PResult<Spanned<Duration>> {
        match &self.peek().kind {
            TokKind::Duration(ms) => {
                let ms = *ms;
                let span = self.bump().span;
                Ok(Spanned::new(Duration { millis: ms }, span))
            }
            _ => self.expected_hint(
                "a duration",
                "durations are written like `100ms`, `30s`, `5m`, `2h` or `7d`",
            ),
        }
    }

    fn int(&mut self, what: &str) -> PResult<Spanned<i64>> {
        match &self.peek().kind {
            TokKind::Int(n) => {
                let n = *n;
                let span = self.bump().span;
                Ok(Spanned::new(n, span))
            }
            _ => self.expected(what),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let span = self.peek().span;
            self.diagnostics
                .push(Diagnostic::error(span, "expression nested too deeply"));
            self.depth -= 1;
            return Err(Failed);
        }
        self.high = self.high.max(self.depth);
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Parses with `parse` and returns how many levels below the current one the result goes
    /// (0 for a leaf).
    fn measured<T>(&mut self, parse: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<(T, usize)> {
        let outer = std::mem::replace(&mut self.high, self.depth);
        let parsed = parse(self);
        let height = self.high - self.depth;
        self.high = self.high.max(outer);
        Ok((parsed?, height))
    }

    /// A chain (`a + b + c`, `a.b[0].c`) leans left: each link puts everything before it one
    /// level further down. `height` is how far the chain goes so far; reported at `at` (the
    /// link) when that passes the nesting limit, as a bracket that deep would be, unless an
    /// error was reported in the chain since `mark` (a part too deep, recovered from: its depth
    /// is already explained).
    fn chained(&mut self, height: usize, at: Span, mark: usize) -> PResult<()> {
        let deepest = self.depth + height;
        self.high = self.high.max(deepest);
        if deepest > MAX_DEPTH {
            if self.error_mark() > mark {
                return Err(Failed);
            }
            self.diagnostics.push(
                Diagnostic::error(at, "expression nested too deeply").with_hint(
                    "each operator of a chain, and each `.field` or `[index]` after a value, \
                     is one level deeper: bind parts of it in steps (`as:`) and combine those",
                ),
            );
            return Err(Failed);
        }
        Ok(())
    }

    /// Skips to the next line that starts at this block's nesting level, or to the `}` that
    /// closes the block (not consumed). `from` is the token index where the failed construct began.
    fn recover_in_block(&mut self, from: usize) {
        let mut depth = 0usize;
        loop {
            let tok = self.peek();
            match &tok.kind {
                TokKind::Eof => return,
                TokKind::Punct("}") if depth == 0 => return,
                TokKind::Ident(w)
                    if depth == 0
                        && tok.line_start
                        && self.pos > from
                        && ITEM_KEYWORDS.contains(&w.as_str())
                        && !matches!(self.peek_at(1).kind, TokKind::Punct(":"))
                        && self.column_is_zero(tok.span.start) =>
                {
                    return
                }
                _ if depth == 0 && tok.line_start && self.pos > from => return,
                TokKind::Punct("{") | TokKind::Punct("(") | TokKind::Punct("[") => depth += 1,
                TokKind::Punct("}") | TokKind::Punct(")") | TokKind::Punct("]") => {
                    depth = depth.saturating_sub(1)
                }
                _ => {}
            }
            self.bump();
        }
    }

    fn item_keyword_at_column_zero(&self) -> bool {
        let tok = self.peek();
        matches!(&tok.kind, TokKind::Ident(w) if ITEM_KEYWORDS.contains(&w.as_str()))
            && !matches!(self.peek_at(1).kind, TokKind::Punct(":"))
            && tok.line_start
            && self.column_is_zero(tok.span.start)
    }

    /// Reports a block whose `}` is missing before the next item, and closes it there so that
    /// what it declared is kept.
    fn unclosed(&mut self, open: Span) -> PResult<Span> {
        let (line, _) = crate::diagnostic::line_col(self.source, open.start);
        let _: PResult<()> =
            self.expected_hint("`}`", &format!("the `{{` on line {line} is not closed"));
        Ok(self.prev_span())
    }

    fn column_is_zero(&self, offset: usize) -> bool {
        offset == 0 || self.source.as_bytes().get(offset - 1) == Some(&b'\n')
    }

    /// Skips to the next item keyword at the start of a line after token index `from`.
    fn recover_top_level(&mut self, from: usize) {
        let start = from;
        loop {
            let tok = self.peek();
            match &tok.kind {
                TokKind::Eof => return,
                TokKind::Ident(w)
                    if tok.line_start
                        && self.pos > start
                        && ITEM_KEYWORDS.contains(&w.as_str())
                        && !matches!(self.peek_at(1).kind, TokKind::Punct(":")) =>
                {
                    return
                }
                _ => {}
            }
            self.bump();
        }
    }

    // -----------------------------------------------------------------------------------------
    // Items
    // -----------------------------------------------------------------------------------------

    fn file(&mut self) -> File {
        let mut items = Vec::new();
        while !self.at_eof() {
            let start = self.pos;
            let item = match &self.peek().kind {
                TokKind::Ident(w) if w == "entity" => self.entity().map(Item::Entity),
                TokKind::Ident(w) if w == "integration" => {
                    self.integration().map(Item::Integration)
                }
                TokKind::Ident(w) if w == "template" => self.template().map(Item::Template),
                TokKind::Ident(w) if w == "event" => self.event().map(Item::Event),
                TokKind::Ident(w) if w == "queue" => self.queue().map(Item::Queue),
                TokKind::Ident(w) if w == "job" => self.job().map(Item::Job),
                TokKind::Ident(w) if w == "action" => self.action_decl().map(Item::Action),
                _ => self.expected(
                    "`entity`, `integration`, `template`, `event`, `queue`, `job` or `action`",
                ),
            };
            match item {
                Ok(item) => items.push(item),
                Err(Failed) => self.recover_top_level(start),
            }
        }
        File { items }
    }

    /// Parses `{ entries }` where each entry is parsed by `entry`; errors inside an entry are
    /// recovered at the next line. Returns the span of the closing brace.
    fn block(&mut self, entry: impl FnMut(&mut Self) -> PResult<()>) -> PResult<Span> {
        self.block_until(|_| false, entry)
    }

    /// [`Parser::block`] that also ends, as unclosed, where `stop` says the next construct of
    /// the enclosing block begins (e.g. the next step when a step's `}` is missing).
    fn block_until(
        &mut self,
        stop: impl Fn(&Self) -> bool,
        mut entry: impl FnMut(&mut Self) -> PResult<()>,
    ) -> PResult<Span> {
        let open = self.expect_punct("{")?;
        self.enter()?;
        let result = loop {
            if self.eat_punct(",") || self.eat_punct(";") {
                continue;
            }
            if self.item_keyword_at_column_zero() {
                break self.unclosed(open);
            }
            if self.is_punct("}") {
                break Ok(self.bump().span);
            }
            if self.at_eof() {
                // Only the innermost open block reports: the outer ones are missing their `}`
                // for the same reason.
                if self.eof_explained {
                    break Ok(self.prev_span());
                }
                self.eof_explained = true;
                break self.unclosed(open);
            }
            if stop(self) {
                break self.unclosed(open);
            }
            let start = self.pos;
            if entry(self).is_err() {
                self.recover_in_block(start);
                if self.pos == start {
                    self.bump();
                }
                // An item keyword at column 0 means the closing brace is missing.
                if self.item_keyword_at_column_zero() {
                    break self.unclosed(open);
                }
                if stop(self) {
                    break self.unclosed(open);
                }
            }
        };
        self.leave();
        result
    }

    fn entity(&mut self) -> PResult<Entity> {
        let kw = self.bump().span;
        let name = self.ident("an entity name")?;
        let mut table = None;
        let mut fields = Vec::new();
        let end = self.block(|p| {
            let key = p.ident("a field name")?;
            p.expect_punct(":")?;
            if key.node == "table" {
                table = Some(p.string("a table name in quotes")?);
                return Ok(());
            }
            let ty = p.ident("a field type")?;
            let (mut primary, mut optional, mut unique) = (false, false, false);
            while !p.peek().line_start {
                if p.eat_word("primary") {
                    primary = true;
                } else if p.eat_word("optional") {
                    optional = true;
                } else if p.eat_word("unique") {
                    unique = true;
                } else {
                    break;
                }
            }
            fields.push(FieldDef {
                name: key,
                ty,
                primary,
                optional,
                unique,
            });
            Ok(())
        })?;
        Ok(Entity {
            name,
            table,
            fields,
            span: kw.to(end),
        })
    }

    fn value_source(&mut self) -> PResult<ValueSource> {
        match &self.peek().kind {
            TokKind::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(ValueSource::Literal(s))
            }
            TokKind::Ident(w) if w == "env" => {
                self.bump();
                self.expect_punct("(")?;
                let name = self.string("an environment variable name in quotes")?;
                self.expect_punct(")")?;
                Ok(ValueSource::Env(name.node))
            }
            _ => self.expected("a string or `env(\"NAME\")`"),
        }
    }

    fn integration(&mut self) -> PResult<Integration> {
        let kw = self.bump().span;
        let name = self.ident("an integration name")?;
        let mut base_url = None;
        let mut auth = None;
        let mut timeout = None;
        let mut operations = Vec::new();
        let end = self.block(|p| {
            let key = p.ident("a field or operation name")?;
            p.expect_punct(":")?;
            let start = p.peek().span;
            match key.node.as_str() {
                "base_url" => {
                    let v = p.value_source()?;
                    base_url = Some(Spanned::new(v, start.to(p.prev_span())));
                }
                "auth" => {
                    let v = p.auth()?;
                    auth = Some(Spanned::new(v, start.to(p.prev_span())));
                }
                "timeout" => timeout = Some(p.duration()?),
                _ => {
                    let method = p.ident("an HTTP method (GET, POST, PUT, PATCH, DELETE)")?;
                    let path = p.string("a path in quotes")?;
                    let mut params = Vec::new();
                    if p.is_punct("{") && !p.peek().line_start {
                        p.block(|p| {
                            let n = p.ident("a parameter name")?;
                            p.expect_punct(":")?;
                            let t = p.ident("a parameter type")?;
                            params.push((n, t));
                            Ok(())
                        })?;
                    }
                    operations.push(Operation {
                        name: key,
                        method,
                        path,
                        params,
                    });
                }
            }
            Ok(())
        })?;
        Ok(Integration {
            name,
            base_url,
            auth,
            timeout,
            operations,
            span: kw.to(end),
        })
    }

    fn auth(&mut self) -> PResult<AuthDef> {
        let kind = self.ident("`none`, `bearer(…)`, `header(…)` or `basic(…)`")?;
        match kind.node.as_str() {
            "none" => Ok(AuthDef::None),
            "bearer" => {
                self.expect_punct("(")?;
                let v = self.value_source()?;
                self.expect_punct(")")?;
                Ok(AuthDef::Bearer(v))
            }
            "header" => {
                self.expect_punct("(")?;
                let name = self.string("a header name in quotes")?;
                self.expect_punct(",")?;
                let v = self.value_source()?;
                self.expect_punct(")")?;
                Ok(AuthDef::Header(name.node, v))
            }
            "basic" => {
                self.expect_punct("(")?;
                let user = self.value_source()?;
                self.expect_punct(",")?;
                let password = self.value_source()?;
                self.expect_punct(")")?;
                Ok(AuthDef::Basic(user, password))
            }
            other => {
                self.diagnostics.push(
                    Diagnostic::error(kind.span, format!("unknown auth kind `{other}`")).with_hint(
                        "use `none`, `bearer(…)`, `header(\"Name\", …)` or `basic(user, password)`",
                    ),
                );
                Err(Failed)
            }
        }
    }

    fn template(&mut self) -> PResult<Template> {
        let kw = self.bump().span;
        let name = self.ident("a template name")?;
        let mut t = Template {
            name,
            title: None,
            subtitle: None,
            subject: None,
            body: None,
            table: None,
            totals: Vec::new(),
            span: kw,
        };
        let end = self.block(|p| {
            let key = p.ident("a template field")?;
            p.expect_punct(":")?;
            match key.node.as_str() {
                "table" => {
                    let source = p.ident("the name of the rows in the template's data")?;
                    let mut columns = Vec::new();
                    p.block(|p| {
                        let field = p.ident("a column's field name")?;
                        p.expect_punct(":")?;
                        let header = p.string("a column header in quotes")?;
                        // A format follows the header on its line: `total: "Total" money`
                        // (a word followed by `:` is the next column's field).
                        let on_line = matches!(p.peek().kind, TokKind::Ident(_))
                            && !p.peek().line_start
                            && p.peek_at(1).kind != TokKind::Punct(":");
                        let format = match on_line {
                            true => {
                                let name = p.ident("a column format")?;
                                let decimals = if p.eat_punct("(") {
                                    let n = p.int("a count of decimals")?;
                                    p.expect_punct(")")?;
                                    Some(n)
                                } else {
                                    None
                                };
                                Some((name, decimals))
                            }
                            false => None,
                        };
                        columns.push(Column {
                            field,
                            header,
                            format,
                        });
                        Ok(())
                    })?;
                    t.table = Some(TableDef { source, columns });
                }
                "totals" => {
                    p.expect_punct("[")?;
                    while !p.is_punct("]") {
                        t.totals.push(p.ident("a field name")?);
                        if !p.eat_punct(",") {
                            break;
                        }
                    }
                    p.expect_punct("]")?;
                }
                "title" | "subtitle" | "subject" | "body" => {
                    let s = p.string("a string")?;
                    let slot = match key.node.as_str() {
                        "title" => &mut t.title,
                        "subtitle" => &mut t.subtitle,
                        "subject" => &mut t.subject,
                        _ => &mut t.body,
                    };
                    if slot.is_some() {
                        p.diagnostics.push(Diagnostic::error(
                            key.span,
                            format!("`{}` is given twice", key.node),
                        ));
                    }
                    *slot = Some(s);
                }
                other => {
                    p.diagnostics.push(
                        Diagnostic::error(key.span, format!("unknown template field `{other}`"))
                            .with_hint(
                            "template fields are title, subtitle, subject, body, table and totals",
                        ),
                    );
                    return Err(Failed);
                }
            }
            Ok(())
        })?;
        t.span = kw.to(end);
        Ok(t)
    }

    fn event(&mut self) -> PResult<Event> {
        let kw = self.bump().span;
        let name = self.ident("an event name")?;
        let mut fields = Vec::new();
        let mut end = name.span;
        if self.is_punct("{") {
            end = self.block(|p| {
                let n = p.ident("a field name")?;
                p.expect_punct(":")?;
                let t = p.ident("a field type")?;
                fields.push((n, t));
                Ok(())
            })?;
        }
        Ok(Event {
            name,
            fields,
            span: kw.to(end),
        })
    }

    fn queue(&mut self) -> PResult<Queue> {
        let kw = self.bump().span;
        let name = self.ident("a queue name")?;
        let mut weight = None;
        let mut end = name.span;
        if self.is_punct("{") {
            end = self.block(|p| {
                let key = p.ident("`weight`")?;
                p.expect_punct(":")?;
                if key.node != "weight" {
                    p.diagnostics.push(
                        Diagnostic::error(key.span, format!("unknown queue field `{}`", key.node))
                            .with_hint("a queue has one field: `weight: N`"),
                    );
                    return Err(Failed);
                }
                weight = Some(p.int("a whole number")?);
                Ok(())
            })?;
        }
        Ok(Queue {
            name,
            weight,
            span: kw.to(end),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Jobs
    // -----------------------------------------------------------------------------------------

    fn job(&mut self) -> PResult<Job> {
        let errors_before = self.error_mark();
        let kw = self.bump().span;
        let name = self.ident("a job name")?;
        let mut fields = Vec::new();
        let mut steps = Vec::new();
        let mut steps_span = None;
        let end = self.block(|p| {
            let key = p.ident("a job field")?;
            if key.node == "steps" {
                steps_span = Some(key.span);
                p.eat_punct(":");
                p.block(|p| {
                    steps.push(p.step()?);
                    Ok(())
                })?;
                return Ok(());
            }
            p.expect_punct(":")?;
            let value = p.job_value(&key.node)?;
            fields.push(JobField {
                span: key.span.to(p.prev_span()),
                key,
                value,
            });
            Ok(())
        })?;
        Ok(Job {
            name,
            fields,
            steps,
            steps_span,
            span: kw.to(end),
            broken: self.error_mark() > errors_before,
        })
    }

    /// `action name(param, …) { steps { … } }`
    fn action_decl(&mut self) -> PResult<ActionDecl> {
        let errors_before = self.error_mark();
        let kw = self.bump().span;
        let name = self.ident("an action name")?;
        if !self.eat_punct("(") {
            return self.expected_hint(
                "`(`",
                &format!(
                    "an action lists its parameters in parentheses, even none: `action {}() {{ … }}`",
                    name.node
                ),
            );
        }
        let mut params = Vec::new();
        while !self.is_punct(")") {
            params.push(self.ident("a parameter name")?);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")")?;
        let mut steps = Vec::new();
        let mut steps_span = None;
        let end = self.block(|p| {
            let key = p.ident("`steps`")?;
            if key.node != "steps" {
                p.diagnostics.push(
                    Diagnostic::error(key.span, format!("unknown action field `{}`", key.node))
                        .with_hint("an action holds one block: `steps { … }`"),
                );
                return Err(Failed);
            }
            steps_span = Some(key.span);
            p.eat_punct(":");
            p.block(|p| {
                steps.push(p.step()?);
                Ok(())
            })?;
            Ok(())
        })?;
        Ok(ActionDecl {
            name,
            params,
            steps,
            steps_span,
            span: kw.to(end),
            broken: self.error_mark() > errors_before,
        })
    }

    fn job_value(&mut self, key: &str) -> PResult<JobValue> {
        match key {
            "description" | "run_at" | "timezone" => {
                Ok(JobValue::Str(self.string("a string in quotes")?))
            }
            "schedule" => {
                if self.eat_word("every") {
                    Ok(JobValue::Every(self.duration()?))
                } else if matches!(self.peek().kind, TokKind::Str(_)) {
                    Ok(JobValue::Str(self.string("a cron expression")?))
                } else {
                    self.expected_hint(
                        "a cron expression in quotes or `every <duration>`",
                        "e.g. `schedule: \"0 6 * * *\"` or `schedule: every 30m`",
                    )
                }
            }
            "timeout" => Ok(JobValue::Duration(self.duration()?)),
            "queue" | "job_type" | "overlap" => Ok(JobValue::Ident(self.ident("a name")?)),
            "retry" => {
                let times = match self.peek().kind {
                    TokKind::Int(_) => self.int("a number")?,
                    _ => {
                        return self.expected_hint(
                            "a number of retries",
                            "write it like `retry: 3 times` or `retry: 3 times with exponential_backoff`",
                        )
                    }
                };
                if !self.eat_word("times") {
                    let hint = "write it like `retry: 3 times`";
                    // `retry: 3` at the end of its line: the mistake is on that line, not at the
                    // next line's first word.
                    let next = self.peek().span;
                    let between = self.source.get(times.span.end..next.start).unwrap_or("");
                    if next.start >= times.span.end && between.contains('\n') {
                        let message = format!("expected `times` after `retry: {}`", times.node);
                        let mut d = Diagnostic::error(times.span, message);
                        d.hint = Some(hint.to_string());
                        self.diagnostics.push(d);
                        return Err(Failed);
                    }
                    return self.expected_hint("`times`", hint);
                }
                let strategy = if self.eat_word("with") {
                    Some(self.ident("a retry strategy such as `exponential_backoff`")?)
                } else {
                    None
                };
                Ok(JobValue::Retry { times, strategy })
            }
            "retry_delays" => {
                self.expect_punct("[")?;
                let mut delays = Vec::new();
                while !self.is_punct("]") {
                    delays.push(self.duration()?);
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                self.expect_punct("]")?;
                Ok(JobValue::Durations(delays))
            }
            "on_complete" | "on_fail" => Ok(JobValue::Emit(
                self.event_of("emit", "e.g. `on_fail: emit(JobFailed)`")?,
            )),
            "trigger" => Ok(JobValue::On(
                self.event_of("on", "e.g. `trigger: on(OrderPlaced)`")?,
            )),
            _ => Ok(JobValue::Expr(self.expr()?)),
        }
    }

    fn step(&mut self) -> PResult<Step> {
        let errors_before = self.error_mark();
        let name = self.ident("a step name")?;
        let mut fields = Vec::new();
        let mut body: Option<Spanned<Vec<Step>>> = None;
        // `name {` at the start of a line is the next step: this step's `}` is missing
        // (`steps {` is this step's own block of steps).
        let next_step = |p: &Self| {
            p.peek().line_start
                && matches!(&p.peek().kind, TokKind::Ident(w) if w != "steps")
                && matches!(p.peek_at(1).kind, TokKind::Punct("{"))
        };
        let end = self.block_until(next_step, |p| {
            let key = p.ident("a step field")?;
            if key.node == "steps" && !p.is_punct(":") {
                let mut steps = Vec::new();
                p.block(|p| {
                    steps.push(p.step()?);
                    Ok(())
                })?;
                if body.is_some() {
                    p.diagnostics.push(Diagnostic::error(
                        key.span,
                        "`steps` is given twice in this step",
                    ));
                }
                body = Some(Spanned::new(steps, key.span));
                return Ok(());
            }
            p.expect_punct(":")?;
            let value = p.step_value(&key.node)?;
            fields.push(StepField {
                span: key.span.to(p.prev_span()),
                key,
                value,
            });
            Ok(())
        })?;
        Ok(Step {
            span: name.span.to(end),
            name,
            fields,
            body,
            broken: self.error_mark() > errors_before,
        })
    }

    fn step_value(&mut self, key: &str) -> PResult<StepValue> {
        match key {
            "query" => Ok(StepValue::Query(self.query()?)),
            "action" => Ok(StepValue::Action(self.action()?)),
            "call" => Ok(StepValue::Call(self.call_spec()?)),
            "send" => Ok(StepValue::Send(self.send()?)),
            "format" | "item" | "as" => Ok(StepValue::Ident(self.ident("a name")?)),
            "timeout" => Ok(StepValue::Duration(self.duration()?)),
            "on_empty" | "on_fail" => {
                let start = self.peek().span;
                let policy = self.policy()?;
                Ok(StepValue::Policy(Spanned::new(
                    policy,
                    start.to(self.prev_span()),
                )))
            }
            "emit" => {
                let event = self.ident("an event name")?;
                let payload = if self.is_punct("{") && !self.peek().line_start {
                    Some(self.expr()?)
                } else {
                    None
                };
                Ok(StepValue::Emit { event, payload })
            }
            "log" => {
                let level = match &self.peek_at(0).kind {
                    TokKind::Ident(w)
                        if ["debug", "info", "warn", "error"].contains(&w.as_str())
                            && self.starts_log_message(self.peek_at(1)) =>
                    {
                        Some(self.ident("a level")?)
                    }
                    _ => None,
                };
                Ok(StepValue::Log {
                    level,
                    message: self.expr()?,
                })
            }
            _ => Ok(StepValue::Expr(self.expr()?)),
        }
    }

    /// After a level word in `log:`, does `next` begin the message? Only tokens that cannot
    /// continue an expression whose first word is the level count (`warn - 1` and `warn(x)` stay
    /// expressions over a binding named `warn`).
    fn starts_log_message(&self, next: &Tok) -> bool {
        match &next.kind {
            TokKind::Punct(p) => !next.line_start && matches!(*p, "{" | "!"),
            TokKind::Ident(w) if CLAUSE_WORDS.contains(&w.as_str()) => false,
            _ => starts_operand(next),
        }
    }

    /// Whether the clause word at the cursor, where an expression should begin, begins a clause
    /// instead (`order by total`, `limit 10`): the expression was left out. Followed by anything
    /// else (`order.total`, `order -> …`, `limit * 2`, the end of the line, the next field), it
    /// is a name: an item or a binding may be called `order`, `limit` or `set`.
    fn begins_clause(&self) -> bool {
        let next = self.peek_at(1);
        let names_a_field = matches!(next.kind, TokKind::Ident(_))
            && matches!(&self.peek_at(2).kind, TokKind::Punct(":"));
        starts_operand(next) && !names_a_field
    }

    /// The entity of a query or action; a clause word there means the entity was left out.
    fn entity_name(&mut self) -> PResult<Ident> {
        match &self.peek().kind {
            TokKind::Ident(w) if CLAUSE_WORDS.contains(&w.as_str()) => self.expected_hint(
                "an entity name",
                "e.g. `select Product where quantity < 10`",
            ),
            _ => self.ident("an entity name"),
        }
    }

    fn policy(&mut self) -> PResult<PolicyDef> {
        let word = self.ident("`skip(\"…\")`, `abort(\"…\")` or `continue`")?;
        let message = |p: &mut Self| -> PResult<Option<Spanned<String>>> {
            if p.eat_punct("(") {
                let s = p.string("a message in quotes")?;
                p.expect_punct(")")?;
                Ok(Some(s))
            } else {
                Ok(None)
            }
        };
        match word.node.as_str() {
            "skip" => Ok(PolicyDef::Skip(message(self)?)),
            "abort" => Ok(PolicyDef::Abort(message(self)?)),
            "continue" => Ok(PolicyDef::Continue),
            other => {
                self.diagnostics.push(
                    Diagnostic::error(word.span, format!("unknown policy `{other}`"))
                        .with_hint("use `skip(\"reason\")`, `abort(\"message\")` or `continue`"),
                );
                Err(Failed)
            }
        }
    }

    fn query(&mut self) -> PResult<Query> {
        let start = self.peek().span;
        let (count, aggregate) = if self.eat_word("select") {
            (false, false)
        } else if self.eat_word("count") {
            (true, false)
        } else if self.eat_word("aggregate") {
            (false, true)
        } else {
            return self.expected_hint(
                "`select`, `count` or `aggregate`",
                "e.g. `query: select Product where quantity < 10`",
            );
        };
        let entity = self.entity_name()?;
        let columns = if aggregate {
            if !self.is_punct("{") {
                return self.expected_hint(
                    "`{` and the aggregate's columns",
                    "e.g. `query: aggregate Order { revenue: sum(total), orders: count() }`",
                );
            }
            self.named_args()?
        } else {
            Vec::new()
        };
        let filter = if self.eat_word("where") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if aggregate && self.eat_word("group") {
            if !self.eat_word("by") {
                return self.expected("`by`");
            }
            group_by = self.idents("a field name")?;
        }
        let mut order = Vec::new();
        let mut limit = None;
        if !count && self.eat_word("order") {
            if !self.eat_word("by") {
                return self.expected("`by`");
            }
            loop {
                let field = self.ident("a field name")?;
                let desc = if self.eat_word("desc") {
                    true
                } else {
                    self.eat_word("asc");
                    false
                };
                order.push((field, desc));
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        if !count && self.eat_word("limit") {
            limit = Some(self.expr()?);
        }
        let offset = if !count && self.eat_word("offset") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        Ok(Query {
            count,
            entity,
            aggregate: aggregate.then_some(Aggregate { columns, group_by }),
            filter,
            order,
            limit,
            offset,
            span: start.to(self.prev_span()),
        })
    }

    fn action(&mut self) -> PResult<Action> {
        let start = self.peek().span;
        let word =
            self.ident("`delete`, `update`, `insert`, `upsert`, `maintain` or a procedure call")?;
        match word.node.as_str() {
            "delete" if !self.is_punct("(") => {
                let entity = self.entity_name()?;
                let filter = if self.eat_word("where") {
                    Some(self.expr()?)
                } else {
                    None
                };
                Ok(Action::Delete {
                    entity,
                    filter,
                    span: start.to(self.prev_span()),
                })
            }
            "update" if !self.is_punct("(") => {
                let entity = self.entity_name()?;
                if !self.eat_word("set") {
                    return self
                        .expected_hint("`set`", "e.g. `update Product set quantity = 0 where …`");
                }
                let mut set = Vec::new();
                loop {
                    let field = self.ident("a field name")?;
                    if !(self.eat_punct("=") || self.eat_punct("==")) {
                        return self.expected("`=`");
                    }
                    set.push((field, self.expr()?));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                let filter = if self.eat_word("where") {
                    Some(self.expr()?)
                } else {
                    None
                };
                Ok(Action::Update {
                    entity,
                    set,
                    filter,
                    span: start.to(self.prev_span()),
                })
            }
            "insert" if !self.is_punct("(") => {
                let entity = self.entity_name()?;
                let values = self.named_args()?;
                Ok(Action::Insert {
                    entity,
                    values,
                    span: start.to(self.prev_span()),
                })
            }
            "upsert" if !self.is_punct("(") => {
                let entity = self.entity_name()?;
                let values = self.named_args()?;
                let mut keys = Vec::new();
                if self.eat_word("on") {
                    if !self.eat_punct("[") {
                        return self.expected_hint("`[`", "the key in brackets: `on [sku]`");
                    }
                    keys = self.idents("a key field")?;
                    self.expect_punct("]")?;
                }
                Ok(Action::Upsert {
                    entity,
                    values,
                    keys,
                    span: start.to(self.prev_span()),
                })
            }
            "maintain" if !self.is_punct("(") => {
                let op = self.ident("`vacuum`, `analyze` or `reindex`")?;
                let entity = match &self.peek().kind {
                    TokKind::Ident(_) if !self.peek().line_start => Some(self.ident("an entity")?),
                    _ => None,
                };
                Ok(Action::Maintain {
                    op,
                    entity,
                    span: start.to(self.prev_span()),
                })
            }
            _ => {
                if !self.is_punct("(") {
                    return self.expected_hint(
                        "`(` after a procedure name",
                        "actions are `delete E where …`, `update E set … where …`, `insert E { … }`, `upsert E { … } on [key]`, `maintain vacuum` or a call like `delete_report(id)`",
                    );
                }
                let args = self.call_args()?;
                Ok(Action::Proc {
                    name: word,
                    args,
                    span: start.to(self.prev_span()),
                })
            }
        }
    }

    /// `word(Event)`, as in `emit(JobFailed)` and `on(OrderPlaced)`: the event.
    fn event_of(&mut self, word: &str, hint: &str) -> PResult<Ident> {
        if !self.eat_word(word) {
            return self.expected_hint(&format!("`{word}(Event)`"), hint);
        }
        self.expect_punct("(")?;
        let event = self.ident("an event name")?;
        self.expect_punct(")")?;
        Ok(event)
    }

    /// `a, b, c`: one name or more, separated by commas.
    fn idents(&mut self, what: &str) -> PResult<Vec<Ident>> {
        let mut names = vec![self.ident(what)?];
        while self.eat_punct(",") {
            names.push(self.ident(what)?);
        }
        Ok(names)
    }

    /// `{ name: expr, … }`
    fn named_args(&mut self) -> PResult<Vec<(Ident, Expr)>> {
        let mut args = Vec::new();
        self.block(|p| {
            let name = p.ident("a name")?;
            p.expect_punct(":")?;
            args.push((name, p.expr()?));
            Ok(())
        })?;
        Ok(args)
    }

    fn call_spec(&mut self) -> PResult<CallSpec> {
        let start = self.peek().span;
        let integration = self.ident("an integration name")?;
        if !self.eat_punct(".") {
            return self.expected_hint(
                "`.`",
                "e.g. `call: WarehouseAPI.get_inventory { since: … }`",
            );
        }
        let operation = self.ident("an operation name")?;
        let args = if self.is_punct("{") && !self.peek().line_start {
            self.named_args()?
        } else {
            Vec::new()
        };
        Ok(CallSpec {
            integration,
            operation,
            args,
            span: start.to(self.prev_span()),
        })
    }

    fn send(&mut self) -> PResult<Send> {
        let start = self.peek().span;
        let channel_kind = self.ident("`email(…)` or `slack(…)`")?;
        self.expect_punct("(")?;
        let target = self.expr()?;
        self.expect_punct(")")?;
        let fields = if self.is_punct("{") {
            self.named_args()?
        } else {
            Vec::new()
        };
        Ok(Send {
            channel_kind,
            target,
            fields,
            span: start.to(self.prev_span()),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------------------------------

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        // `item -> condition` anywhere (the checker takes it only in `filter` and `find`).
        let r = match (&self.peek().kind, &self.peek_at(1).kind) {
            (TokKind::Ident(name), TokKind::Punct("->")) => {
                let param = Spanned::new(name.clone(), self.bump().span);
                self.lambda(param)
            }
            _ => self.conditional(),
        };
        self.leave();
        r
    }

    fn conditional(&mut self) -> PResult<Expr> {
        let cond = self.coalesce()?;
        if self.eat_punct("?") {
            let a = self.expr()?;
            self.expect_punct(":")?;
            let b = self.expr()?;
            let span = cond.span.to(b.span);
            return Ok(Expr {
                kind: ExprKind::Cond(Box::new(cond), Box::new(a), Box::new(b)),
                span,
            });
        }
        Ok(cond)
    }

    fn binary_level(
        &mut self,
        next: fn(&mut Self) -> PResult<Expr>,
        ops: &[(&str, BinaryOp)],
    ) -> PResult<Expr> {
        let mark = self.error_mark();
        let (mut lhs, mut height) = self.measured(next)?;
        loop {
            let op = ops.iter().find(|(t, _)| match &self.peek().kind {
                TokKind::Punct(p) => p == t,
                TokKind::Ident(w) => w == t,
                _ => false,
            });
            let Some((_, op)) = op else { return Ok(lhs) };
            let at = self.bump().span;
            let (rhs, rhs_height) = self.measured(next)?;
            height = height.max(rhs_height) + 1;
            self.chained(height, at, mark)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(*op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
    }

    fn coalesce(&mut self) -> PResult<Expr> {
        self.binary_level(Self::or, &[("??", BinaryOp::Coalesce)])
    }

    fn or(&mut self) -> PResult<Expr> {
        self.binary_level(Self::and, &[("or", BinaryOp::Or), ("||", BinaryOp::Or)])
    }

    fn and(&mut self) -> PResult<Expr> {
        self.binary_level(
            Self::comparison,
            &[("and", BinaryOp::And), ("&&", BinaryOp::And)],
        )
    }

    fn comparison(&mut self) -> PResult<Expr> {
        const OPS: &[(&str, BinaryOp)] = &[
            ("==", BinaryOp::Eq),
            ("=", BinaryOp::Eq),
            ("!=", BinaryOp::Ne),
            ("<=", BinaryOp::Le),
            (">=", BinaryOp::Ge),
            ("<", BinaryOp::Lt),
            (">", BinaryOp::Gt),
            ("in", BinaryOp::In),
            ("like", BinaryOp::Like),
        ];
        let lhs = self.additive()?;
        let op = OPS.iter().find(|(t, _)| match &self.peek().kind {
            TokKind::Punct(p) => p == t,
            TokKind::Ident(w) => w == t,
            _ => false,
        });
        let Some((_, op)) = op else { return Ok(lhs) };
        self.bump();
        let rhs = self.additive()?;
        let span = lhs.span.to(rhs.span);
        let expr = Expr {
            kind: ExprKind::Binary(*op, Box::new(lhs), Box::new(rhs)),
            span,
        };
        if let Some((t, _)) = OPS.iter().find(|(t, _)| match &self.peek().kind {
            TokKind::Punct(p) => p == t,
            TokKind::Ident(w) => w == t,
            _ => false,
        }) {
            let tok = self.peek().span;
            self.diagnostics.push(
                Diagnostic::error(tok, format!("comparisons cannot be chained (`{t}`)"))
                    .with_hint("combine comparisons with `and` / `or`"),
            );
            return Err(Failed);
        }
        Ok(expr)
    }

    fn additive(&mut self) -> PResult<Expr> {
        self.binary_level(
            Self::multiplicative,
            &[("+", BinaryOp::Add), ("-", BinaryOp::Sub)],
        )
    }

    fn multiplicative(&mut self) -> PResult<Expr> {
        self.binary_level(
            Self::unary,
            &[
                ("*", BinaryOp::Mul),
                ("/", BinaryOp::Div),
                ("%", BinaryOp::Rem),
            ],
        )
    }

    fn unary(&mut self) -> PResult<Expr> {
        let start = self.peek().span;
        let op = if self.is_word("not") || self.is_punct("!") {
            Some(UnaryOp::Not)
        } else if self.is_punct("-") {
            Some(UnaryOp::Neg)
        } else {
            None
        };
        if let Some(op) = op {
            self.bump();
            self.enter()?;
            let inner = self.unary();
            self.leave();
            let inner = inner?;
            let span = start.to(inner.span);
            return Ok(Expr {
                kind: ExprKind::Unary(op, Box::new(inner)),
                span,
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mark = self.error_mark();
        let (mut e, mut height) = self.measured(Self::atom)?;
        loop {
            let field = self.is_punct(".") || self.is_punct("?.");
            // A `[` that starts a line begins something else (a list), not an index.
            let index = self.is_punct("[") && !self.peek().line_start;
            if !(field || index) {
                return Ok(e);
            }
            let at = self.peek().span;
            if field {
                e = self.field_link(e)?;
                height += 1;
            } else {
                let (linked, index_height) = self.measured(|p| p.index_link(e))?;
                e = linked;
                // The index is a child of the link, as the value before it is.
                height = height.max(index_height) + 1;
            }
            self.chained(height, at, mark)?;
        }
    }

    /// `e.field` or `e?.field`, at the `.` or `?.`.
    fn field_link(&mut self, e: Expr) -> PResult<Expr> {
        let optional = self.is_punct("?.");
        self.bump();
        let field = self.ident("a field name after `.`")?;
        let span = e.span.to(field.span);
        let kind = if optional {
            ExprKind::OptField(Box::new(e), field)
        } else {
            ExprKind::Field(Box::new(e), field)
        };
        Ok(Expr { kind, span })
    }

    /// `e[index]`, at the `[`.
    fn index_link(&mut self, e: Expr) -> PResult<Expr> {
        self.bump();
        let index = self.expr()?;
        let end = self.expect_punct("]")?;
        let span = e.span.to(end);
        Ok(Expr {
            kind: ExprKind::Index(Box::new(e), Box::new(index)),
            span,
        })
    }

    fn call_args(&mut self) -> PResult<Vec<Expr>> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        while !self.is_punct(")") {
            args.push(match self.lambda_start() {
                Some(param) => self.lambda(param)?,
                None => self.expr()?,
            });
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")")?;
        Ok(args)
    }

    /// At `item -> condition` (an argument of `filter` and `find`): the item's name, the
    /// parser left at the `->`. JavaScript's `item => …` and Python's `lambda item: …` are read
    /// as that too, after an error that says how it is written here.
    fn lambda_start(&mut self) -> Option<Ident> {
        let TokKind::Ident(word) = &self.peek().kind else {
            return None;
        };
        let word = word.clone();
        let (next, after) = (self.peek_at(1).clone(), self.peek_at(2).clone());
        if next.kind == TokKind::Punct("->") {
            return Some(Spanned::new(word, self.bump().span));
        }
        let arrow = next.kind == TokKind::Punct("=")
            && after.kind == TokKind::Punct(">")
            && next.span.end == after.span.start;
        if arrow {
            let param = Spanned::new(word, self.bump().span);
            self.bump(); // `=`: `lambda` takes the `>`
            self.diagnostics.push(
                Diagnostic::error(
                    next.span.to(after.span),
                    "a condition on each item is written with `->`, not `=>`",
                )
                .with_hint(format!("write `{} -> …`", param.node)),
            );
            return Some(param);
        }
        let python = word == "lambda"
            && matches!(next.kind, TokKind::Ident(_))
            && after.kind == TokKind::Punct(":");
        if python {
            let TokKind::Ident(name) = next.kind else {
                return None;
            };
            let keyword = self.bump().span;
            let param = Spanned::new(name, self.bump().span);
            self.diagnostics.push(
                Diagnostic::error(
                    keyword.to(after.span),
                    "a condition on each item is written without `lambda`",
                )
                .with_hint(format!("write `{} -> …`", param.node)),
            );
            return Some(param);
        }
        None
    }

    /// The condition of `item -> condition`, after the item's name (the `->` is next).
    fn lambda(&mut self, param: Ident) -> PResult<Expr> {
        self.bump(); // `->` (or the `>` of `=>`, or the `:` after `lambda x`)
        let body = self.expr()?;
        let span = param.span.to(body.span);
        Ok(Expr {
            kind: ExprKind::Lambda(param, Box::new(body)),
            span,
        })
    }

    fn atom(&mut self) -> PResult<Expr> {
        let tok = self.peek().clone();
        let simple = |kind| {
            Ok(Expr {
                kind,
                span: tok.span,
            })
        };
        match &tok.kind {
            TokKind::Int(n) => {
                self.bump();
                simple(ExprKind::Int(*n))
            }
            TokKind::Float(f) => {
                self.bump();
                simple(ExprKind::Float(*f))
            }
            TokKind::Duration(ms) => {
                self.bump();
                simple(ExprKind::Duration(Duration { millis: *ms }))
            }
            TokKind::Str(s) => {
                self.bump();
                simple(ExprKind::Str(s.clone()))
            }
            TokKind::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                simple(ExprKind::Bool(w == "true"))
            }
            TokKind::Ident(w) if w == "null" => {
                self.bump();
                simple(ExprKind::Null)
            }
            TokKind::Ident(w) if CLAUSE_WORDS.contains(&w.as_str()) && self.begins_clause() => {
                self.expected("an expression")
            }
            TokKind::Ident(w) => {
                let name = Spanned::new(w.clone(), tok.span);
                self.bump();
                if self.is_punct("(") && !self.peek().line_start {
                    let args = self.call_args()?;
                    let span = tok.span.to(self.prev_span());
                    return Ok(Expr {
                        kind: ExprKind::Call(name, args),
                        span,
                    });
                }
                simple(ExprKind::Ident(w.clone()))
            }
            TokKind::Punct("(") => {
                self.bump();
                let inner = self.expr()?;
                self.expect_punct(")")?;
                Ok(inner)
            }
            TokKind::Punct("[") => {
                self.bump();
                self.enter()?;
                let mut items = Vec::new();
                let r = loop {
                    if self.is_punct("]") {
                        break Ok(());
                    }
                    match self.expr() {
                        Ok(e) => items.push(e),
                        Err(f) => break Err(f),
                    }
                    if !self.eat_punct(",") && !self.is_punct("]") {
                        if self.peek().line_start && !self.at_eof() {
                            continue;
                        }
                        break self.expected("`,` or `]`");
                    }
                };
                self.leave();
                r?;
                let end = self.expect_punct("]")?;
                Ok(Expr {
                    kind: ExprKind::List(items),
                    span: tok.span.to(end),
                })
            }
            TokKind::Punct("{") => {
                let mut entries = Vec::new();
                let end = self.block(|p| {
                    let key = match &p.peek().kind {
                        TokKind::Str(s) => {
                            let s = s.clone();
                            let span = p.bump().span;
                            Spanned::new(s, span)
                        }
                        _ => p.ident("a key")?,
                    };
                    p.expect_punct(":")?;
                    entries.push((key, p.expr()?));
                    Ok(())
                })?;
                Ok(Expr {
                    kind: ExprKind::Object(entries),
                    span: tok.span.to(end),
                })
            }
            _ => self.expected("an expression"),
        }
    }
}

/// Whether `next`, on the same line, starts an operand of its own rather than continuing an
/// expression: a literal, or a word that is not an infix operator (`and`, `or`, `in`, `like`).
fn starts_operand(next: &Tok) -> bool {
    !next.line_start
        && match &next.kind {
            TokKind::Str(_) | TokKind::Int(_) | TokKind::Float(_) | TokKind::Duration(_) => true,
            TokKind::Ident(w) => !matches!(w.as_str(), "and" | "or" | "in" | "like"),
            _ => false,
        }
}

#[cfg(test)]
mod tests;
