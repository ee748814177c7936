//! Small text formatting shared by the commands: aligned tables, and schedules, durations and
//! retry policies in words ([`crate::describe`]).

pub(crate) use crate::describe::{duration, retry};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Right,
}

/// A plain-text table: a header row and columns padded to their widest cell, two spaces apart.
pub(super) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    pub(super) fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                self.rows
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([header.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let mut out = String::new();
        for cells in std::iter::once(&headers).chain(&self.rows) {
            let line: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, (_, align)), &width)| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// A table of jobs: each row starts with the job's name and when it runs (schedule or trigger,
/// timezone, queue), the way `codeai build` and `codeai host run` list them; `extra` columns follow.
pub(super) fn job_table(extra: &[(&'static str, Align)]) -> Table {
    let mut columns = vec![
        ("JOB", Align::Left),
        ("SCHEDULE", Align::Left),
        ("TIMEZONE", Align::Left),
        ("QUEUE", Align::Left),
    ];
    columns.extend_from_slice(extra);
    Table::new(&columns)
}

/// The first cells of a [`job_table`] row: the schedule as written, or in words if `described`.
pub(super) fn job_cells(manifest: &codeai_ir::Manifest, described: bool) -> Vec<String> {
    vec![
        manifest.name.clone(),
        crate::describe::runs_when(&manifest.schedule, manifest.trigger.as_deref(), described),
        manifest.timezone.clone(),
        manifest.queue.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_and_align_numbers() {
        let mut table = Table::new(&[("JOB", Align::Left), ("SIZE", Align::Right)]);
        table.row(vec!["A".into(), "1.0 KiB".into()]);
        table.row(vec!["LongerName".into(), "12.5 KiB".into()]);
        assert_eq!(
            table.render(),
            "JOB             SIZE\nA            1.0 KiB\nLongerName  12.5 KiB\n"
        );
    }
}
