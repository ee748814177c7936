//! The `report` interface: a template rendered with [`crate::report`], the file kept under the
//! report directory at the path computed from the report's id, and its row written.

use super::{db_error, over, JobCaps, RenderedFile};
use crate::store::platform as store;
use crate::wasm::{report, CapError};
use codeai_ir::ReportFormat;
use serde_json::Value;
use std::path::{Path, PathBuf};
use uuid::Uuid;

fn extension(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Pdf => "pdf",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    }
}

pub(super) fn content_type(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Pdf => "application/pdf",
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Html => "text/html; charset=utf-8",
    }
}

/// `daily_sales_report` → `daily-sales-report`.
fn kebab(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl JobCaps {
    fn report_path(&self, id: Uuid, format: ReportFormat) -> Result<PathBuf, CapError> {
        store::report_path(
            &self.services.config().report_dir,
            &self.ctx.tenant,
            id,
            extension(format),
        )
        .ok_or_else(|| {
            CapError::Failed(format!("tenant `{}` has no report store", self.ctx.tenant))
        })
    }
}

impl report::Host for JobCaps {
    async fn render(
        &mut self,
        template: String,
        data: String,
        format: report::Format,
    ) -> Result<report::Rendered, CapError> {
        let decl = self.template(&template)?.clone();
        let call = format!("`report.render` {template}");
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        let r = self.parse_charged(&data, "the report data", &call, &mut held);
        let data = self.within_budget(r).await?;
        let format = match format {
            report::Format::Pdf => ReportFormat::Pdf,
            report::Format::Csv => ReportFormat::Csv,
            report::Format::Html => ReportFormat::Html,
        };
        let now = self.clock_now();
        // The file is named after the period it covers when the data says, else today.
        let label = data
            .pointer("/period/label")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| now.with_timezone(&self.tz).format("%Y-%m-%d").to_string());
        let name = format!(
            "{}-{}.{}",
            kebab(&template),
            kebab(&label),
            extension(format)
        );
        let tz = self.tz;
        let bytes =
            tokio::task::spawn_blocking(move || crate::report::render(&decl, &data, format, tz))
                .await
                .map_err(|e| CapError::Failed(format!("rendering `{template}`: {e}")))?
                .map_err(|e| CapError::Invalid(format!("template `{template}`: {e}")))?;
        let r = held.grow(bytes.capacity(), &call).map_err(over);
        self.within_budget(r).await?;
        let id = Uuid::new_v4();
        let path = self.report_path(id, format)?;
        write_file(&path, &bytes).await?;
        let row = store::ReportRow {
            id,
            tenant: self.ctx.tenant.clone(),
            job: self.job().to_string(),
            execution_id: Some(self.ctx.execution_id.to_string()),
            format: extension(format).to_string(),
            size: bytes.len() as i64,
            name: name.clone(),
            created_at: now,
            expires_at: Some(now + self.services.config().report_ttl),
        };
        if let Err(e) = store::insert_report(self.services.db(), &row).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(db_error("reports")(e));
        }
        self.rendered.push(RenderedFile {
            id: id.to_string(),
            name: name.clone(),
            format,
            path,
        });
        Ok(report::Rendered {
            id: id.to_string(),
            format: match format {
                ReportFormat::Pdf => report::Format::Pdf,
                ReportFormat::Csv => report::Format::Csv,
                ReportFormat::Html => report::Format::Html,
            },
            size: bytes.len() as u64,
            name,
        })
    }

    async fn delete(&mut self, id: String) -> Result<bool, CapError> {
        let Ok(uuid) = Uuid::parse_str(&id) else {
            return Ok(false);
        };
        // The file is found from the report's id, under the report directory; never from a row.
        store::remove_report(
            self.services.db(),
            &self.services.config().report_dir,
            &self.ctx.tenant,
            uuid,
        )
        .await
        .map_err(|e| CapError::Failed(e.to_string()))
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CapError> {
    let failed = |e: std::io::Error| CapError::Failed(format!("writing `{}`: {e}", path.display()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    }
    // Written beside and renamed, so a crash never leaves half a report under its name.
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, bytes).await.map_err(failed)?;
    tokio::fs::rename(&partial, path).await.map_err(failed)
}
