//! Report rendering: a template declared in the DSL plus the job's JSON data → a PDF, CSV or
//! HTML file.
//!
//! Rendering happens in two steps. [`layout`] turns the template and the data into a
//! [`Document`] — title, subtitle and body with `{{path}}` filled in, the table's header, rows
//! and totals as text — and each format writes that document: [`pdf`] with printpdf (A4, the
//! standard Helvetica fonts, a header repeated on every page, page numbers), CSV as RFC 4180, and
//! HTML with every value escaped. The same document in three formats keeps them consistent.

pub mod template;

use codeai_ir::{ReportFormat, TemplateDecl};
use serde_json::Value;
use template::{display, interpolate, lookup};

/// The most rows a report renders. A job hands over whatever its query returned; this keeps a
/// runaway query from producing a file of gigabytes (the document says it was cut).
pub const MAX_ROWS: usize = 50_000;

/// A template laid out with its data, ready for any format.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub title: String,
    pub subtitle: Option<String>,
    pub body: Option<String>,
    /// Column headers, in order.
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The totals row (first cell "Total" unless that column is summed), if the template asks.
    pub totals: Option<Vec<String>>,
    /// Rows left out beyond [`MAX_ROWS`].
    pub omitted_rows: usize,
}

/// Lays a template out with its data.
pub fn layout(template: &TemplateDecl, data: &Value) -> Document {
    let title = template
        .title
        .as_deref()
        .map(|t| interpolate(t, data))
        .unwrap_or_else(|| humanize(&template.name));
    let subtitle = template.subtitle.as_deref().map(|t| interpolate(t, data));
    let body = template.body.as_deref().map(|t| interpolate(t, data));
    let mut doc = Document {
        title,
        subtitle,
        body,
        headers: Vec::new(),
        rows: Vec::new(),
        totals: None,
        omitted_rows: 0,
    };
    let Some(table) = &template.table else {
        return doc;
    };
    doc.headers = table.columns.iter().map(|(_, h)| h.clone()).collect();
    let rows: &[Value] = match lookup(data, &table.source) {
        Value::Array(items) => items,
        _ => &[],
    };
    doc.omitted_rows = rows.len().saturating_sub(MAX_ROWS);
    let mut sums = vec![0f64; table.columns.len()];
    // A column with any fractional value (money) gets its total with two decimals too.
    let mut fractional = vec![false; table.columns.len()];
    for row in rows.iter().take(MAX_ROWS) {
        let cells = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (field, _))| {
                let v = lookup(row, field);
                if let Some(n) = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                {
                    sums[i] += n;
                    fractional[i] |= n.fract() != 0.0;
                }
                display(v)
            })
            .collect();
        doc.rows.push(cells);
    }
    if !table.totals.is_empty() {
        let mut totals: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (field, _))| {
                if table.totals.contains(field) {
                    let total = (sums[i] * 100.0).round() / 100.0;
                    if fractional[i] {
                        format!("{total:.2}")
                    } else {
                        display(&serde_json::json!(total))
                    }
                } else {
                    String::new()
                }
            })
            .collect();
        if let Some(first) = totals.first_mut() {
            if first.is_empty() {
                *first = "Total".to_string();
            }
        }
        doc.totals = Some(totals);
    }
    doc
}

/// Renders a template with data in a format.
pub fn render(template: &TemplateDecl, data: &Value, format: ReportFormat) -> Vec<u8> {
    let doc = layout(template, data);
    match format {
        ReportFormat::Pdf => pdf(&doc),
        ReportFormat::Csv => csv(&doc).into_bytes(),
        ReportFormat::Html => html(&doc).into_bytes(),
    }
}

/// `daily_sales_report` → `Daily sales report`.
fn humanize(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// RFC 4180 CSV: the table (header, rows, totals); a document without a table gives its text.
///
/// A cell that a spreadsheet would take for a formula (it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return, and is not a number) is written with a leading `'`, so a report made
/// from someone else's data never runs a formula where it is opened.
pub fn csv(doc: &Document) -> String {
    fn field(s: &str) -> String {
        let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
        let s = if formula {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let line = |cells: &[String]| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    let mut out = String::new();
    if doc.headers.is_empty() {
        out.push_str(&line(std::slice::from_ref(&doc.title)));
        out.push_str("\r\n");
        for text in doc.subtitle.iter().chain(doc.body.iter()) {
            out.push_str(&line(std::slice::from_ref(text)));
            out.push_str("\r\n");
        }
        return out;
    }
    out.push_str(&line(&doc.headers));
    out.push_str("\r\n");
    for row in doc.rows.iter().chain(doc.totals.iter()) {
        out.push_str(&line(row));
        out.push_str("\r\n");
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A standalone HTML page with every value escaped.
pub fn html(doc: &Document) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    );
    out.push_str(&format!("<title>{}</title>", escape(&doc.title)));
    out.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\
         table{border-collapse:collapse;margin-top:1rem}th,td{border-bottom:1px solid #ddd;\
         padding:.35rem .75rem;text-align:left}tfoot td{font-weight:bold;border-top:2px solid #444}\
         </style></head><body>\n",
    );
    out.push_str(&format!("<h1>{}</h1>\n", escape(&doc.title)));
    if let Some(s) = &doc.subtitle {
        out.push_str(&format!("<h2>{}</h2>\n", escape(s)));
    }
    if let Some(b) = &doc.body {
        out.push_str(&format!("<p>{}</p>\n", escape(b)));
    }
    if !doc.headers.is_empty() {
        out.push_str("<table>\n<thead><tr>");
        for h in &doc.headers {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &doc.rows {
            out.push_str("<tr>");
            for c in row {
                out.push_str(&format!("<td>{}</td>", escape(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
        if let Some(t) = &doc.totals {
            out.push_str("<tfoot><tr>");
            for c in t {
                out.push_str(&format!("<td>{}</td>", escape(c)));
            }
            out.push_str("</tr></tfoot>\n");
        }
        out.push_str("</table>\n");
    }
    if doc.omitted_rows > 0 {
        out.push_str(&format!(
            "<p>{} more rows not shown.</p>\n",
            doc.omitted_rows
        ));
    }
    out.push_str("</body></html>\n");
    out
}

/// An A4 PDF: title, subtitle, body, then the table with its header repeated on every page.
pub fn pdf(doc: &Document) -> Vec<u8> {
    use printpdf::{
        BuiltinFont, Line, LinePoint, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
        Point, Pt, TextItem,
    };

    const WIDTH: f32 = 210.0;
    const HEIGHT: f32 = 297.0;
    const MARGIN: f32 = 15.0;
    const ROW: f32 = 6.0;

    /// The standard fonts cover ASCII reliably; printpdf writes builtin-font text as raw bytes,
    /// so other characters would show as mojibake. Common punctuation is transliterated, the
    /// rest becomes `?` (embedding a Unicode font is the fix for non-Latin reports).
    fn ascii(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '—' | '–' => "-".to_string(),
                '…' => "...".to_string(),
                '‘' | '’' => "'".to_string(),
                '“' | '”' => "\"".to_string(),
                c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                _ => "?".to_string(),
            })
            .collect()
    }
    fn text(ops: &mut Vec<Op>, s: &str, x: f32, y: f32, font: BuiltinFont, size: f32) {
        let s = ascii(s);
        ops.push(Op::StartTextSection);
        ops.push(Op::SetTextCursor {
            pos: Point::new(Mm(x), Mm(y)),
        });
        ops.push(Op::SetFont {
            font: PdfFontHandle::Builtin(font),
            size: Pt(size),
        });
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(s.to_string())],
        });
        ops.push(Op::EndTextSection);
    }
    fn rule(ops: &mut Vec<Op>, y: f32, thickness: f32) {
        ops.push(Op::SetOutlineThickness { pt: Pt(thickness) });
        ops.push(Op::DrawLine {
            line: Line {
                points: vec![
                    LinePoint {
                        p: Point::new(Mm(MARGIN), Mm(y)),
                        bezier: false,
                    },
                    LinePoint {
                        p: Point::new(Mm(WIDTH - MARGIN), Mm(y)),
                        bezier: false,
                    },
                ],
                is_closed: false,
            },
        });
    }
    /// Cuts text to what fits in `width` mm at `size` pt (Helvetica averages ~0.5 em a glyph).
    fn fit(s: &str, width: f32, size: f32) -> String {
        let max = ((width / (size * 0.3528 * 0.5)) as usize).max(1);
        if s.chars().count() <= max {
            s.to_string()
        } else {
            let mut cut: String = s.chars().take(max.saturating_sub(3)).collect();
            cut.push_str("...");
            cut
        }
    }
    /// Wraps text into lines of at most `max` characters at spaces.
    fn wrap(s: &str, max: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in s.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    let columns = doc.headers.len().max(1);
    let col_width = (WIDTH - 2.0 * MARGIN) / columns as f32;
    let header = |ops: &mut Vec<Op>, y: f32| {
        for (i, h) in doc.headers.iter().enumerate() {
            let x = MARGIN + i as f32 * col_width;
            text(
                ops,
                &fit(h, col_width - 2.0, 10.0),
                x,
                y,
                BuiltinFont::HelveticaBold,
                10.0,
            );
        }
        rule(ops, y - 2.0, 0.8);
    };

    let mut pages: Vec<Vec<Op>> = Vec::new();
    let mut ops = Vec::new();
    let mut y = HEIGHT - MARGIN - 8.0;
    text(
        &mut ops,
        &doc.title,
        MARGIN,
        y,
        BuiltinFont::HelveticaBold,
        20.0,
    );
    y -= 9.0;
    if let Some(s) = &doc.subtitle {
        text(&mut ops, s, MARGIN, y, BuiltinFont::Helvetica, 13.0);
        y -= 8.0;
    }
    if let Some(b) = &doc.body {
        for line in wrap(b, 95) {
            text(&mut ops, &line, MARGIN, y, BuiltinFont::Helvetica, 10.0);
            y -= 5.5;
        }
        y -= 3.0;
    }
    if !doc.headers.is_empty() {
        y -= 4.0;
        header(&mut ops, y);
        y -= ROW + 1.0;
        let body_rows = doc.rows.iter().map(|r| (r, false));
        let total_row = doc.totals.iter().map(|r| (r, true));
        for (row, is_total) in body_rows.chain(total_row) {
            if y < MARGIN + 12.0 {
                pages.push(std::mem::take(&mut ops));
                y = HEIGHT - MARGIN - 8.0;
                header(&mut ops, y);
                y -= ROW + 1.0;
            }
            if is_total {
                rule(&mut ops, y + 4.0, 0.8);
            }
            let font = if is_total {
                BuiltinFont::HelveticaBold
            } else {
                BuiltinFont::Helvetica
            };
            for (i, cell) in row.iter().enumerate() {
                let x = MARGIN + i as f32 * col_width;
                text(&mut ops, &fit(cell, col_width - 2.0, 9.0), x, y, font, 9.0);
            }
            y -= ROW;
        }
        if doc.omitted_rows > 0 {
            let note = format!("{} more rows not shown.", doc.omitted_rows);
            text(
                &mut ops,
                &note,
                MARGIN,
                y - 2.0,
                BuiltinFont::HelveticaOblique,
                9.0,
            );
        }
    }
    pages.push(ops);

    let count = pages.len();
    let pages: Vec<PdfPage> = pages
        .into_iter()
        .enumerate()
        .map(|(i, mut ops)| {
            let footer = format!("{} — page {} of {count}", doc.title, i + 1);
            text(
                &mut ops,
                &footer,
                MARGIN,
                MARGIN - 5.0,
                BuiltinFont::Helvetica,
                8.0,
            );
            PdfPage::new(Mm(WIDTH), Mm(HEIGHT), ops)
        })
        .collect();
    let mut warnings = Vec::new();
    PdfDocument::new(&doc.title)
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut warnings)
}

#[cfg(test)]
mod tests;
