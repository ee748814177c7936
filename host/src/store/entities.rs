//! The tables behind a job's entity declarations.
//!
//! Every entity table gets the declared fields plus `tenant_id TEXT NOT NULL` and an index on
//! it: the data capability scopes every statement by the execution's tenant. A declared primary
//! key becomes `PRIMARY KEY (tenant_id, key)`, so one tenant's keys never collide with (or reveal)
//! another's.
//!
//! | field type | SQLite  | PostgreSQL         |
//! |------------|---------|--------------------|
//! | `int`      | INTEGER | BIGINT             |
//! | `float`    | REAL    | DOUBLE PRECISION   |
//! | `bool`     | INTEGER | BOOLEAN            |
//! | `string`   | TEXT    | TEXT               |
//! | `uuid`     | TEXT    | UUID               |
//! | `datetime` | TEXT (RFC 3339, UTC, microseconds, `Z`) | TIMESTAMPTZ |
//! | `date`     | TEXT (`YYYY-MM-DD`) | DATE   |
//! | `json`     | TEXT    | JSONB              |

use super::{quote_ident, valid_identifier, Database, Dialect};
use codeai_ir::{EntityDecl, FieldType};
use std::collections::BTreeSet;

/// The column holding the owning tenant in every entity table.
pub const TENANT_COLUMN: &str = "tenant_id";

/// Why entity tables could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("entity `{entity}`: {message}")]
    InvalidDeclaration { entity: String, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Checks that a declaration can be turned into a table safely: identifiers only, no duplicate
/// fields, no field shadowing `tenant_id`, at most one primary key.
pub(crate) fn check_declaration(decl: &EntityDecl) -> Result<(), String> {
    if !valid_identifier(&decl.table) {
        return Err(format!("table name `{}` is not an identifier", decl.table));
    }
    let mut seen = BTreeSet::new();
    for field in &decl.fields {
        if !valid_identifier(&field.name) {
            return Err(format!("field name `{}` is not an identifier", field.name));
        }
        if field.name.eq_ignore_ascii_case(TENANT_COLUMN) {
            return Err(format!("field `{}` is reserved for the tenant", field.name));
        }
        if !seen.insert(field.name.to_ascii_lowercase()) {
            return Err(format!("field `{}` is declared twice", field.name));
        }
    }
    if decl.fields.iter().filter(|f| f.primary).count() > 1 {
        return Err("more than one primary key".into());
    }
    if decl.fields.is_empty() {
        return Err("no fields".into());
    }
    Ok(())
}

/// The column type of a field type in a dialect.
pub fn column_type(ty: FieldType, dialect: Dialect) -> &'static str {
    match (dialect, ty) {
        (Dialect::Sqlite, FieldType::Int | FieldType::Bool) => "INTEGER",
        (Dialect::Sqlite, FieldType::Float) => "REAL",
        (Dialect::Sqlite, _) => "TEXT",
        (Dialect::Postgres, FieldType::Int) => "BIGINT",
        (Dialect::Postgres, FieldType::Float) => "DOUBLE PRECISION",
        (Dialect::Postgres, FieldType::Bool) => "BOOLEAN",
        (Dialect::Postgres, FieldType::String) => "TEXT",
        (Dialect::Postgres, FieldType::Uuid) => "UUID",
        (Dialect::Postgres, FieldType::Datetime) => "TIMESTAMPTZ",
        (Dialect::Postgres, FieldType::Date) => "DATE",
        (Dialect::Postgres, FieldType::Json) => "JSONB",
    }
}

/// The DDL statements for one entity: the table, then the tenant index.
pub fn create_statements(decl: &EntityDecl, dialect: Dialect) -> Result<Vec<String>, SchemaError> {
    check_declaration(decl).map_err(|message| SchemaError::InvalidDeclaration {
        entity: decl.name.clone(),
        message,
    })?;
    let table = quote_ident(&decl.table);
    let tenant = quote_ident(TENANT_COLUMN);
    let mut columns = vec![format!("{tenant} TEXT NOT NULL")];
    for field in &decl.fields {
        let null = if field.optional { "" } else { " NOT NULL" };
        columns.push(format!(
            "{} {}{null}",
            quote_ident(&field.name),
            column_type(field.ty, dialect)
        ));
    }
    if let Some(primary) = decl.fields.iter().find(|f| f.primary) {
        columns.push(format!(
            "PRIMARY KEY ({tenant}, {})",
            quote_ident(&primary.name)
        ));
    }
    let index = quote_ident(&format!("{}_tenant_idx", truncate(&decl.table, 52)));
    Ok(vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            columns.join(", ")
        ),
        format!("CREATE INDEX IF NOT EXISTS {index} ON {table} ({tenant})"),
    ])
}

fn truncate(s: &str, max: usize) -> &str {
    // Identifiers are ASCII (checked), so any byte index is a char boundary.
    &s[..s.len().min(max)]
}

/// Creates the tables (and tenant indexes) the given entities need, if they do not exist yet.
/// Entities sharing a table name are created once (the first declaration wins).
///
/// An existing table is left as it is: columns added to a declaration later are not migrated.
pub async fn create_entity_tables(
    db: &Database,
    entities: &[EntityDecl],
) -> Result<(), SchemaError> {
    let mut tables = BTreeSet::new();
    for decl in entities {
        if !tables.insert(decl.table.clone()) {
            continue;
        }
        for statement in create_statements(decl, db.dialect())? {
            match db {
                Database::Sqlite(pool) => {
                    sqlx::raw_sql(&statement).execute(pool).await?;
                }
                Database::Postgres(pool) => {
                    sqlx::raw_sql(&statement).execute(pool).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeai_ir::FieldDecl;

    fn field(name: &str, ty: FieldType, primary: bool, optional: bool) -> FieldDecl {
        FieldDecl {
            name: name.into(),
            ty,
            primary,
            optional,
        }
    }

    #[test]
    fn ddl_for_both_dialects() {
        let decl = EntityDecl {
            name: "Session".into(),
            table: "sessions".into(),
            fields: vec![
                field("id", FieldType::Uuid, true, false),
                field("expires_at", FieldType::Datetime, false, true),
            ],
        };
        let sqlite = create_statements(&decl, Dialect::Sqlite).unwrap();
        assert_eq!(
            sqlite[0],
            "CREATE TABLE IF NOT EXISTS \"sessions\" (\"tenant_id\" TEXT NOT NULL, \"id\" TEXT NOT NULL, \"expires_at\" TEXT, PRIMARY KEY (\"tenant_id\", \"id\"))"
        );
        assert_eq!(
            sqlite[1],
            "CREATE INDEX IF NOT EXISTS \"sessions_tenant_idx\" ON \"sessions\" (\"tenant_id\")"
        );
        let pg = create_statements(&decl, Dialect::Postgres).unwrap();
        assert!(pg[0].contains("\"id\" UUID NOT NULL, \"expires_at\" TIMESTAMPTZ,"));
    }

    #[test]
    fn bad_declarations_are_refused() {
        let mut decl = EntityDecl {
            name: "X".into(),
            table: "x; DROP TABLE y".into(),
            fields: vec![field("a", FieldType::Int, false, false)],
        };
        assert!(create_statements(&decl, Dialect::Sqlite).is_err());
        decl.table = "x".into();
        decl.fields
            .push(field("tenant_id", FieldType::String, false, false));
        assert!(create_statements(&decl, Dialect::Sqlite).is_err());
    }
}
