//! Report rendering: a template declared in the DSL plus the job's JSON data → a PDF, CSV or
//! HTML file.
//!
//! Rendering happens in two steps. [`layout`] turns the template and the data into a
//! [`Document`] — title, subtitle and body with `{{path}}` filled in, the table's header, rows
//! and totals as text — and each format writes that document: [`pdf`] with printpdf (A4, the
//! standard Helvetica fonts, a header repeated on every page, page numbers), CSV as RFC 4180, and
//! HTML with every value escaped. The same document in three formats keeps them consistent.

pub mod template;

use chrono_tz::Tz;
use codeai_ir::{ColumnFormat, ReportFormat, TemplateDecl};
use serde_json::Value;
use template::{display, interpolate, kind_of, lookup, resolve};

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

/// Where a document goes: CSV keeps numbers machine-readable (no thousands separators), the
/// PDF and HTML pages are read by people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Machine,
    Person,
}

/// Lays a template out with its data: `{{path}}` filled in (a missing path is an error that
/// names it, `?.` reads missing as nothing), the table's cells in their column's format, or
/// else each numeric column with the decimals of its most precise value, so a column reads
/// `5.00, 9.99, 1249.50` and never `5, 9.99, 1249.5`. Timestamps are shown in `tz`.
pub fn layout(
    template: &TemplateDecl,
    data: &Value,
    reader: Reader,
    tz: Tz,
) -> Result<Document, String> {
    let fill = |text: &Option<String>| text.as_deref().map(|t| interpolate(t, data)).transpose();
    let title = fill(&template.title)?.unwrap_or_else(|| humanize(&template.name));
    let subtitle = fill(&template.subtitle)?;
    let body = fill(&template.body)?;
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
        return Ok(doc);
    };
    doc.headers = table.columns.iter().map(|(_, h)| h.clone()).collect();
    let rows: &[Value] = match resolve(data, &table.source)? {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return Err(format!(
                "the table's rows `{}` are {}, not a list",
                table.source,
                kind_of(other)
            ))
        }
    };
    doc.omitted_rows = rows.len().saturating_sub(MAX_ROWS);
    let rows = &rows[..rows.len().min(MAX_ROWS)];
    let columns: Vec<Column> = table
        .columns
        .iter()
        .map(|(field, _)| {
            let format = table.formats.get(field).copied();
            let values = rows.iter().map(|row| lookup(row, field));
            Column::new(format, values, reader, tz)
        })
        .collect();
    for row in rows {
        let cells = table
            .columns
            .iter()
            .zip(&columns)
            .map(|((field, _), column)| column.cell(lookup(row, field)))
            .collect();
        doc.rows.push(cells);
    }
    if !table.totals.is_empty() {
        let mut totals: Vec<String> = table
            .columns
            .iter()
            .zip(&columns)
            .map(|((field, _), column)| {
                if !table.totals.contains(field) {
                    return String::new();
                }
                let sum: f64 = rows
                    .iter()
                    .filter_map(|row| number(lookup(row, field)))
                    .sum();
                column.cell(&serde_json::json!(sum))
            })
            .collect();
        if let Some(first) = totals.first_mut() {
            if first.is_empty() {
                *first = "Total".to_string();
            }
        }
        doc.totals = Some(totals);
    }
    Ok(doc)
}

/// A number, or a string that holds one (PostgreSQL's `numeric` comes as text).
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// How one column of a table shows its values.
struct Column {
    format: Option<ColumnFormat>,
    /// Decimals of a column without a format: those of its most precise number (at most 6).
    decimals: usize,
    reader: Reader,
    tz: Tz,
}

impl Column {
    fn new<'a>(
        format: Option<ColumnFormat>,
        values: impl Iterator<Item = &'a Value>,
        reader: Reader,
        tz: Tz,
    ) -> Column {
        let decimals = values
            .filter_map(|v| v.as_f64().filter(|_| v.is_number()))
            .map(|f| {
                let text = format!("{f:.6}");
                let fraction = text.split_once('.').map_or("", |(_, d)| d);
                fraction.trim_end_matches('0').len()
            })
            .max()
            .unwrap_or(0);
        Column {
            format,
            decimals,
            reader,
            tz,
        }
    }

    fn cell(&self, v: &Value) -> String {
        let grouped = self.reader == Reader::Person;
        match (self.format, v) {
            (_, Value::Null) => String::new(),
            (None, Value::Number(_)) => match v.as_i64() {
                Some(i) if self.decimals == 0 => i.to_string(),
                _ => fixed(v.as_f64().unwrap_or(0.0), self.decimals, false),
            },
            (None, _) => display(v),
            (Some(ColumnFormat::Date | ColumnFormat::Datetime), Value::String(s)) => {
                let pattern = match self.format {
                    Some(ColumnFormat::Date) => "%Y-%m-%d",
                    _ => "%Y-%m-%d %H:%M",
                };
                match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(t) => t.with_timezone(&self.tz).format(pattern).to_string(),
                    Err(_) => s.clone(),
                }
            }
            (Some(format), v) => match number(v) {
                Some(n) => match format {
                    ColumnFormat::Money => fixed(n, 2, grouped),
                    ColumnFormat::Integer => fixed(n, 0, false),
                    ColumnFormat::Decimal(d) => fixed(n, d as usize, false),
                    ColumnFormat::Percent(d) => format!("{}%", fixed(n * 100.0, d as usize, false)),
                    ColumnFormat::Date | ColumnFormat::Datetime => display(v),
                },
                None => display(v),
            },
        }
    }
}

/// `n` with `decimals` decimals, thousands separated by `,` when `grouped`: the language's
/// `format` with the pattern that says so (`#,##0.00`), so a column and `{{format(…)}}` agree.
fn fixed(n: f64, decimals: usize, grouped: bool) -> String {
    let whole = if grouped { "#,##0" } else { "0" };
    let pattern = match decimals {
        0 => whole.to_string(),
        d => format!("{whole}.{}", "0".repeat(d)),
    };
    codeai_ir::number::format(n, &pattern).unwrap_or_else(|_| n.to_string())
}

/// Renders a template with data in a format (timestamps of date/datetime columns in `tz`).
pub fn render(
    template: &TemplateDecl,
    data: &Value,
    format: ReportFormat,
    tz: Tz,
) -> Result<Vec<u8>, String> {
    let reader = match format {
        ReportFormat::Csv => Reader::Machine,
        _ => Reader::Person,
    };
    let doc = layout(template, data, reader, tz)?;
    Ok(match format {
        ReportFormat::Pdf => pdf(&doc),
        ReportFormat::Csv => csv(&doc).into_bytes(),
        ReportFormat::Html => html(&doc).into_bytes(),
    })
}

/// A document as the text of a message (email, Slack): its body, then its table as lines of
/// cells separated by ` | `, the header first.
pub fn text(doc: &Document) -> String {
    let mut out = doc.body.clone().unwrap_or_default();
    if doc.headers.is_empty() {
        return out;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    let lines = std::iter::once(&doc.headers)
        .chain(&doc.rows)
        .chain(doc.totals.iter());
    for cells in lines {
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    if doc.omitted_rows > 0 {
        out.push_str(&format!("{} more rows not shown.\n", doc.omitted_rows));
    }
    out.trim_end().to_string()
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
        BuiltinFont, DictItem, Line, LinePoint, Mm, Op, PdfDocument, PdfFontHandle, PdfPage,
        PdfSaveOptions, Point, Pt,
    };

    const WIDTH: f32 = 210.0;
    const HEIGHT: f32 = 297.0;
    const MARGIN: f32 = 15.0;
    const ROW: f32 = 6.0;

    /// The standard fonts' WinAnsiEncoding (Windows-1252): Latin text (`München`, `ß`, `€`,
    /// `—`) as one byte a character; a character outside it becomes `?` (embedding a Unicode
    /// font is the way to non-Latin reports). printpdf writes a builtin font's `Text` as its
    /// UTF-8 bytes, so the text goes out as the `Tj` operator with the encoded bytes.
    fn win_ansi(s: &str) -> Vec<u8> {
        const HIGH: [char; 32] = [
            '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
            '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ',
            '\u{9d}', 'ž', 'Ÿ',
        ];
        s.chars()
            .map(|c| match c as u32 {
                0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
                _ => match HIGH.iter().position(|h| *h == c && !h.is_control()) {
                    Some(i) => 0x80 + i as u8,
                    None => b'?',
                },
            })
            .collect()
    }
    fn text(ops: &mut Vec<Op>, s: &str, x: f32, y: f32, font: BuiltinFont, size: f32) {
        ops.push(Op::StartTextSection);
        ops.push(Op::SetTextCursor {
            pos: Point::new(Mm(x), Mm(y)),
        });
        ops.push(Op::SetFont {
            font: PdfFontHandle::Builtin(font),
            size: Pt(size),
        });
        ops.push(Op::Unknown {
            key: "Tj".to_string(),
            value: vec![DictItem::String {
                data: win_ansi(s),
                literal: false,
            }],
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
        // `secure: false` lets the `Tj` operators of `text` through (every operator here is
        // made by this function, none comes from the data).
        .save(
            &PdfSaveOptions {
                secure: false,
                ..PdfSaveOptions::default()
            },
            &mut warnings,
        )
}

#[cfg(test)]
mod tests;
