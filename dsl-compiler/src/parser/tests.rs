//! Parser unit tests: small inputs, one behaviour each.

use super::parse;
use crate::ast::*;

/// Parses `src` and returns the tree, asserting there are no diagnostics.
fn ok(src: &str) -> File {
    let (file, diags) = parse(src);
    assert!(
        diags.is_empty(),
        "unexpected diagnostics for {src:?}: {:#?}",
        diags
    );
    file
}

/// Parses `src` and returns the diagnostic messages.
fn errors(src: &str) -> Vec<String> {
    parse(src).1.into_iter().map(|d| d.message).collect()
}

/// Renders an expression compactly, for precedence tests.
fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Null => "null".into(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(f) => format!("{f:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Duration(d) => format!("{}ms", d.millis),
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Field(b, f) => format!("{}.{}", show(b), f.node),
        ExprKind::OptField(b, f) => format!("{}?.{}", show(b), f.node),
        ExprKind::Index(b, i) => format!("{}[{}]", show(b), show(i)),
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", k.node, show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Unary(op, e) => format!("({op:?} {})", show(e)),
        ExprKind::Binary(op, a, b) => format!("({} {op:?} {})", show(a), show(b)),
        ExprKind::Cond(c, a, b) => format!("({} ? {} : {})", show(c), show(a), show(b)),
        ExprKind::Call(n, args) => format!(
            "{}({})",
            n.node,
            args.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Lambda(item, body) => format!("({} -> {})", item.node, show(body)),
    }
}

/// Parses `expr` as the value of a `compute:` step and renders it.
fn expr(src: &str) -> String {
    let file = ok(&format!(
        "job J {{\n steps {{\n s {{\n compute: {src}\n }}\n }}\n}}\n"
    ));
    let Item::Job(job) = &file.items[0] else {
        panic!("not a job")
    };
    match &job.steps[0].fields[0].value {
        StepValue::Expr(e) => show(e),
        other => panic!("not an expression: {other:?}"),
    }
}

#[test]
fn precedence() {
    for (src, expected) in [
        ("1 + 2 * 3", "(1 Add (2 Mul 3))"),
        ("a and b or c", "((a And b) Or c)"),
        ("a or b and c", "(a Or (b And c))"),
        ("not a = b", "((Not a) Eq b)"),
        ("x < 10 and y != \"s\"", "((x Lt 10) And (y Ne \"s\"))"),
        ("now() - 30d", "(now() Sub 2592000000ms)"),
        ("a ?? b ? c : d", "((a Coalesce b) ? c : d)"),
        ("-a.b[0]", "(Neg a.b[0])"),
        ("status in [\"a\", \"b\"]", "(status In [\"a\", \"b\"])"),
        ("name like \"A%\"", "(name Like \"A%\")"),
        ("yesterday().start", "yesterday().start"),
        ("{ a: 1, b: [x, y] }", "{a: 1, b: [x, y]}"),
        ("(1 + 2) * 3", "((1 Add 2) Mul 3)"),
        ("a == b && c || !d", "(((a Eq b) And c) Or (Not d))"),
        (
            "round(sum(orders, \"total\"), 2)",
            "round(sum(orders, \"total\"), 2)",
        ),
        ("1.5 % 2", "(1.5 Rem 2)"),
        ("null ?? true", "(null Coalesce true)"),
        (
            "filter(rows, r -> r.amount > 100 and not r.void)",
            "filter(rows, (r -> ((r.amount Gt 100) And (Not r.void))))",
        ),
        (
            "count(find(xs, x -> x.id = input.id ? a : b))",
            "count(find(xs, (x -> ((x.id Eq input.id) ? a : b))))",
        ),
        ("a-1", "(a Sub 1)"),
    ] {
        assert_eq!(expr(src), expected, "{src}");
    }
}

#[test]
fn javascript_and_python_conditions_on_items_are_read_with_an_error_saying_how() {
    let job = |e: &str| format!("job J {{\n steps {{\n s {{\n compute: {e}\n }}\n }}\n}}\n");
    let (file, diags) = parse(&job("filter(rows, r => r.ok)"));
    assert_eq!(
        diags.iter().map(|d| d.message.as_str()).collect::<Vec<_>>(),
        ["a condition on each item is written with `->`, not `=>`"]
    );
    assert_eq!(diags[0].hint.as_deref(), Some("write `r -> …`"));
    let Item::Job(j) = &file.items[0] else {
        panic!("not a job")
    };
    let StepValue::Expr(e) = &j.steps[0].fields[0].value else {
        panic!("not an expression")
    };
    assert_eq!(show(e), "filter(rows, (r -> r.ok))");
    assert_eq!(
        errors(&job("find(rows, lambda r: r.ok)")),
        ["a condition on each item is written without `lambda`"]
    );
    // `a = > b` is not an arrow.
    assert_eq!(
        errors(&job("f(a = > b)")),
        ["expected an expression, found `>`"]
    );
}

#[test]
fn chained_comparisons_are_rejected() {
    let errs = errors("job J {\n steps {\n s {\n compute: a < b < c\n }\n }\n}\n");
    assert_eq!(
        errs,
        vec!["comparisons cannot be chained (`<`)".to_string()]
    );
}

#[test]
fn job_fields_of_every_form() {
    let file = ok(r#"
job J {
    description: "d"
    schedule: every 30m
    timezone: "UTC"
    queue: low
    timeout: 2h
    retry: 3 times with exponential_backoff
    retry_delays: [1m, 5m]
    on_fail: emit(Failed)
    input: { who: ["a@b.c"] }
    steps { s { log: "hi" } }
}
"#);
    let Item::Job(job) = &file.items[0] else {
        panic!()
    };
    let kinds: Vec<String> = job
        .fields
        .iter()
        .map(|f| {
            let v = match &f.value {
                JobValue::Str(s) => format!("str {}", s.node),
                JobValue::Every(d) => format!("every {}", d.node.millis),
                JobValue::Duration(d) => format!("duration {}", d.node.millis),
                JobValue::Ident(i) => format!("ident {}", i.node),
                JobValue::Retry { times, strategy } => format!(
                    "retry {} {}",
                    times.node,
                    strategy.as_ref().map(|s| s.node.as_str()).unwrap_or("-")
                ),
                JobValue::Durations(d) => format!("durations {}", d.len()),
                JobValue::Emit(e) => format!("emit {}", e.node),
                JobValue::On(e) => format!("on {}", e.node),
                JobValue::Expr(e) => format!("expr {}", show(e)),
            };
            format!("{}: {v}", f.key.node)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "description: str d",
            "schedule: every 1800000",
            "timezone: str UTC",
            "queue: ident low",
            "timeout: duration 7200000",
            "retry: retry 3 exponential_backoff",
            "retry_delays: durations 2",
            "on_fail: emit Failed",
            "input: expr {who: [\"a@b.c\"]}",
        ]
    );
    assert_eq!(job.steps.len(), 1);
    assert!(job.steps_span.is_some());
}

#[test]
fn step_forms() {
    let file = ok(r##"
job J {
    steps {
        q { query: select Order where total > 10 and status != "x" order by created_at desc, id limit 5
            as: rows
            on_empty: skip("none") }
        c { query: count Order where total > 10 }
        d { action: delete Session where expires_at < now() }
        u { action: update Webhook set attempts = attempts + 1, status = "x" where id = 1 }
        i { action: insert Event { name: "n", at: now() } }
        m { action: maintain vacuum Order }
        p { action: delete_report(r.id) }
        h { call: Api.op { since: now() }
            timeout: 60s
            on_fail: abort("failed") }
        e { send: email(["a@b.c"]) { subject: "s", attachment: r } }
        s { send: slack("#alerts") { template: "t" } }
        v { emit: Ev { n: 1 } }
        w { emit: Ev }
        l { log: warn "careful {{x}}" }
        f { for_each: rows
            item: row
            parallel: 4
            on_fail: continue }
    }
}
"##);
    let Item::Job(job) = &file.items[0] else {
        panic!()
    };
    let first_values: Vec<&StepValue> = job.steps.iter().map(|s| &s.fields[0].value).collect();
    assert!(
        matches!(first_values[0], StepValue::Query(Query { count: false, order, limit: Some(_), filter: Some(_), .. }) if order.len() == 2 && order[0].1 && !order[1].1)
    );
    assert!(matches!(
        first_values[1],
        StepValue::Query(Query { count: true, .. })
    ));
    assert!(matches!(
        first_values[2],
        StepValue::Action(Action::Delete {
            filter: Some(_),
            ..
        })
    ));
    assert!(
        matches!(first_values[3], StepValue::Action(Action::Update { set, filter: Some(_), .. }) if set.len() == 2)
    );
    assert!(
        matches!(first_values[4], StepValue::Action(Action::Insert { values, .. }) if values.len() == 2)
    );
    assert!(matches!(
        first_values[5],
        StepValue::Action(Action::Maintain {
            entity: Some(_),
            ..
        })
    ));
    assert!(
        matches!(first_values[6], StepValue::Action(Action::Proc { args, .. }) if args.len() == 1)
    );
    assert!(matches!(first_values[7], StepValue::Call(CallSpec { args, .. }) if args.len() == 1));
    assert!(matches!(first_values[8], StepValue::Send(Send { fields, .. }) if fields.len() == 2));
    assert!(
        matches!(first_values[9], StepValue::Send(Send { channel_kind, .. }) if channel_kind.node == "slack")
    );
    assert!(matches!(
        first_values[10],
        StepValue::Emit {
            payload: Some(_),
            ..
        }
    ));
    assert!(matches!(
        first_values[11],
        StepValue::Emit { payload: None, .. }
    ));
    assert!(matches!(first_values[12], StepValue::Log { level: Some(l), .. } if l.node == "warn"));
    let q = &job.steps[0].fields;
    assert!(
        matches!(&q[2].value, StepValue::Policy(p) if matches!(&p.node, PolicyDef::Skip(Some(s)) if s.node == "none"))
    );
    let h = &job.steps[7].fields;
    assert!(matches!(&h[1].value, StepValue::Duration(d) if d.node.millis == 60_000));
    assert!(
        matches!(&h[2].value, StepValue::Policy(p) if matches!(&p.node, PolicyDef::Abort(Some(s)) if s.node == "failed"))
    );
    let f = &job.steps[13].fields;
    assert_eq!(f.len(), 4);
    assert!(matches!(&f[3].value, StepValue::Policy(p) if p.node == PolicyDef::Continue));
}

#[test]
fn declarations() {
    let file = ok(r#"
entity Product { table: "products", id: uuid primary
  note: string optional }
integration Api {
    base_url: env("API_URL")
    auth: header("X-Key", env("KEY"))
    timeout: 5s
    get: GET "/items/{id}" { id: string }
    ping: POST "/ping"
}
template t { title: "T", table: rows { a: "A", b: "B" }, totals: [b] }
event E { n: int, s: string }
event Bare
queue bulk { weight: 2 }
"#);
    assert_eq!(file.items.len(), 6);
    let Item::Entity(e) = &file.items[0] else {
        panic!()
    };
    assert_eq!(e.table.as_ref().unwrap().node, "products");
    assert!(e.fields[0].primary && !e.fields[0].optional);
    assert!(e.fields[1].optional);
    let Item::Integration(i) = &file.items[1] else {
        panic!()
    };
    assert_eq!(i.operations.len(), 2);
    assert_eq!(i.operations[0].params.len(), 1);
    assert!(
        matches!(&i.auth.as_ref().unwrap().node, AuthDef::Header(h, ValueSource::Env(k)) if h == "X-Key" && k == "KEY")
    );
    let Item::Template(t) = &file.items[2] else {
        panic!()
    };
    assert_eq!(t.table.as_ref().unwrap().columns.len(), 2);
    assert_eq!(t.totals.len(), 1);
    let Item::Queue(q) = &file.items[5] else {
        panic!()
    };
    assert_eq!(q.weight.as_ref().unwrap().node, 2);
}

#[test]
fn every_syntax_error_of_a_file_is_reported() {
    let errs = errors(
        "job A {\n    timeout: 5x\n    retry: three times\n}\njob B {\n    queue default\n}\n",
    );
    assert_eq!(
        errs,
        vec![
            "invalid duration unit `x` in `5x`",
            "expected a number of retries, found `three`",
            "expected `:`, found `default`",
        ]
    );
}

#[test]
fn a_missing_brace_does_not_swallow_the_next_item() {
    let (file, diags) = parse("job A {\n    queue: low\n\njob B {\n    queue: low\n}\n");
    let messages: Vec<_> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, vec!["expected `}`, found `job`"]);
    let names: Vec<_> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Job(j) => Some(j.name.node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        vec!["A", "B"],
        "the unclosed job is kept as far as it goes"
    );
}

#[test]
fn unknown_top_level_word() {
    assert_eq!(
        errors("jbo A {}\njob B { steps {} }\n"),
        vec![
            "expected `entity`, `integration`, `template`, `event`, `queue`, `job` or `action`, found `jbo`"
        ]
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "job J {{ input: {}1{} }}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let errs = errors(&deep);
    assert!(
        errs.iter().any(|e| e == "expression nested too deeply"),
        "{errs:?}"
    );
    let deep_objects = format!(
        "job J {{ input: {}{} }}",
        "{a:".repeat(3000),
        "}".repeat(3000)
    );
    assert!(!errors(&deep_objects).is_empty());
}

/// Operators and postfix links chain without nesting brackets, and each link is one level of
/// the tree: a chain of a hundred thousand terms is reported at the operator that goes too deep,
/// as nesting is, instead of overflowing the stack of what reads the tree after the parser.
#[test]
fn a_chain_of_operators_or_links_counts_as_nesting() {
    for (chain, at) in [
        (vec!["1"; 100_000].join(" + "), " + "),
        (vec!["1"; 100_000].join(" and "), " and "),
        (format!("input{}", ".a".repeat(100_000)), "."),
        (format!("input{}", "[0]".repeat(100_000)), "["),
        // Everything before a link is below it: a chain's first operand (here a chain in
        // brackets, itself starting with one) counts, so bracketing does not start afresh.
        (
            (0..30).fold("1".to_string(), |e, _| {
                format!("({e}{})", " + 1".repeat(30))
            }),
            " + ",
        ),
        (
            (0..30).fold("input".to_string(), |e, _| {
                format!("({e}{})", ".a".repeat(30))
            }),
            ".",
        ),
    ] {
        let source = format!("job J {{ steps {{ s {{ compute: {chain} as: x }} }} }}");
        let (_, diagnostics) = parse(&source);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errors.len(), 1, "{:?}", &errors[..errors.len().min(3)]);
        assert_eq!(errors[0].message, "expression nested too deeply");
        assert!(
            source[errors[0].span.start..].starts_with(at.trim()),
            "{:?}",
            errors[0].span
        );
    }
    // A part too deep, recovered from, is reported once, not again by the chain around it.
    let deep = format!("{{a: {}1{}}} + 1", "(".repeat(70), ")".repeat(70));
    let errs = errors(&format!(
        "job J {{ steps {{ s {{ compute: {deep} as: x }} }} }}"
    ));
    assert_eq!(
        errs.iter()
            .filter(|e| *e == "expression nested too deeply")
            .count(),
        1,
        "{errs:?}"
    );
    // Inside the limit, a chain is fine.
    let chain = vec!["1"; 50].join(" + ");
    assert_eq!(
        errors(&format!(
            "job J {{ steps {{ s {{ compute: {chain} as: x }} }} }}"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn the_example_parses_completely() {
    let src = include_str!("../../../examples/05-scheduled-jobs/scheduled-jobs.codeai");
    let file = ok(src);
    let count = |f: fn(&Item) -> bool| file.items.iter().filter(|i| f(i)).count();
    assert_eq!(count(|i| matches!(i, Item::Job(_))), 10);
    assert_eq!(count(|i| matches!(i, Item::Entity(_))), 6);
    assert_eq!(count(|i| matches!(i, Item::Integration(_))), 2);
    assert_eq!(count(|i| matches!(i, Item::Event(_))), 4);
    let low = file
        .items
        .iter()
        .find_map(|i| match i {
            Item::Job(j) if j.name.node == "LowStockAlert" => Some(j),
            _ => None,
        })
        .unwrap();
    let StepValue::Query(q) = &low.steps[0].fields[0].value else {
        panic!()
    };
    assert_eq!(q.entity.node, "Product");
    assert_eq!(
        show(q.filter.as_ref().unwrap()),
        "(quantity Le reorder_level)"
    );
    // Spans point at the text they came from.
    assert_eq!(&src[q.entity.span.range()], "Product");
}

/// The first job of `src`, which must parse to at least one item.
fn first_job(src: &str) -> Job {
    match parse(src).0.items.into_iter().next() {
        Some(Item::Job(job)) => job,
        other => panic!("not a job: {other:?}"),
    }
}

#[test]
fn a_malformed_literal_marks_its_step_and_job_broken() {
    // The lexer reports these; the parser adds nothing, but the checker must know the step
    // lost a field (or it would add "step does nothing" / "job has no steps").
    // (A bad escape is different: the string is kept, so its step is whole.)
    for value in ["99999999999999999999999", "now() - 5x", "1.5h"] {
        let src = format!("job J {{\n steps {{\n s {{ compute: {value} }}\n }}\n}}\n");
        let (_, diags) = parse(&src);
        assert_eq!(diags.len(), 1, "{value}: {diags:#?}");
        let job = first_job(&src);
        assert!(job.broken, "{value}: job not marked broken");
        assert_eq!(job.steps.len(), 1, "{value}");
        assert!(job.steps[0].broken, "{value}: step not marked broken");
    }
    let job = first_job("job J {\n steps 5x\n}\n");
    assert!(job.broken);
    // A clean step stays unbroken next to a broken one.
    let job = first_job("job J {\n steps {\n a { compute: 5x }\n b { log: \"ok\" }\n }\n}\n");
    assert!(job.steps[0].broken);
    assert!(!job.steps[1].broken);
}

#[test]
fn end_of_file_in_nested_blocks_is_one_error() {
    let (file, diags) = parse("job J {\n schedule: every 5m\n steps {\n s { log: \"x\" }");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].message, "expected `}`, found end of file");
    assert_eq!(
        diags[0].hint.as_deref(),
        Some("the `{` on line 3 is not closed")
    );
    // What was declared before the end is kept.
    let Item::Job(job) = &file.items[0] else {
        panic!("not a job")
    };
    assert_eq!(job.steps.len(), 1);
    assert!(job.broken);
}

#[test]
fn an_unterminated_comment_or_string_explains_the_missing_brace() {
    assert_eq!(
        errors("entity E {\n id: uuid /* no end\n}\n"),
        vec!["unterminated comment"]
    );
    assert_eq!(
        errors("job J {\n steps {\n s { log: \"x }\n }\n}\n"),
        vec!["unterminated string"]
    );
}

#[test]
fn a_clause_word_is_not_an_entity_name() {
    for action in [
        "query: select where id = 1",
        "query: count where id = 1",
        "action: delete where id = 1",
        "action: update set id = 1",
    ] {
        let src = format!("job J {{\n steps {{\n s {{ {action} }}\n }}\n}}\n");
        let (file, diags) = parse(&src);
        assert_eq!(diags.len(), 1, "{action}: {diags:#?}");
        assert!(
            diags[0]
                .message
                .starts_with("expected an entity name, found `"),
            "{action}: {}",
            diags[0].message
        );
        let Item::Job(job) = &file.items[0] else {
            panic!("not a job")
        };
        assert!(job.steps[0].broken);
    }
}

#[test]
fn log_levels_before_any_message() {
    let level_of = |log: &str| {
        let job = first_job(&format!(
            "job J {{\n steps {{\n s {{ log: {log} }}\n }}\n}}\n"
        ));
        assert!(!job.broken, "{log}");
        match &job.steps[0].fields[0].value {
            StepValue::Log { level, message } => {
                (level.as_ref().map(|l| l.node.clone()), show(message))
            }
            other => panic!("not a log: {other:?}"),
        }
    };
    let some = |l: &str, m: &str| (Some(l.to_string()), m.to_string());
    assert_eq!(level_of("warn \"low\""), some("warn", "\"low\""));
    assert_eq!(level_of("warn count(rows)"), some("warn", "count(rows)"));
    assert_eq!(level_of("error 1 + 2"), some("error", "(1 Add 2)"));
    assert_eq!(level_of("info not done"), some("info", "(Not done)"));
    assert_eq!(level_of("debug { n: 1 }"), some("debug", "{n: 1}"));
    // A binding that happens to be called like a level stays an expression.
    assert_eq!(level_of("error"), (None, "error".to_string()));
    assert_eq!(level_of("warn - 1"), (None, "(warn Sub 1)".to_string()));
    assert_eq!(level_of("info(x)"), (None, "info(x)".to_string()));
    assert_eq!(level_of("error and x"), (None, "(error And x)".to_string()));
    assert_eq!(level_of("info.count"), (None, "info.count".to_string()));
}

#[test]
fn a_step_missing_its_brace_ends_at_the_next_step() {
    let src = "job J {\n steps {\n a { log: \"x\"\n b { log: \"y\" }\n }\n}\n";
    let (file, diags) = parse(src);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].message, "expected `}`, found `b`");
    assert_eq!(
        diags[0].hint.as_deref(),
        Some("the `{` on line 3 is not closed")
    );
    let Item::Job(job) = &file.items[0] else {
        panic!("not a job")
    };
    let names: Vec<&str> = job.steps.iter().map(|s| s.name.node.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(job.steps[0].fields.len(), 1);
}

#[test]
fn clause_words_are_names_where_no_clause_follows() {
    // An e-commerce job's loop item is called `order`; a binding may be called `limit`.
    for (src, expected) in [
        ("order.total * 2", "(order.total Mul 2)"),
        ("limit * 2", "(limit Mul 2)"),
        ("order", "order"),
        (
            "filter(orders, order -> order.total > 10)",
            "filter(orders, (order -> (order.total Gt 10)))",
        ),
        ("count(set) and by", "(count(set) And by)"),
    ] {
        assert_eq!(expr(src), expected, "{src}");
    }
    let file = ok("job J {\n steps {\n s { for_each: orders item: order action: update Order set status = \"x\" where id = order.id }\n t { query: select Order where total > 10 order by total desc limit 5 as: big }\n }\n}\n");
    assert_eq!(file.items.len(), 1);
    // Where the expression was left out, the clause word still says so.
    for src in [
        "job J { steps { s { query: select Order where order by total } } }",
        "job J { steps { s { query: select Order where limit 10 } } }",
    ] {
        let found = errors(src);
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("expected an expression")),
            "{src}: {found:?}"
        );
    }
}
