//! Report rendering tests: the layout, each format, and a PDF that poppler reads back.

use super::*;
use codeai_ir::TableDecl;
use serde_json::json;

fn daily_sales() -> TemplateDecl {
    TemplateDecl {
        name: "daily_sales_report".into(),
        title: Some("Daily Sales Report".into()),
        subtitle: Some("{{period.label}}".into()),
        subject: None,
        body: Some("{{metrics.order_count}} orders, revenue {{metrics.revenue}}".into()),
        table: Some(TableDecl {
            source: "orders".into(),
            columns: vec![
                ("id".into(), "Order".into()),
                ("customer_email".into(), "Customer".into()),
                ("total".into(), "Total".into()),
            ],
            totals: vec!["total".into()],
            formats: Default::default(),
        }),
    }
}

fn data(rows: usize) -> Value {
    let orders: Vec<Value> = (0..rows)
        .map(|i| json!({"id": format!("ord-{i:04}"), "customer_email": format!("c{i}@example.com"), "total": 10.25 + i as f64}))
        .collect();
    json!({"period": {"label": "2026-01-11"}, "metrics": {"order_count": rows, "revenue": 42.5}, "orders": orders})
}

#[test]
fn layout_fills_text_rows_and_totals() {
    let doc = layout(&daily_sales(), &data(3), Reader::Person, Tz::UTC).unwrap();
    assert_eq!(doc.title, "Daily Sales Report");
    assert_eq!(doc.subtitle.as_deref(), Some("2026-01-11"));
    assert_eq!(doc.body.as_deref(), Some("3 orders, revenue 42.50"));
    assert_eq!(doc.headers, ["Order", "Customer", "Total"]);
    assert_eq!(doc.rows[2], ["ord-0002", "c2@example.com", "12.25"]);
    // 10.25 + 11.25 + 12.25
    assert_eq!(
        doc.totals.as_deref(),
        Some(&["Total".to_string(), String::new(), "33.75".to_string()][..])
    );
}

#[test]
fn csv_quotes_what_needs_quoting() {
    let mut d = data(1);
    d["orders"][0]["customer_email"] = json!("Doe, \"J\"");
    let text =
        String::from_utf8(render(&daily_sales(), &d, ReportFormat::Csv, Tz::UTC).unwrap()).unwrap();
    assert_eq!(
        text,
        "Order,Customer,Total\r\nord-0000,\"Doe, \"\"J\"\"\",10.25\r\nTotal,,10.25\r\n"
    );
}

#[test]
fn csv_cells_never_become_formulas() {
    let mut d = data(4);
    d["orders"][0]["customer_email"] = json!("=HYPERLINK(\"http://evil\")");
    d["orders"][1]["customer_email"] = json!("@SUM(1+1)");
    d["orders"][2]["customer_email"] = json!("-2+3");
    d["orders"][3]["customer_email"] = json!("-12.5");
    let text =
        String::from_utf8(render(&daily_sales(), &d, ReportFormat::Csv, Tz::UTC).unwrap()).unwrap();
    let customers: Vec<&str> = text
        .split("\r\n")
        .skip(1)
        .take(4)
        .map(|l| l.split_once(',').unwrap().1.rsplit_once(',').unwrap().0)
        .collect();
    assert_eq!(
        customers,
        [
            "\"'=HYPERLINK(\"\"http://evil\"\")\"",
            "'@SUM(1+1)",
            "'-2+3",
            "-12.5"
        ],
        "{text}"
    );
}

#[test]
fn html_escapes_values() {
    let mut d = data(1);
    d["orders"][0]["customer_email"] = json!("<script>alert(1)</script>");
    let page = String::from_utf8(render(&daily_sales(), &d, ReportFormat::Html, Tz::UTC).unwrap())
        .unwrap();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("<tfoot><tr><td>Total</td><td></td><td>10.25</td></tr></tfoot>"));
}

/// The PDF is a real document: poppler extracts the title, the rows and the total, and a long
/// table continues on more pages.
#[test]
fn pdf_is_readable_by_poppler() {
    let bytes = render(&daily_sales(), &data(3), ReportFormat::Pdf, Tz::UTC).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = pdftotext(&bytes, "short");
    for expected in [
        "Daily Sales Report",
        "2026-01-11",
        "3 orders, revenue 42.50",
        "ord-0001",
        "c2@example.com",
        "33.75",
        "page 1 of 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let long = render(&daily_sales(), &data(120), ReportFormat::Pdf, Tz::UTC).unwrap();
    let text = pdftotext(&long, "long");
    assert!(
        text.contains("ord-0119") && text.contains("Daily Sales Report — page 4 of 4"),
        "{text}"
    );
    assert_eq!(
        text.matches("Order ").count(),
        4,
        "the header repeats on every page"
    );
}

/// Latin text beyond ASCII (German, French, the euro sign, dashes) survives into the PDF:
/// the standard fonts' WinAnsi encoding holds it; what it cannot hold becomes `?`.
#[test]
fn pdf_keeps_latin_text_beyond_ascii() {
    let mut t = daily_sales();
    t.title = Some("Gebühren in € — Köln, Paris, Århus".into());
    let mut d = data(1);
    d["orders"][0]["customer_email"] = json!("Bernd Müller «Straße» ½ 日本");
    let text = pdftotext(
        &render(&t, &d, ReportFormat::Pdf, Tz::UTC).unwrap(),
        "latin",
    );
    assert!(
        text.contains("Gebühren in € — Köln, Paris, Århus"),
        "{text}"
    );
    assert!(text.contains("Bernd Müller «Straße» ½ ??"), "{text}");
}

/// Column formats: money (separated thousands for people, plain in CSV), integer, decimals,
/// percent, dates in the job's zone; totals in their column's format.
#[test]
fn columns_follow_their_format() {
    use codeai_ir::ColumnFormat;
    let t = TemplateDecl {
        name: "t".into(),
        title: None,
        subtitle: None,
        subject: None,
        body: None,
        table: Some(TableDecl {
            source: "rows".into(),
            columns: ["amount", "qty", "weight", "share", "day", "at", "plain"]
                .iter()
                .map(|c| (c.to_string(), c.to_uppercase()))
                .collect(),
            totals: vec!["amount".into(), "qty".into()],
            formats: [
                ("amount", ColumnFormat::Money),
                ("qty", ColumnFormat::Integer),
                ("weight", ColumnFormat::Decimal(1)),
                ("share", ColumnFormat::Percent(1)),
                ("day", ColumnFormat::Date),
                ("at", ColumnFormat::Datetime),
            ]
            .into_iter()
            .map(|(c, f)| (c.to_string(), f))
            .collect(),
        }),
    };
    let d = json!({"rows": [
        {"amount": 1249.5, "qty": 2.6, "weight": 2.25, "share": 0.125, "day": "2026-01-11T23:30:00Z", "at": "2026-01-11T23:30:00Z", "plain": 5},
        {"amount": "1000000", "qty": 3, "weight": 12, "share": 1, "day": null, "at": "not a time", "plain": 9.99},
    ]});
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let doc = layout(&t, &d, Reader::Person, berlin).unwrap();
    assert_eq!(
        doc.rows,
        [
            [
                "1,249.50",
                "3",
                "2.2",
                "12.5%",
                "2026-01-12",
                "2026-01-12 00:30",
                "5.00"
            ],
            [
                "1,000,000.00",
                "3",
                "12.0",
                "100.0%",
                "",
                "not a time",
                "9.99"
            ],
        ]
    );
    assert_eq!(
        doc.totals.unwrap(),
        ["1,001,249.50", "6", "", "", "", "", ""]
    );
    let csv = layout(&t, &d, Reader::Machine, berlin).unwrap();
    assert_eq!(csv.rows[0][0], "1249.50");
    assert_eq!(csv.totals.unwrap()[0], "1001249.50");
}

/// A column without a format shows every number with its most precise value's decimals:
/// `5.0, 23.7` rather than `5, 23.7`, and never more than the values have.
#[test]
fn a_column_without_format_keeps_one_number_of_decimals() {
    let mut d = data(0);
    d["orders"] = json!([{"id": "a", "total": 5}, {"id": "b", "total": 23.7}, {"id": "c", "total": 0.1 + 0.2}]);
    let doc = layout(&daily_sales(), &d, Reader::Person, Tz::UTC).unwrap();
    let totals: Vec<&str> = doc.rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(totals, ["5.0", "23.7", "0.3"]);
    assert_eq!(doc.totals.unwrap()[2], "29.0");
    d["orders"] = json!([{"id": "a", "total": 5}, {"id": "b", "total": 12}]);
    let doc = layout(&daily_sales(), &d, Reader::Person, Tz::UTC).unwrap();
    assert_eq!(doc.rows[1][2], "12");
}

/// A path the data does not hold fails the report with the path and what is there.
#[test]
fn a_missing_path_or_rows_fail_the_report() {
    let mut d = data(1);
    d["metrics"] = json!({"revenue": 1});
    let e = layout(&daily_sales(), &d, Reader::Person, Tz::UTC).unwrap_err();
    assert!(
        e.contains("`{{metrics.order_count}}`: `metrics` has no `order_count`"),
        "{e}"
    );
    let mut d = data(1);
    d.as_object_mut().unwrap().remove("orders");
    let e = layout(&daily_sales(), &d, Reader::Person, Tz::UTC).unwrap_err();
    assert!(e.contains("the data has no `orders`"), "{e}");
}

/// As a message's text: the body, then the table's lines, header first, totals last.
#[test]
fn a_document_as_message_text() {
    let doc = layout(&daily_sales(), &data(2), Reader::Person, Tz::UTC).unwrap();
    assert_eq!(
        text(&doc),
        "2 orders, revenue 42.50\n\nOrder | Customer | Total\nord-0000 | c0@example.com | 10.25\n\
         ord-0001 | c1@example.com | 11.25\nTotal |  | 21.50"
    );
}

fn pdftotext(pdf: &[u8], name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("codeai-report-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed; .ci/run installs it");
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `CODEAI_REPORT_SAMPLE=path.pdf cargo test -p codeai-host --lib report` writes a sample to look at.
#[test]
fn sample_for_people() {
    if let Some(path) = std::env::var_os("CODEAI_REPORT_SAMPLE") {
        std::fs::write(
            path,
            render(&daily_sales(), &data(12), ReportFormat::Pdf, Tz::UTC).unwrap(),
        )
        .unwrap();
    }
}
