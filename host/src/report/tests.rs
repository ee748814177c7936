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
    let doc = layout(&daily_sales(), &data(3));
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
    let text = String::from_utf8(render(&daily_sales(), &d, ReportFormat::Csv)).unwrap();
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
    let text = String::from_utf8(render(&daily_sales(), &d, ReportFormat::Csv)).unwrap();
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
    let page = String::from_utf8(render(&daily_sales(), &d, ReportFormat::Html)).unwrap();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("<tfoot><tr><td>Total</td><td></td><td>10.25</td></tr></tfoot>"));
}

/// The PDF is a real document: poppler extracts the title, the rows and the total, and a long
/// table continues on more pages.
#[test]
fn pdf_is_readable_by_poppler() {
    let bytes = render(&daily_sales(), &data(3), ReportFormat::Pdf);
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
    let long = render(&daily_sales(), &data(120), ReportFormat::Pdf);
    let text = pdftotext(&long, "long");
    assert!(
        text.contains("ord-0119") && text.contains("Daily Sales Report - page 4 of 4"),
        "{text}"
    );
    assert_eq!(
        text.matches("Order ").count(),
        4,
        "the header repeats on every page"
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
        std::fs::write(path, render(&daily_sales(), &data(12), ReportFormat::Pdf)).unwrap();
    }
}
