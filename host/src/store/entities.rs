//! The tables behind a job's entity declarations.
//!
//! A table lives in the namespace of the tenant whose job declares it ([`super::namespace`]);
//! the built-in entities (`JobExecution`, `Report`) are the platform's own tables and are never
//! created here. Every entity table gets the declared fields plus `tenant_id TEXT NOT NULL` and
//! an index on it: the data capability also scopes every statement by the execution's tenant. A declared primary
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

use super::namespace::{Namespace, NamespaceError};
use super::{quote_ident, valid_identifier, Database, Dialect};
use codeai_ir::platform::{builtin_entity, check_builtin_fields, check_table_name};
use codeai_ir::{EntityDecl, FieldType};
use std::collections::BTreeSet;

/// The entities `manifests` declare, each once (the first declaration of a name), in order of
/// first use.
pub fn declared_by<'a>(
    manifests: impl IntoIterator<Item = &'a codeai_ir::Manifest>,
) -> Vec<EntityDecl> {
    let mut all: Vec<EntityDecl> = Vec::new();
    for entity in manifests.into_iter().flat_map(|m| &m.entities) {
        if !all.iter().any(|e| e.name == entity.name) {
            all.push(entity.clone());
        }
    }
    all
}

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

impl From<NamespaceError> for SchemaError {
    fn from(e: NamespaceError) -> SchemaError {
        match e {
            NamespaceError::Db(e) => SchemaError::Database(e),
            NamespaceError::Name(message) => SchemaError::InvalidDeclaration {
                entity: String::new(),
                message,
            },
        }
    }
}

/// Checks a declaration as the compiler did, for a manifest may be written by hand: the table
/// name ([`check_table_name`]: no platform table, nothing a namespace could not hold), a
/// built-in entity's fields against its shape, identifiers only, no duplicate fields, no field
/// shadowing `tenant_id`, at most one primary key.
pub fn check_declaration(decl: &EntityDecl) -> Result<(), String> {
    check_table_name(&decl.table)?;
    if let Some(builtin) = builtin_entity(&decl.table) {
        let fields: Vec<(&str, FieldType, bool)> = decl
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.ty, f.primary))
            .collect();
        check_builtin_fields(builtin, &fields)?;
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
    if let Some(f) = decl
        .fields
        .iter()
        .find(|f| f.unique && f.ty == FieldType::Json)
    {
        return Err(format!("field `{}` is json; it cannot be unique", f.name));
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

/// The DDL statements for one entity: the table, the tenant index, then a unique index on
/// `(tenant_id, field)` for each `unique` field. `table` is the quoted, qualified name of the
/// table in its namespace and `index` the tenant index's (unquoted) name, which the unique
/// indexes' names derive from.
pub fn create_statements(
    decl: &EntityDecl,
    dialect: Dialect,
    table: &str,
    index: &str,
) -> Result<Vec<String>, SchemaError> {
    check_declaration(decl).map_err(|message| SchemaError::InvalidDeclaration {
        entity: decl.name.clone(),
        message,
    })?;
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
    let base = index.strip_suffix("_tenant_idx").unwrap_or(index);
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            columns.join(", ")
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({tenant})",
            quote_ident(truncate(index, 63))
        ),
    ];
    for field in decl.fields.iter().filter(|f| f.unique && !f.primary) {
        statements.push(format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({tenant}, {})",
            quote_ident(&index_name(&format!("{base}_{}_key", field.name))),
            quote_ident(&field.name)
        ));
    }
    Ok(statements)
}

/// `name` as an index name both databases take (PostgreSQL keeps 63 bytes): a longer one is cut
/// and ends with a digest of the whole, so two long names do not meet.
fn index_name(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..4]);
    format!("{}_{digest}", truncate(name, 54))
}

fn truncate(s: &str, max: usize) -> &str {
    // Identifiers are ASCII (checked), so any byte index is a char boundary.
    &s[..s.len().min(max)]
}

/// Creates the tables (and tenant indexes) the given entities need in `tenant`'s namespace, if
/// they do not exist yet. Entities sharing a table name are created once (the first declaration
/// wins); built-in entities are the platform's tables and are skipped.
///
/// An existing table is left as it is: columns added to a declaration later are not migrated.
pub async fn create_entity_tables(
    db: &Database,
    tenant: &str,
    entities: &[EntityDecl],
) -> Result<(), SchemaError> {
    let namespace = Namespace::new(db, tenant);
    let mut tables = BTreeSet::new();
    for decl in entities {
        check_declaration(decl).map_err(|message| SchemaError::InvalidDeclaration {
            entity: decl.name.clone(),
            message,
        })?;
        if builtin_entity(&decl.table).is_some() || !tables.insert(decl.table.clone()) {
            continue;
        }
        if tables.len() == 1 {
            namespace.create(db).await?;
        }
        let table = namespace.table(db, &decl.table).await?;
        let index = namespace.index_name(&decl.table);
        // A field declared after its table was made becomes a column of it, nullable: the
        // rows already there have no value (an insert still has to give a required one).
        let existing = namespace.columns(db, &decl.table).await?;
        let mut statements = Vec::new();
        if !existing.is_empty() {
            for field in decl.fields.iter().filter(|f| !existing.contains(&f.name)) {
                tracing::info!(
                    entity = %decl.name, tenant, field = %field.name,
                    "adding a column the entity declares to its table"
                );
                statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote_ident(&field.name),
                    column_type(field.ty, db.dialect())
                ));
            }
        }
        statements.extend(create_statements(decl, db.dialect(), &table, &index)?);
        for statement in statements {
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
            unique: false,
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
        let sqlite = create_statements(
            &decl,
            Dialect::Sqlite,
            "\"sessions\"",
            "sessions_tenant_idx",
        )
        .unwrap();
        assert_eq!(
            sqlite[0],
            "CREATE TABLE IF NOT EXISTS \"sessions\" (\"tenant_id\" TEXT NOT NULL, \"id\" TEXT NOT NULL, \"expires_at\" TEXT, PRIMARY KEY (\"tenant_id\", \"id\"))"
        );
        assert_eq!(
            sqlite[1],
            "CREATE INDEX IF NOT EXISTS \"sessions_tenant_idx\" ON \"sessions\" (\"tenant_id\")"
        );
        let pg = create_statements(&decl, Dialect::Postgres, "\"sessions\"", "i").unwrap();
        assert!(pg[0].contains("\"id\" UUID NOT NULL, \"expires_at\" TIMESTAMPTZ,"));
        assert_eq!(sqlite.len(), 2, "no unique field, no unique index");
    }

    #[test]
    fn unique_fields_get_unique_indexes_with_names_that_fit() {
        let mut sku = field("sku", FieldType::String, false, false);
        sku.unique = true;
        // The longest table name (48) with a tenant's prefix: its index names pass 63 bytes.
        let long = "t".repeat(48);
        let decl = EntityDecl {
            name: "Item".into(),
            table: long.clone(),
            fields: vec![field("id", FieldType::Uuid, true, false), sku],
        };
        let index = format!("tenant_acme__{long}_tenant_idx");
        let ddl = create_statements(&decl, Dialect::Sqlite, "\"t\"", &index).unwrap();
        assert_eq!(ddl.len(), 3, "{ddl:?}");
        assert!(
            ddl[2].starts_with("CREATE UNIQUE INDEX IF NOT EXISTS \"tenant_acme__ttt")
                && ddl[2].ends_with("ON \"t\" (\"tenant_id\", \"sku\")"),
            "{}",
            ddl[2]
        );
        let name = ddl[2].split('"').nth(1).unwrap();
        assert_eq!(name.len(), 63, "{name}");
        assert_ne!(index_name(&format!("{name}x")), name);
        let mut json = field("meta", FieldType::Json, false, true);
        json.unique = true;
        let bad = EntityDecl {
            fields: vec![json],
            ..decl
        };
        assert!(check_declaration(&bad)
            .unwrap_err()
            .contains("cannot be unique"));
    }

    #[test]
    fn bad_declarations_are_refused() {
        let mut decl = EntityDecl {
            name: "X".into(),
            table: "x; DROP TABLE y".into(),
            fields: vec![field("a", FieldType::Int, false, false)],
        };
        assert!(check_declaration(&decl).is_err());
        for table in [
            "tokens",
            "Tokens",
            "tenant_acme__x",
            "x__y",
            "sqlite_master",
        ] {
            decl.table = table.into();
            assert!(check_declaration(&decl).is_err(), "{table}");
        }
        decl.table = "x".into();
        assert!(check_declaration(&decl).is_ok());
        decl.fields
            .push(field("tenant_id", FieldType::String, false, false));
        assert!(check_declaration(&decl).is_err());
        decl.table = "reports".into();
        decl.fields = vec![field("path", FieldType::String, false, false)];
        assert!(
            check_declaration(&decl).is_err(),
            "a report's path is not readable"
        );
    }
}
