//! Names the platform keeps for itself, shared by the compiler (which refuses them at build time)
//! and the host (which refuses them again at upload: a manifest can be written by hand).
//!
//! - [`PLATFORM_TABLES`]: the platform's own tables. No entity may name one; two of them are
//!   reachable as [`BUILTIN_ENTITIES`], read-only and through operations the platform defines.
//! - [`check_table_name`]: what an entity's `table:` may be. A table name is resolved inside the
//!   namespace of the job's tenant by the host; the rules here make sure that no name, however
//!   spelt, can resolve to anything else (see `SECURITY.md`).

use crate::FieldType;

/// Every table (and view) of the platform's schema (the host's migrations create exactly these;
/// a test in the host compares the two).
pub const PLATFORM_TABLES: &[&str] = &[
    "_codeai_migrations",
    "alerts",
    "events",
    "execution_attempts",
    "guest_runtimes",
    "idempotency_keys",
    "job_executions",
    "job_state",
    "job_versions",
    "jobs",
    "maintenance_runs",
    "metric_durations",
    "metric_executions",
    "outbox",
    "reports",
    "secrets",
    "settings",
    "tasks",
    "tenants",
    "tokens",
];

/// The longest table name an entity may declare. With the host's tenant prefix the physical name
/// stays within PostgreSQL's 63-byte identifiers.
pub const MAX_TABLE_NAME: usize = 48;

/// What can be done to a built-in entity's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinDelete {
    /// `delete` removes the tenant's finished executions that match (never a pending or running
    /// one), with their retried attempts.
    FinishedExecutions,
    /// `delete` removes the tenant's matching reports and their files, which the platform
    /// finds from the report's id, never from a row.
    ReportsAndFiles,
}

/// A platform table that jobs may read (scoped to their tenant) as an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinEntity {
    /// The entity's usual name in the DSL.
    pub entity: &'static str,
    /// The platform table (what `table:` says, or the entity name's default table).
    pub table: &'static str,
    /// The fields a declaration may list: (name, type, optional). A declaration lists any of
    /// them with exactly this type; the others stay invisible.
    pub fields: &'static [(&'static str, FieldType, bool)],
    /// The primary key.
    pub primary: &'static str,
    pub delete: BuiltinDelete,
}

/// The built-in entities: executions and reports. Jobs read them (their tenant's rows only)
/// and delete through [`BuiltinDelete`]; `insert`, `update` and `maintain` are refused.
pub const BUILTIN_ENTITIES: &[BuiltinEntity] = &[
    BuiltinEntity {
        entity: "JobExecution",
        table: "job_executions",
        fields: &[
            ("id", FieldType::Uuid, false),
            ("job_id", FieldType::String, false),
            ("job_name", FieldType::String, true),
            ("job_version", FieldType::Int, true),
            ("status", FieldType::String, false),
            ("trigger", FieldType::String, true),
            ("queue", FieldType::String, true),
            ("error", FieldType::String, true),
            ("attempt", FieldType::Int, false),
            ("max_attempts", FieldType::Int, false),
            ("scheduled_at", FieldType::Datetime, true),
            ("started_at", FieldType::Datetime, true),
            ("finished_at", FieldType::Datetime, true),
            ("duration_ms", FieldType::Int, true),
            ("fuel_used", FieldType::Int, true),
            ("created_at", FieldType::Datetime, true),
        ],
        primary: "id",
        delete: BuiltinDelete::FinishedExecutions,
    },
    BuiltinEntity {
        entity: "Report",
        table: "reports",
        fields: &[
            ("id", FieldType::Uuid, false),
            ("job", FieldType::String, false),
            ("execution_id", FieldType::String, true),
            ("format", FieldType::String, false),
            ("size", FieldType::Int, false),
            ("name", FieldType::String, true),
            ("created_at", FieldType::Datetime, false),
            ("expires_at", FieldType::Datetime, true),
        ],
        primary: "id",
        delete: BuiltinDelete::ReportsAndFiles,
    },
];

/// The built-in entity behind `table`, if it is one.
pub fn builtin_entity(table: &str) -> Option<&'static BuiltinEntity> {
    BUILTIN_ENTITIES.iter().find(|b| b.table == table)
}

/// Checks an entity's `table:`: 1 to [`MAX_TABLE_NAME`] bytes of `a-z`, `0-9` and `_`, starting
/// with a letter, without `__` (the host's separator between a tenant and its tables), not a
/// platform table other than a built-in entity's, and not in a namespace the database keeps for
/// itself (`sqlite_`, `pg_`) or the platform keeps for later (`codeai_`).
///
/// Lower case only: SQLite compares names without case and PostgreSQL with it, so a name has one
/// spelling on both.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_TABLE_NAME
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(format!(
            "`{name}` is not a table name: 1 to {MAX_TABLE_NAME} characters of a-z, 0-9 and `_`, \
             starting with a letter"
        ));
    }
    if name.contains("__") {
        return Err(format!(
            "`{name}` contains `__`, which the platform keeps to separate tenants from their tables"
        ));
    }
    if let Some(prefix) = ["sqlite_", "pg_", "codeai_"]
        .into_iter()
        .find(|p| name.starts_with(p))
    {
        return Err(format!(
            "`{name}` starts with `{prefix}`, which is reserved for the database and the platform"
        ));
    }
    if PLATFORM_TABLES.contains(&name) && builtin_entity(name).is_none() {
        return Err(format!(
            "`{name}` is a table of the platform itself; jobs cannot declare it"
        ));
    }
    Ok(())
}

/// Checks a declaration of a built-in entity against the built-in shape: every declared field is
/// one of the built-in's, with its type; the primary key, if marked, is the built-in's.
pub fn check_builtin_fields(
    builtin: &BuiltinEntity,
    fields: &[(&str, FieldType, bool)],
) -> Result<(), String> {
    for (name, ty, primary) in fields {
        let Some((_, want, _)) = builtin.fields.iter().find(|(n, ..)| n == name) else {
            let known: Vec<&str> = builtin.fields.iter().map(|(n, ..)| *n).collect();
            return Err(format!(
                "the built-in entity `{}` (table `{}`) has no field `{name}`; it has {}",
                builtin.entity,
                builtin.table,
                known.join(", ")
            ));
        };
        if want != ty {
            return Err(format!(
                "field `{name}` of the built-in entity `{}` is {}, not {}",
                builtin.entity,
                want.name(),
                ty.name()
            ));
        }
        if *primary && *name != builtin.primary {
            return Err(format!(
                "the primary key of the built-in entity `{}` is `{}`",
                builtin.entity, builtin.primary
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for ok in [
            "products",
            "orders2",
            "a",
            "order_lines",
            "reports",
            "job_executions",
        ] {
            assert_eq!(check_table_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Products",
            "tokens",
            "tenants",
            "job_versions",
            "tasks",
            "_codeai_migrations",
            "x__y",
            "t_acme__tokens",
            "sqlite_master",
            "pg_class",
            "codeai_x",
            "1x",
            "_x",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            "main.tokens",
            "\"tokens\"",
            "tokens\0",
            "ﬁle",
            &"a".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(check_table_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn builtin_shapes() {
        let exec = builtin_entity("job_executions").unwrap();
        assert_eq!(
            check_builtin_fields(
                exec,
                &[
                    ("id", FieldType::Uuid, true),
                    ("status", FieldType::String, false),
                ]
            ),
            Ok(())
        );
        assert!(check_builtin_fields(exec, &[("log", FieldType::String, false)]).is_err());
        assert!(check_builtin_fields(exec, &[("status", FieldType::Int, false)]).is_err());
        assert!(check_builtin_fields(exec, &[("status", FieldType::String, true)]).is_err());
        let report = builtin_entity("reports").unwrap();
        assert!(check_builtin_fields(report, &[("path", FieldType::String, false)]).is_err());
        assert!(builtin_entity("tokens").is_none());
    }
}
