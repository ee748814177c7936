//! Where a tenant's entity tables live: its namespace.
//!
//! A job names a table (`table: "products"`); the host resolves that name inside the namespace
//! of the job's tenant, never anywhere else:
//!
//! | tenant | SQLite | PostgreSQL |
//! |---|---|---|
//! | the operator (`default`) | `"products"` | `"products"` in the platform's schema |
//! | any other, e.g. `acme` | `"tenant_acme__products"` | `"<schema>_tenant_acme"."products"` |
//!
//! Why no name can reach a platform table or another tenant's table:
//! - a table name is checked by [`codeai_ir::platform::check_table_name`] at build time and again
//!   here: lower-case letters, digits and `_`, starting with a letter, no `__`, no platform
//!   table, no `sqlite_`/`pg_`/`codeai_` prefix. It is quoted as well, but it never needs to be;
//! - a tenant's SQLite tables all carry `tenant_<tenant>__`: no platform table has `__` in its
//!   name and no declared name can (so an operator's table is never a tenant's), and as a name
//!   never starts with `_` and never holds `__`, the part after the last `__` is the table and
//!   what is before it the tenant: two tenants never share a name;
//! - a tenant's PostgreSQL tables live in a schema of that tenant, named after the platform's
//!   schema (the connection's `current_schema()`), so the platform's schema is never the one a
//!   tenant statement names.
//!
//! The operator's namespace is the platform's own (the example's `products`, `orders`, … sit
//! beside the platform's tables, as an application's do); only the reserved names keep them
//! apart, and the operator is trusted. The built-in entities (`JobExecution`, `Report`) are not
//! in any namespace: they are the platform's tables, reached through its own operations
//! (`store::query`).

use super::{quote_ident, Database, Dialect};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// PostgreSQL's longest identifier.
const PG_MAX_IDENT: usize = 63;

/// The namespace of one tenant's entity tables on one database.
#[derive(Debug, Clone)]
pub struct Namespace {
    tenant: String,
    dialect: Dialect,
    /// PostgreSQL: the platform's schema, asked once (shared by the executions of a host).
    base: Arc<OnceCell<String>>,
}

/// The platform's schema, asked once per host and shared by every [`Namespace`] made from it.
#[derive(Debug, Clone, Default)]
pub struct SchemaCache(Arc<OnceCell<String>>);

impl Namespace {
    /// The namespace of `tenant`, asking PostgreSQL for the platform's schema when first needed.
    pub fn new(db: &Database, tenant: &str) -> Namespace {
        Namespace::with_cache(db, tenant, &SchemaCache::default())
    }

    /// [`Namespace::new`] sharing the answer of `current_schema()` through `cache`.
    pub fn with_cache(db: &Database, tenant: &str, cache: &SchemaCache) -> Namespace {
        Namespace {
            tenant: tenant.to_string(),
            dialect: db.dialect(),
            base: cache.0.clone(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether this is the operator's namespace (the platform's own schema).
    pub fn is_operator(&self) -> bool {
        super::tenants::is_operator(&self.tenant)
    }

    /// The quoted, qualified name `table` has in this namespace. `table` must pass
    /// [`codeai_ir::platform::check_table_name`] (checked again here).
    pub async fn table(&self, db: &Database, table: &str) -> Result<String, NamespaceError> {
        codeai_ir::platform::check_table_name(table).map_err(NamespaceError::Name)?;
        if self.is_operator() {
            return Ok(quote_ident(table));
        }
        Ok(match self.dialect {
            Dialect::Sqlite => quote_ident(&sqlite_table(&self.tenant, table)),
            Dialect::Postgres => format!(
                "{}.{}",
                quote_ident(&self.schema(db).await?),
                quote_ident(table)
            ),
        })
    }

    /// The name of the tenant index of `table` (unquoted): SQLite's index names are global, so
    /// it carries the tenant's prefix; PostgreSQL's live in the table's schema.
    pub fn index_name(&self, table: &str) -> String {
        let base = match self.dialect {
            Dialect::Sqlite if !self.is_operator() => sqlite_table(&self.tenant, table),
            _ => table.to_string(),
        };
        format!("{base}_tenant_idx")
    }

    /// PostgreSQL: the schema of this (non-operator) tenant's tables.
    async fn schema(&self, db: &Database) -> Result<String, NamespaceError> {
        let base = self
            .base
            .get_or_try_init(|| async {
                match db {
                    Database::Postgres(pool) => {
                        sqlx::query_scalar::<_, String>("SELECT current_schema()")
                            .fetch_one(pool)
                            .await
                    }
                    Database::Sqlite(_) => Ok(String::new()),
                }
            })
            .await?;
        Ok(pg_schema(base, &self.tenant))
    }

    /// The columns `table` of this namespace has (none when it does not exist).
    pub async fn columns(&self, db: &Database, table: &str) -> Result<Vec<String>, NamespaceError> {
        codeai_ir::platform::check_table_name(table).map_err(NamespaceError::Name)?;
        Ok(match db {
            Database::Sqlite(pool) => {
                let name = match self.is_operator() {
                    true => table.to_string(),
                    false => sqlite_table(&self.tenant, table),
                };
                sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info(?)")
                    .bind(name)
                    .fetch_all(pool)
                    .await?
            }
            Database::Postgres(pool) => {
                let schema = match self.is_operator() {
                    true => {
                        sqlx::query_scalar::<_, String>("SELECT current_schema()")
                            .fetch_one(pool)
                            .await?
                    }
                    false => self.schema(db).await?,
                };
                sqlx::query_scalar::<_, String>(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2",
                )
                .bind(schema)
                .bind(table)
                .fetch_all(pool)
                .await?
            }
        })
    }

    /// Creates what the namespace needs before its first table (PostgreSQL: the tenant's schema).
    pub async fn create(&self, db: &Database) -> Result<(), NamespaceError> {
        if self.is_operator() {
            return Ok(());
        }
        if let Database::Postgres(pool) = db {
            let schema = quote_ident(&self.schema(db).await?);
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

/// A tenant's table on SQLite: `tenant_<tenant>__<table>`.
fn sqlite_table(tenant: &str, table: &str) -> String {
    format!("tenant_{tenant}__{table}")
}

/// A tenant's schema on PostgreSQL: `<base>_tenant_<tenant>`, or, when that is longer than an
/// identifier may be, `<base>_tenanth_<hash>` (`tenanth` never reads as `tenant_…`).
fn pg_schema(base: &str, tenant: &str) -> String {
    let readable = format!("{base}_tenant_{tenant}");
    if readable.len() <= PG_MAX_IDENT {
        return readable;
    }
    let digest = Sha256::digest(format!("{base}\0{tenant}").as_bytes());
    let hash = &hex::encode(digest)[..16];
    let hashed = format!("{base}_tenanth_{hash}");
    if hashed.len() <= PG_MAX_IDENT {
        hashed
    } else {
        format!("codeai_tenanth_{hash}")
    }
}

/// Why a table has no name in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("{0}")]
    Name(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_never_share_a_name() {
        assert_eq!(sqlite_table("acme", "products"), "tenant_acme__products");
        // Tenant names may hold `_` and `-`; table names never start with `_` nor hold `__`.
        let mut seen = std::collections::BTreeSet::new();
        for tenant in ["a", "a_", "a__b", "a-b", "a_b", "ab"] {
            for table in ["b", "b_c", "c", "x_"] {
                assert!(codeai_ir::platform::check_table_name(table).is_ok());
                assert!(
                    seen.insert(sqlite_table(tenant, table)),
                    "{tenant}/{table} collides"
                );
            }
        }
        for platform in codeai_ir::platform::PLATFORM_TABLES {
            assert!(!platform.contains("__"), "{platform}");
        }
    }

    #[test]
    fn postgres_schemas_fit_identifiers() {
        assert_eq!(pg_schema("public", "acme"), "public_tenant_acme");
        let long = "t".repeat(64);
        let s = pg_schema("public", &long);
        assert!(
            s.starts_with("public_tenanth_") && s.len() <= PG_MAX_IDENT,
            "{s}"
        );
        assert_ne!(s, pg_schema("public", &"u".repeat(64)));
        let s = pg_schema(&"b".repeat(60), "acme");
        assert!(
            s.starts_with("codeai_tenanth_") && s.len() <= PG_MAX_IDENT,
            "{s}"
        );
    }
}
