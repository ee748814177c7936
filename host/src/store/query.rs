//! Queries on a job's entities: the structured queries of the `data` capability
//! ([`crate::caps::data`]) compiled into parameterised SQL.
//!
//! A guest never sends SQL text (DESIGN.md, invariant 7). It sends an entity name, a flattened
//! filter tree, sort keys, a limit, assignments or rows; this module checks every name against
//! the entity declarations of the job's manifest (the column allow-list), checks every value
//! against its field's type, and builds the statement with [`sqlx::QueryBuilder`], so values only
//! ever travel as bound parameters. Identifiers come from the declarations, never from the guest.
//!
//! Tables are resolved in the namespace of the execution's tenant ([`Namespace`]): a tenant
//! reaches its own tables only. Every statement is also scoped by
//! `tenant_id = <the execution's tenant>`; inserts set it.
//!
//! The built-in entities (`JobExecution`, `Report`: [`codeai_ir::platform::BUILTIN_ENTITIES`])
//! are the platform's own tables, reached through operations the platform defines
//! ([`builtin`]): `select` and `count` of the tenant's rows and the declared fields only,
//! `delete` of finished executions or of reports with their files; `insert`, `update` and
//! `maintain` are denied.
//!
//! Maintenance of the whole database (`maintain vacuum` without an entity) is the operator's:
//! a tenant's `maintain` acts on its own tables, at most once per table and operation per
//! [`TENANT_MAINTENANCE_EVERY`], and never vacuums SQLite (which only vacuums whole files).
//!
//! The input is the generated WIT types of `codeai:host/data` ([`crate::wasm::data`]) as the
//! guest sent them (JSON values stay JSON text, as in WIT): no copy of them to keep in step.
//!
//! Values on the wire and in rows:
//! - `datetime`: RFC 3339 in, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds) out. SQLite stores
//!   exactly that text, so text order is time order; PostgreSQL stores `TIMESTAMPTZ`.
//! - `date`: `YYYY-MM-DD`. `uuid`: hyphenated lower case. `json`: any JSON value.
//! - `int` accepts integral JSON numbers (`3` or `3.0`); `float` any number.
//!
//! Dialect differences smoothed over: `like` is case-insensitive on both (`ILIKE` on PostgreSQL,
//! SQLite's ASCII-case-insensitive `LIKE`); `NULL`s sort first ascending and last descending on both.

mod builtin;

use crate::store::entities::{check_declaration, TENANT_COLUMN};
use crate::store::namespace::{Namespace, NamespaceError};
use crate::store::rows::{per_database, scalar};
use crate::store::sql::{datetime_text, Param, Stmt};
use crate::store::{quote_ident, Database, Dialect};
use crate::wasm::data::{
    AggFunc, AggregateColumn, AggregateQuery, ArithOp, Assignment, CompareOp, Comparison, Filter,
    FilterNode, MaintenanceOp, NewValue, OrderBy, Query, Term, TermComparison, TermFunc,
};
use chrono::{DateTime, NaiveDate, Utc};
use codeai_ir::platform::{builtin_entity, BuiltinEntity};
use codeai_ir::{EntityDecl, FieldDecl, FieldType};
use futures_util::TryStreamExt as _;
use serde_json::{Map, Number, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// Rows a `select` returns when the query gives no limit.
pub const DEFAULT_ROW_LIMIT: u32 = 10_000;
/// Rows a `select` returns at most, whatever limit the query asks for. Without this ceiling a
/// job could pull a whole multi-million-row table into host memory and then into the guest as
/// one JSON string, starving every other execution on the worker.
pub const MAX_ROW_LIMIT: u32 = 10_000;
/// The largest `offset` a select may pass over: the database reads every row it passes, so a
/// deep page costs like reading them all; beyond this, a job pages by a key.
pub const MAX_OFFSET: u32 = 1_000_000;
/// Rows one `insert` may carry: bounds the JSON parsed and the transaction held open.
pub const MAX_INSERT_ROWS: usize = 10_000;
/// Nodes a filter list may hold.
pub const MAX_FILTER_NODES: usize = 1_000;
/// How deep a filter tree may nest (the compiler recurses; a deep chain would exhaust the stack).
pub const MAX_FILTER_DEPTH: usize = 64;
/// Nodes visited when a filter is expanded into SQL. Children may be shared (the list is a DAG),
/// so a few dozen nodes that each point twice at the next would expand to billions of SQL
/// fragments; this budget refuses such a filter instead of building it.
pub const MAX_FILTER_EXPANSION: usize = 2_000;
/// Values in one `in` list.
pub const MAX_IN_VALUES: usize = 1_000;
/// Most terms in one comparison of fields (`price * quantity > 100` has four): a guest cannot
/// hand the database an expression of unbounded size.
pub const MAX_TERMS: usize = 64;
/// Sort keys and assignments per call.
pub const MAX_ORDER_KEYS: usize = 16;
/// Columns and group fields of one aggregate.
pub const MAX_AGGREGATE_COLUMNS: usize = 32;
/// How often a tenant's job may run one maintenance operation on one of its tables: VACUUM and
/// REINDEX lock and rewrite tables, and a job can run every minute.
pub const TENANT_MAINTENANCE_EVERY: chrono::Duration = chrono::Duration::hours(1);
/// Bound parameters per INSERT statement (SQLite allows 32 766, PostgreSQL 65 535); bigger
/// inserts are split into several statements inside one transaction.
const MAX_BINDS_PER_STATEMENT: usize = 16_000;

// ---------------------------------------------------------------------------------------------
// Errors and the WIT input types
// ---------------------------------------------------------------------------------------------

/// Why a query failed. Maps onto `cap-error` (`denied`, `invalid`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The entity or a field is not declared by the job.
    #[error("denied: {0}")]
    Denied(String),
    /// A malformed argument: wrong value type, bad filter, unparsable JSON, over a limit.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed.
    #[error("failed: {0}")]
    Failed(String),
}

/// Constructors for Rust callers (the demo data, tests); the guest builds these in WIT.
impl Comparison {
    /// A comparison with a JSON value (serialised here).
    pub fn new(field: impl Into<String>, op: CompareOp, value: Value) -> Comparison {
        Comparison {
            field: field.into(),
            op,
            value: value.to_string(),
        }
    }
}

impl Filter {
    /// A filter of one comparison.
    pub fn compare(comparison: Comparison) -> Filter {
        Filter {
            nodes: vec![FilterNode::Compare(comparison)],
            root: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The queries of one execution
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Entity {
    decl: EntityDecl,
    /// The platform table behind a built-in entity.
    builtin: Option<&'static BuiltinEntity>,
}

impl Entity {
    fn field(&self, name: &str) -> Result<&FieldDecl, QueryError> {
        self.decl
            .fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                QueryError::Denied(format!("entity `{}` has no field `{name}`", self.decl.name))
            })
    }

    fn columns(&self) -> String {
        let names: Vec<String> = self
            .decl
            .fields
            .iter()
            .map(|f| quote_ident(&f.name))
            .collect();
        names.join(", ")
    }
}

/// What one execution may query: the job's entities, a pool, and the tenant whose
/// namespace its tables are in and every statement is scoped to.
#[derive(Debug, Clone)]
pub struct EntityQueries {
    db: Database,
    entities: Arc<BTreeMap<String, Entity>>,
    namespace: Namespace,
    /// Where report files are kept (deleting a `Report` deletes its file too).
    report_dir: Option<PathBuf>,
}

/// What a read asks for: rows, or aggregates of them.
pub enum Read<'a> {
    Select(&'a Query),
    /// A select from the row at this offset of its order on.
    Page(&'a Query, u32),
    Aggregate(&'a AggregateQuery),
}

impl EntityQueries {
    /// Checks the declarations ([`check_declaration`]: no platform table, built-in shapes,
    /// identifiers only) and binds them to a pool and `tenant`'s namespace. The tables must
    /// exist ([`crate::store::entities::create_entity_tables`]).
    pub fn new(
        db: Database,
        entities: &[EntityDecl],
        tenant: impl Into<String>,
    ) -> Result<EntityQueries, QueryError> {
        let tenant = tenant.into();
        if tenant.is_empty() {
            return Err(QueryError::Invalid("the tenant id is empty".into()));
        }
        let namespace = Namespace::new(&db, &tenant);
        EntityQueries::in_namespace(db, entities, namespace)
    }

    /// [`EntityQueries::new`] in a namespace made by the caller (sharing its schema cache).
    pub fn in_namespace(
        db: Database,
        entities: &[EntityDecl],
        namespace: Namespace,
    ) -> Result<EntityQueries, QueryError> {
        let mut map = BTreeMap::new();
        for decl in entities {
            check_declaration(decl).map_err(|m| {
                QueryError::Invalid(format!("entity `{}` cannot be used: {m}", decl.name))
            })?;
            map.insert(
                decl.name.clone(),
                Entity {
                    decl: decl.clone(),
                    builtin: builtin_entity(&decl.table),
                },
            );
        }
        if namespace.tenant().is_empty() {
            return Err(QueryError::Invalid("the tenant id is empty".into()));
        }
        Ok(EntityQueries {
            db,
            entities: Arc::new(map),
            namespace,
            report_dir: None,
        })
    }

    /// The report directory, so that deleting a `Report` removes its file.
    pub fn with_report_dir(mut self, dir: impl Into<PathBuf>) -> EntityQueries {
        self.report_dir = Some(dir.into());
        self
    }

    pub fn tenant(&self) -> &str {
        self.namespace.tenant()
    }

    /// The pool the queries run on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn entity(&self, name: &str) -> Result<&Entity, QueryError> {
        self.entities.get(name).ok_or_else(|| {
            QueryError::Denied(format!("entity `{name}` is not declared by this job"))
        })
    }

    /// The quoted name of an entity's table: the platform's table for a built-in entity, the
    /// table in the tenant's namespace otherwise.
    async fn table(&self, entity: &Entity) -> Result<String, QueryError> {
        if let Some(b) = entity.builtin {
            return Ok(quote_ident(b.table));
        }
        self.namespace
            .table(&self.db, &entity.decl.table)
            .await
            .map_err(|e| match e {
                NamespaceError::Name(m) => QueryError::Denied(m),
                NamespaceError::Db(e) => failed(e),
            })
    }

    /// `Denied` for a write to a built-in entity.
    fn writable(entity: &Entity, what: &str) -> Result<(), QueryError> {
        match entity.builtin {
            Some(b) => Err(QueryError::Denied(format!(
                "cannot {what} `{}`: it is the platform's table `{}`, which jobs only read and \
                 delete from",
                entity.decl.name, b.table
            ))),
            None => Ok(()),
        }
    }

    /// `select`: the matching rows as a JSON array of objects (the declared fields only).
    pub async fn select(&self, query: &Query) -> Result<String, QueryError> {
        self.select_within(query, &mut |_| Ok(())).await
    }

    /// [`EntityQueries::select`] that streams the rows into the JSON text and tells `charge`
    /// how many bytes its buffers hold each time they grow; an error from `charge` stops the
    /// query and is returned (a caller bounds the host memory one select can take this way).
    pub async fn select_within(
        &self,
        query: &Query,
        charge: &mut (dyn FnMut(usize) -> Result<(), QueryError> + Send),
    ) -> Result<String, QueryError> {
        self.read_within(Read::Select(query), charge).await
    }

    /// A `select` or an `aggregate` as [`EntityQueries::select_within`] runs a select.
    pub async fn read_within(
        &self,
        read: Read<'_>,
        charge: &mut (dyn FnMut(usize) -> Result<(), QueryError> + Send),
    ) -> Result<String, QueryError> {
        match read {
            Read::Select(query) => {
                let (entity, stmt) = self.select_statement(query, 0).await?;
                self.fetch_json(entity, &stmt, charge).await
            }
            Read::Page(query, offset) => {
                let (entity, stmt) = self.select_statement(query, offset).await?;
                self.fetch_json(entity, &stmt, charge).await
            }
            Read::Aggregate(query) => {
                let (columns, stmt) = self.aggregate_statement(query).await?;
                self.fetch_json(&columns, &stmt, charge).await
            }
        }
    }

    /// `aggregate`, returning the rows as JSON objects.
    pub async fn aggregate_rows(
        &self,
        query: &AggregateQuery,
    ) -> Result<Vec<Map<String, Value>>, QueryError> {
        let (columns, stmt) = self.aggregate_statement(query).await?;
        self.fetch_rows(&columns, &stmt).await
    }

    /// `SELECT groups…, AGG(field) AS name, … FROM t WHERE tenant AND filter GROUP BY groups
    /// ORDER BY … LIMIT …`, with the shape of its rows (as an entity whose fields are the group
    /// fields, then the columns).
    async fn aggregate_statement(
        &self,
        query: &AggregateQuery,
    ) -> Result<(Entity, Stmt), QueryError> {
        let entity = self.entity(&query.entity)?;
        let invalid = |m: String| Err(QueryError::Invalid(m));
        if query.columns.is_empty() {
            return invalid("an aggregate needs at least one column".into());
        }
        if query.columns.len() + query.group_by.len() > MAX_AGGREGATE_COLUMNS {
            return invalid(format!(
                "an aggregate has at most {MAX_AGGREGATE_COLUMNS} columns and group fields"
            ));
        }
        let dialect = self.db.dialect();
        let mut names = BTreeSet::new();
        let mut shape: Vec<FieldDecl> = Vec::new();
        let mut select: Vec<String> = Vec::new();
        for group in &query.group_by {
            let field = entity.field(group)?;
            if field.ty == FieldType::Json {
                return invalid(format!("`{group}` is json; rows cannot be grouped by it"));
            }
            if !names.insert(group.as_str()) {
                return invalid(format!("`{group}` is named twice"));
            }
            select.push(quote_ident(group));
            shape.push(FieldDecl {
                optional: true,
                ..field.clone()
            });
        }
        for column in &query.columns {
            if !crate::store::valid_identifier(&column.name) || !names.insert(&column.name) {
                return invalid(format!(
                    "column name `{}` is not an identifier or is named twice",
                    column.name
                ));
            }
            let (sql, ty) = aggregate_sql(entity, column, dialect)?;
            select.push(format!("{sql} AS {}", quote_ident(&column.name)));
            shape.push(FieldDecl {
                name: column.name.clone(),
                ty,
                primary: false,
                optional: true,
                unique: false,
            });
        }
        let mut stmt = Stmt::default();
        let table = self.table(entity).await?;
        stmt.sql(format!("SELECT {} FROM {table}", select.join(", ")));
        self.where_clause(entity, query.filter.as_ref(), &mut stmt)?;
        if !query.group_by.is_empty() {
            let groups: Vec<String> = query.group_by.iter().map(|g| quote_ident(g)).collect();
            stmt.sql(format!(" GROUP BY {}", groups.join(", ")));
            if query.order.len() > MAX_ORDER_KEYS {
                return invalid(format!("at most {MAX_ORDER_KEYS} sort keys are allowed"));
            }
            let mut keys = Vec::new();
            for key in &query.order {
                if !names.contains(key.field.as_str()) {
                    return invalid(format!(
                        "`{}` is neither a column nor a group field of the aggregate",
                        key.field
                    ));
                }
                let direction = if key.descending {
                    "DESC NULLS LAST"
                } else {
                    "ASC NULLS FIRST"
                };
                keys.push(format!("{} {direction}", quote_ident(&key.field)));
            }
            // Equal keys: by the groups, so that the order is the same each time.
            keys.extend(groups);
            stmt.sql(format!(" ORDER BY {}", keys.join(", ")));
            let limit = query.limit.unwrap_or(DEFAULT_ROW_LIMIT).min(MAX_ROW_LIMIT);
            stmt.sql(" LIMIT ");
            stmt.bind(Param::Int(i64::from(limit)));
        }
        let columns = Entity {
            decl: EntityDecl {
                name: entity.decl.name.clone(),
                table: entity.decl.table.clone(),
                fields: shape,
            },
            builtin: None,
        };
        Ok((columns, stmt))
    }

    /// `select`, returning the rows as JSON objects.
    pub async fn select_rows(&self, query: &Query) -> Result<Vec<Map<String, Value>>, QueryError> {
        let (entity, stmt) = self.select_statement(query, 0).await?;
        self.fetch_rows(entity, &stmt).await
    }

    async fn select_statement(
        &self,
        query: &Query,
        offset: u32,
    ) -> Result<(&Entity, Stmt), QueryError> {
        if offset > MAX_OFFSET {
            return Err(QueryError::Invalid(format!(
                "offset {offset} is beyond {MAX_OFFSET} rows: page by a key instead \
                 (`where id > last.id order by id limit n`)"
            )));
        }
        let entity = self.entity(&query.entity)?;
        let mut stmt = Stmt::default();
        let table = self.table(entity).await?;
        stmt.sql(format!("SELECT {} FROM {table}", entity.columns()));
        self.where_clause(entity, query.filter.as_ref(), &mut stmt)?;
        self.order_clause(entity, &query.order, &mut stmt)?;
        // Clamp rather than refuse: a job asking for "everything" gets the ceiling.
        let limit = query.limit.unwrap_or(DEFAULT_ROW_LIMIT).min(MAX_ROW_LIMIT);
        stmt.sql(" LIMIT ");
        stmt.bind(Param::Int(i64::from(limit)));
        if offset > 0 {
            stmt.sql(" OFFSET ");
            stmt.bind(Param::Int(i64::from(offset)));
        }
        Ok((entity, stmt))
    }

    /// `count`.
    pub async fn count(&self, entity: &str, filter: Option<&Filter>) -> Result<u64, QueryError> {
        let entity = self.entity(entity)?;
        let mut stmt = Stmt::default();
        let table = self.table(entity).await?;
        stmt.sql(format!("SELECT COUNT(*) FROM {table}"));
        self.where_clause(entity, filter, &mut stmt)?;
        let n = scalar::<i64>(&self.db, &stmt).await.map_err(failed)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// `delete`: returns how many rows were deleted.
    pub async fn delete(&self, entity: &str, filter: Option<&Filter>) -> Result<u64, QueryError> {
        let entity = self.entity(entity)?;
        if let Some(b) = entity.builtin {
            return self.delete_builtin(entity, b, filter).await;
        }
        let table = self.table(entity).await?;
        let mut stmt = Stmt::default();
        stmt.sql(format!("DELETE FROM {table}"));
        self.where_clause(entity, filter, &mut stmt)?;
        self.execute(&stmt).await
    }

    /// `update`: returns how many rows were changed.
    pub async fn update(
        &self,
        entity: &str,
        filter: Option<&Filter>,
        set: &[Assignment],
    ) -> Result<u64, QueryError> {
        let entity = self.entity(entity)?;
        Self::writable(entity, "update")?;
        if set.is_empty() {
            return Err(QueryError::Invalid(
                "an update needs at least one assignment".into(),
            ));
        }
        if set.len() > MAX_ORDER_KEYS.max(entity.decl.fields.len()) {
            return Err(QueryError::Invalid(format!(
                "{} assignments is more than the entity has fields",
                set.len()
            )));
        }
        let mut stmt = Stmt::default();
        let table = self.table(entity).await?;
        stmt.sql(format!("UPDATE {table} SET "));
        let mut seen = BTreeSet::new();
        for (i, assignment) in set.iter().enumerate() {
            let field = entity.field(&assignment.field)?;
            if !seen.insert(field.name.as_str()) {
                return Err(QueryError::Invalid(format!(
                    "field `{}` is assigned twice",
                    field.name
                )));
            }
            if i > 0 {
                stmt.sql(", ");
            }
            let column = quote_ident(&field.name);
            match &assignment.value {
                NewValue::Set(json) => {
                    let value = parse_json(json, &field.name)?;
                    let param = if value.is_null() {
                        if !field.optional {
                            return Err(QueryError::Invalid(format!(
                                "field `{}` is not optional and cannot be set to null",
                                field.name
                            )));
                        }
                        Param::Null(field.ty)
                    } else {
                        typed(field, &value)?
                    };
                    stmt.sql(format!("{column} = "));
                    stmt.bind(param);
                }
                NewValue::Add(delta) => {
                    let param = match field.ty {
                        FieldType::Int => Param::Int(integral(*delta).ok_or_else(|| {
                            QueryError::Invalid(format!(
                                "field `{}` is an int; cannot add {delta}",
                                field.name
                            ))
                        })?),
                        FieldType::Float if delta.is_finite() => Param::Float(*delta),
                        _ => {
                            return Err(QueryError::Invalid(format!(
                                "field `{}` is {}; only int and float fields can be added to",
                                field.name,
                                type_name(field.ty)
                            )))
                        }
                    };
                    stmt.sql(format!("{column} = COALESCE({column}, 0) + "));
                    stmt.bind(param);
                }
            }
        }
        self.where_clause(entity, filter, &mut stmt)?;
        self.execute(&stmt).await
    }

    /// `insert`: `rows` is a JSON array of objects; returns how many rows were inserted.
    ///
    /// A missing optional field is NULL; a missing `uuid` primary key is generated; any other
    /// missing field is `invalid`. All rows are inserted in one transaction.
    pub async fn insert(&self, entity: &str, rows: &str) -> Result<u64, QueryError> {
        Self::writable(self.entity(entity)?, "insert into")?;
        let rows: Value = serde_json::from_str(rows)
            .map_err(|e| QueryError::Invalid(format!("rows are not valid JSON: {e}")))?;
        self.insert_parsed(entity, rows, None).await
    }

    /// [`EntityQueries::insert`] of rows parsed by the caller (who charged the parsed tree to
    /// the execution's memory budget); with `keys`, an upsert.
    ///
    /// An upsert matches rows on `keys` (the primary key or `unique` fields, each given by every
    /// row): a row whose keys are new is inserted as by `insert`; one whose keys exist sets the
    /// fields it gives (not the keys, nor the primary key) on that row and leaves the others.
    /// Rows with the same keys: the last wins. Returns how many rows were written.
    pub async fn insert_parsed(
        &self,
        entity: &str,
        rows: Value,
        keys: Option<&[String]>,
    ) -> Result<u64, QueryError> {
        let entity = self.entity(entity)?;
        Self::writable(
            entity,
            if keys.is_some() {
                "upsert into"
            } else {
                "insert into"
            },
        )?;
        let keys = match keys {
            Some(keys) => Some(Self::upsert_keys(entity, keys)?),
            None => None,
        };
        let Value::Array(rows) = rows else {
            return Err(QueryError::Invalid(
                "rows must be a JSON array of objects".into(),
            ));
        };
        if rows.len() > MAX_INSERT_ROWS {
            return Err(QueryError::Invalid(format!(
                "{} rows is more than the {MAX_INSERT_ROWS} one insert may carry",
                rows.len()
            )));
        }
        let fields = &entity.decl.fields;
        // Each row's values, and which fields it gives (an insert writes them all).
        let mut values: Vec<(Vec<Param>, Vec<bool>)> = Vec::with_capacity(rows.len());
        let mut by_keys: HashMap<String, usize> = HashMap::new();
        for (n, row) in rows.iter().enumerate() {
            let Value::Object(object) = row else {
                return Err(QueryError::Invalid(format!("row {n} is not a JSON object")));
            };
            for key in object.keys() {
                entity.field(key)?;
            }
            let mut params = Vec::with_capacity(fields.len());
            let mut given = Vec::with_capacity(fields.len());
            for field in fields {
                let param = match object.get(&field.name) {
                    Some(value) if !value.is_null() => {
                        typed(field, value).map_err(|e| prefix_row(n, e))?
                    }
                    _ if field.optional => Param::Null(field.ty),
                    None if field.primary && field.ty == FieldType::Uuid => {
                        Param::Uuid(Uuid::new_v4())
                    }
                    _ => {
                        return Err(QueryError::Invalid(format!(
                            "row {n}: field `{}` is required",
                            field.name
                        )))
                    }
                };
                params.push(param);
                given.push(keys.is_none() || object.contains_key(&field.name) || field.primary);
            }
            let Some(keys) = &keys else {
                values.push((params, given));
                continue;
            };
            let mut identity = Vec::with_capacity(keys.len());
            for &k in keys {
                match object.get(&fields[k].name) {
                    Some(v) if !v.is_null() => identity.push(v.to_string()),
                    _ => {
                        return Err(QueryError::Invalid(format!(
                            "row {n}: the upsert's key `{}` is required",
                            fields[k].name
                        )))
                    }
                }
            }
            // One statement cannot write a row twice (PostgreSQL refuses): the last row wins.
            match by_keys.entry(identity.join("\u{1f}")) {
                Entry::Occupied(seen) => values[*seen.get()] = (params, given),
                Entry::Vacant(slot) => {
                    slot.insert(values.len());
                    values.push((params, given));
                }
            }
        }
        let table = self.table(entity).await?;
        let mut statements: Vec<Stmt> = Vec::new();
        if keys.is_some() && self.db.dialect() == Dialect::Sqlite {
            // SQLite matches an upsert's conflict target against the schema the connection
            // holds, and does not reload it when the match fails: a pooled connection that read
            // the schema before the unique index was made would refuse the upsert. A first
            // statement that writes nothing brings the schema up to date (and takes the write
            // lock the transaction needs anyway).
            let mut refresh = Stmt::default();
            refresh.sql(format!("DELETE FROM {table} WHERE 0"));
            statements.push(refresh);
        }
        // Rows that give the same fields share statements.
        let mut shapes: Vec<&Vec<bool>> = Vec::new();
        for (_, given) in &values {
            if !shapes.contains(&given) {
                shapes.push(given);
            }
        }
        for shape in shapes {
            let written: Vec<usize> = (0..fields.len()).filter(|&i| shape[i]).collect();
            let mut columns = quote_ident(TENANT_COLUMN);
            for &i in &written {
                columns.push_str(", ");
                columns.push_str(&quote_ident(&fields[i].name));
            }
            let conflict = keys
                .as_ref()
                .map(|keys| upsert_clause(fields, keys, &written));
            let rows: Vec<&Vec<Param>> = values
                .iter()
                .filter(|(_, given)| given == shape)
                .map(|(params, _)| params)
                .collect();
            let per_statement = (MAX_BINDS_PER_STATEMENT / (written.len() + 1)).max(1);
            for chunk in rows.chunks(per_statement) {
                let mut stmt = Stmt::default();
                stmt.sql(format!("INSERT INTO {table} ({columns}) VALUES "));
                for (r, row) in chunk.iter().enumerate() {
                    stmt.sql(if r == 0 { "(" } else { ", (" });
                    stmt.bind(Param::Text(self.tenant().to_string()));
                    for &i in &written {
                        stmt.sql(", ");
                        stmt.bind(row[i].clone());
                    }
                    stmt.sql(")");
                }
                if let Some(conflict) = &conflict {
                    stmt.sql(conflict.clone());
                }
                statements.push(stmt);
            }
        }
        if values.is_empty() {
            return Ok(0);
        }
        crate::store::rows::execute_all(&self.db, &statements)
            .await
            .map_err(|e| conflict(entity, e))
    }

    /// The field (its index, in a list) an upsert matches on: one declared field, the primary
    /// key or `unique` (the conflict target needs an index of exactly those columns, and each
    /// unique field has one of its own).
    fn upsert_keys(entity: &Entity, keys: &[String]) -> Result<Vec<usize>, QueryError> {
        let [key] = keys else {
            return Err(QueryError::Invalid(format!(
                "an upsert matches rows on one key field, not {}",
                keys.len()
            )));
        };
        let field = entity.field(key)?;
        if !field.primary && !field.unique {
            return Err(QueryError::Invalid(format!(
                "`{key}` is not a key of `{}`: an upsert matches rows on the primary key or on \
                 a unique field",
                entity.decl.name
            )));
        }
        let i = entity.decl.fields.iter().position(|f| f.name == *key);
        Ok(i.into_iter().collect())
    }

    /// `maintain`: runs a maintenance operation on one entity's table, or, with `entity` `None`,
    /// on the whole database (the operator's jobs) or on every table the job declares (a
    /// tenant's: database-wide maintenance is the operator's).
    ///
    /// SQLite: `VACUUM` (always the whole file: SQLite cannot vacuum one table, so a tenant's job
    /// cannot), `ANALYZE t`, `REINDEX t`. PostgreSQL: `VACUUM (ANALYZE) t`, `ANALYZE t`,
    /// `REINDEX TABLE t`. A tenant's job runs each operation on each table at most once per
    /// [`TENANT_MAINTENANCE_EVERY`].
    pub async fn maintain(
        &self,
        op: MaintenanceOp,
        entity: Option<&str>,
    ) -> Result<String, QueryError> {
        let entities: Vec<&Entity> = match entity {
            Some(name) => {
                let e = self.entity(name)?;
                Self::writable(e, "maintain")?;
                vec![e]
            }
            None if self.namespace.is_operator() => return self.maintain_database(op).await,
            // A tenant's "whole database" is its own tables.
            None => {
                let mut tables = BTreeSet::new();
                self.entities
                    .values()
                    .filter(|e| e.builtin.is_none() && tables.insert(&e.decl.table))
                    .collect()
            }
        };
        if entities.is_empty() {
            return Err(QueryError::Denied(
                "maintenance of the whole database is the operator's; this job declares no \
                 table of its own to maintain"
                    .into(),
            ));
        }
        let mut summaries = Vec::new();
        for e in entities {
            summaries.push(self.maintain_table(op, e).await?);
        }
        Ok(summaries.join("; "))
    }

    async fn maintain_table(&self, op: MaintenanceOp, e: &Entity) -> Result<String, QueryError> {
        let table = e.decl.table.as_str();
        let quoted = self.table(e).await?;
        let tenant_job = !self.namespace.is_operator();
        let (statement, summary) = match (self.db.dialect(), op) {
            (Dialect::Sqlite, MaintenanceOp::Vacuum) if tenant_job => {
                return Err(QueryError::Denied(
                    "VACUUM on SQLite rewrites the whole database file, which only the \
                     operator's jobs may do; use `maintain analyze` or `maintain reindex` on \
                     your tables"
                        .into(),
                ))
            }
            // SQLite vacuums whole files only.
            (Dialect::Sqlite, MaintenanceOp::Vacuum) => (
                "VACUUM".to_string(),
                "VACUUM of the whole SQLite database".to_string(),
            ),
            (Dialect::Postgres, MaintenanceOp::Vacuum) => (
                format!("VACUUM (ANALYZE) {quoted}"),
                format!("VACUUM (ANALYZE) of {table}"),
            ),
            (_, MaintenanceOp::Analyze) => {
                (format!("ANALYZE {quoted}"), format!("ANALYZE of {table}"))
            }
            (Dialect::Sqlite, MaintenanceOp::Reindex) => {
                (format!("REINDEX {quoted}"), format!("REINDEX of {table}"))
            }
            (Dialect::Postgres, MaintenanceOp::Reindex) => (
                format!("REINDEX TABLE {quoted}"),
                format!("REINDEX TABLE of {table}"),
            ),
        };
        if tenant_job {
            self.claim_maintenance(table, op).await?;
        }
        self.run_maintenance(std::slice::from_ref(&statement))
            .await?;
        Ok(summary)
    }

    /// Records that the tenant maintains `table` now, unless it did less than
    /// [`TENANT_MAINTENANCE_EVERY`] ago (then `Denied`). One conditional upsert, so two
    /// executions at once cannot both pass.
    async fn claim_maintenance(&self, table: &str, op: MaintenanceOp) -> Result<(), QueryError> {
        let now = Utc::now();
        let op_name = match op {
            MaintenanceOp::Vacuum => "vacuum",
            MaintenanceOp::Analyze => "analyze",
            MaintenanceOp::Reindex => "reindex",
        };
        let claim = crate::store::sql::stmt(
            "INSERT INTO maintenance_runs (tenant_id, target, op, last_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id, target, op) DO UPDATE SET last_at = excluded.last_at \
             WHERE maintenance_runs.last_at <= ?",
            vec![
                Param::Text(self.tenant().to_string()),
                Param::Text(table.to_string()),
                Param::Text(op_name.to_string()),
                Param::DateTime(now),
                Param::DateTime(now - TENANT_MAINTENANCE_EVERY),
            ],
        );
        if self.execute(&claim).await? == 0 {
            return Err(QueryError::Denied(format!(
                "`maintain {op_name}` of `{table}` ran less than {} minutes ago; a tenant's job \
                 may run it once per {} minutes",
                TENANT_MAINTENANCE_EVERY.num_minutes(),
                TENANT_MAINTENANCE_EVERY.num_minutes()
            )));
        }
        Ok(())
    }

    /// Maintenance of the whole database (the WIT's `entity: none`): the operator's jobs only.
    async fn maintain_database(&self, op: MaintenanceOp) -> Result<String, QueryError> {
        debug_assert!(self.namespace.is_operator());
        let (statement, summary) = match (&self.db, op) {
            (Database::Sqlite(_), MaintenanceOp::Vacuum) => ("VACUUM".to_string(), "VACUUM"),
            (Database::Postgres(_), MaintenanceOp::Vacuum) => {
                ("VACUUM (ANALYZE)".to_string(), "VACUUM (ANALYZE)")
            }
            (_, MaintenanceOp::Analyze) => ("ANALYZE".to_string(), "ANALYZE"),
            (Database::Sqlite(_), MaintenanceOp::Reindex) => ("REINDEX".to_string(), "REINDEX"),
            (Database::Postgres(pool), MaintenanceOp::Reindex) => {
                // The schema the platform's tables live in (its `search_path`).
                let schema: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(pool)
                    .await
                    .map_err(failed)?;
                (
                    format!("REINDEX SCHEMA {}", quote_ident(&schema)),
                    "REINDEX SCHEMA",
                )
            }
        };
        self.run_maintenance(std::slice::from_ref(&statement))
            .await?;
        Ok(format!("{summary} of the whole database"))
    }

    async fn run_maintenance(&self, statements: &[String]) -> Result<(), QueryError> {
        for statement in statements {
            // Maintenance statements cannot run inside a transaction (VACUUM) and take no
            // parameters; the table names come from the declarations.
            match &self.db {
                Database::Sqlite(pool) => {
                    // A pooled connection keeps its own copy of the schema, and SQLite looks a
                    // REINDEX's table up in that copy without checking that it is current (any
                    // other statement finds out and reloads it): a table made through another
                    // connection since would be "unable to identify". Reading the schema table
                    // first, on the same connection (one text: sqlx prepares each statement
                    // after the one before it ran), reloads a stale copy.
                    let both = format!("SELECT 1 FROM sqlite_schema LIMIT 1; {statement}");
                    sqlx::raw_sql(&both).execute(pool).await.map_err(failed)?;
                }
                Database::Postgres(pool) => {
                    sqlx::raw_sql(statement)
                        .execute(pool)
                        .await
                        .map_err(failed)?;
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Compilation
    // -----------------------------------------------------------------------------------------

    /// ` WHERE tenant_id = ? [AND (filter)]`.
    fn where_clause(
        &self,
        entity: &Entity,
        filter: Option<&Filter>,
        stmt: &mut Stmt,
    ) -> Result<(), QueryError> {
        stmt.sql(format!(" WHERE {} = ", quote_ident(TENANT_COLUMN)));
        stmt.bind(Param::Text(self.tenant().to_string()));
        if let Some(filter) = filter {
            if filter.nodes.len() > MAX_FILTER_NODES {
                return Err(QueryError::Invalid(format!(
                    "the filter has {} nodes; at most {MAX_FILTER_NODES} are allowed",
                    filter.nodes.len()
                )));
            }
            let mut compiler = FilterCompiler {
                entity,
                filter,
                dialect: self.db.dialect(),
                on_path: vec![false; filter.nodes.len()],
                visited: 0,
            };
            stmt.sql(" AND (");
            compiler.node(filter.root, 0, stmt)?;
            stmt.sql(")");
        }
        Ok(())
    }

    fn order_clause(
        &self,
        entity: &Entity,
        order: &[OrderBy],
        stmt: &mut Stmt,
    ) -> Result<(), QueryError> {
        if order.len() > MAX_ORDER_KEYS {
            return Err(QueryError::Invalid(format!(
                "{} sort keys; at most {MAX_ORDER_KEYS} are allowed",
                order.len()
            )));
        }
        let mut keys = Vec::new();
        for key in order {
            let field = entity.field(&key.field)?;
            let column = quote_ident(&field.name);
            keys.push(if key.descending {
                format!("{column} DESC NULLS LAST")
            } else {
                format!("{column} ASC NULLS FIRST")
            });
        }
        // A stable order for equal keys: the primary key last.
        if let Some(primary) = entity.decl.fields.iter().find(|f| f.primary) {
            if !order.iter().any(|k| k.field == primary.name) {
                keys.push(format!("{} ASC", quote_ident(&primary.name)));
            }
        }
        if !keys.is_empty() {
            stmt.sql(format!(" ORDER BY {}", keys.join(", ")));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Execution
    // -----------------------------------------------------------------------------------------

    async fn execute(&self, stmt: &Stmt) -> Result<u64, QueryError> {
        crate::store::rows::execute(&self.db, stmt)
            .await
            .map_err(failed)
    }

    async fn fetch_rows(
        &self,
        entity: &Entity,
        stmt: &Stmt,
    ) -> Result<Vec<Map<String, Value>>, QueryError> {
        per_database!(&self.db, |pool, builder, row| {
            let rows = builder(stmt)
                .build()
                .fetch_all(pool)
                .await
                .map_err(failed)?;
            rows.iter().map(|r| entity_row(entity, r)).collect()
        })
    }

    /// The rows as a JSON array, written one row at a time as they come from the database.
    async fn fetch_json(
        &self,
        entity: &Entity,
        stmt: &Stmt,
        charge: &mut (dyn FnMut(usize) -> Result<(), QueryError> + Send),
    ) -> Result<String, QueryError> {
        let mut out = JsonRows::default();
        per_database!(&self.db, |pool, builder, row| {
            let mut builder = builder(stmt);
            let mut rows = builder.build().fetch(pool);
            while let Some(row) = rows.try_next().await.map_err(failed)? {
                out.push(&entity_row(entity, &row)?, charge)?;
            }
        });
        out.finish(charge)
    }
}

/// A JSON array of rows being written, its buffers' size reported as they grow.
#[derive(Default)]
struct JsonRows {
    out: Vec<u8>,
    /// The row being written (reused).
    row: Vec<u8>,
}

impl JsonRows {
    fn push(
        &mut self,
        row: &Map<String, Value>,
        charge: &mut (dyn FnMut(usize) -> Result<(), QueryError> + Send),
    ) -> Result<(), QueryError> {
        self.row.clear();
        serde_json::to_writer(&mut self.row, row)
            .map_err(|e| QueryError::Failed(format!("writing a row as JSON: {e}")))?;
        // `[` or `,` before the row, `]` after the last.
        let needed = self.out.len() + self.row.len() + 2;
        if needed > self.out.capacity() {
            let capacity = needed.max(self.out.capacity() * 2);
            // While the buffer moves, the old one and the new one both exist.
            charge(self.out.capacity() + capacity + self.row.capacity())?;
            self.out.reserve_exact(capacity - self.out.len());
        }
        charge(self.out.capacity() + self.row.capacity())?;
        self.out.push(if self.out.is_empty() { b'[' } else { b',' });
        self.out.extend_from_slice(&self.row);
        Ok(())
    }

    fn finish(
        mut self,
        charge: &mut (dyn FnMut(usize) -> Result<(), QueryError> + Send),
    ) -> Result<String, QueryError> {
        if self.out.is_empty() {
            self.out.push(b'[');
        }
        self.out.push(b']');
        drop(self.row);
        charge(self.out.capacity())?;
        String::from_utf8(self.out)
            .map_err(|e| QueryError::Failed(format!("the rows are not UTF-8: {e}")))
    }
}

struct FilterCompiler<'a> {
    entity: &'a Entity,
    filter: &'a Filter,
    dialect: Dialect,
    /// Nodes on the path from the root to the node being compiled: meeting one again is a cycle.
    on_path: Vec<bool>,
    /// Nodes compiled so far, counting shared nodes each time (see [`MAX_FILTER_EXPANSION`]).
    visited: usize,
}

impl FilterCompiler<'_> {
    fn node(&mut self, index: u32, depth: usize, stmt: &mut Stmt) -> Result<(), QueryError> {
        let i = index as usize;
        let Some(node) = self.filter.nodes.get(i) else {
            return Err(QueryError::Invalid(format!(
                "filter node index {index} is out of range (the filter has {} nodes)",
                self.filter.nodes.len()
            )));
        };
        if self.on_path[i] {
            return Err(QueryError::Invalid(format!(
                "the filter has a cycle through node {index}"
            )));
        }
        if depth >= MAX_FILTER_DEPTH {
            return Err(QueryError::Invalid(format!(
                "the filter nests deeper than {MAX_FILTER_DEPTH} levels"
            )));
        }
        self.visited += 1;
        if self.visited > MAX_FILTER_EXPANSION {
            return Err(QueryError::Invalid(format!(
                "the filter expands to more than {MAX_FILTER_EXPANSION} nodes"
            )));
        }
        self.on_path[i] = true;
        match node {
            FilterNode::All(children) | FilterNode::Any(children) => {
                let (empty, joiner) = match node {
                    FilterNode::All(_) => ("1=1", " AND "),
                    _ => ("1=0", " OR "),
                };
                if children.is_empty() {
                    stmt.sql(empty);
                } else {
                    stmt.sql("(");
                    for (n, child) in children.iter().enumerate() {
                        if n > 0 {
                            stmt.sql(joiner);
                        }
                        self.node(*child, depth + 1, stmt)?;
                    }
                    stmt.sql(")");
                }
            }
            FilterNode::Not(child) => {
                stmt.sql("NOT (");
                self.node(*child, depth + 1, stmt)?;
                stmt.sql(")");
            }
            FilterNode::Compare(comparison) => self.comparison(comparison, stmt)?,
            FilterNode::Terms(terms) => self.terms(terms, stmt)?,
        }
        self.on_path[i] = false;
        Ok(())
    }

    /// `left op right` between terms over the entity's declared columns; values are bound.
    fn terms(&mut self, t: &TermComparison, stmt: &mut Stmt) -> Result<(), QueryError> {
        let invalid = |m: String| Err(QueryError::Invalid(m));
        if t.terms.len() > MAX_TERMS {
            return invalid(format!(
                "a comparison has {} terms; at most {MAX_TERMS} are allowed",
                t.terms.len()
            ));
        }
        use CompareOp::{Eq, Ge, Gt, Le, Lt, Ne};
        let op = match t.op {
            Eq | Ne | Lt | Le | Gt | Ge => sql_operator(t.op, self.dialect),
            other => {
                return invalid(format!(
                    "a comparison of terms uses =, !=, <, <=, > or >=, not {}",
                    op_label(other)
                ))
            }
        };
        // The type of every term, operands first (an operand comes before its user).
        let mut kinds: Vec<Option<FieldType>> = Vec::with_capacity(t.terms.len());
        for (i, term) in t.terms.iter().enumerate() {
            let operand = |j: u32| match kinds.get(j as usize) {
                Some(k) => Ok(*k),
                None => Err(QueryError::Invalid(format!(
                    "term {i} uses term {j}, which does not come before it"
                ))),
            };
            let numeric =
                |k: Option<FieldType>| matches!(k, Some(FieldType::Int | FieldType::Float));
            let kind = match term {
                Term::Column(name) => {
                    let field = self.entity.field(name)?;
                    if field.ty == FieldType::Json {
                        return invalid(format!(
                            "field `{}` is json; it can only be compared with null",
                            field.name
                        ));
                    }
                    Some(field.ty)
                }
                Term::Value(v) => match parse_json(v, "a filter value")? {
                    Value::Number(n) if n.is_i64() => Some(FieldType::Int),
                    Value::Number(_) => Some(FieldType::Float),
                    Value::String(_) => None,
                    Value::Bool(_) => Some(FieldType::Bool),
                    other => {
                        return invalid(format!(
                        "a value compared with fields is a number, a string or a boolean; got {}",
                        describe(&other)
                    ))
                    }
                },
                Term::Arith((_, a, b)) => {
                    if !numeric(operand(*a)?) || !numeric(operand(*b)?) {
                        return invalid("arithmetic in a filter needs numbers".into());
                    }
                    Some(FieldType::Float)
                }
                Term::Apply((f, a)) => {
                    let k = operand(*a)?;
                    let (fits, result) = match f {
                        TermFunc::Lowercase | TermFunc::Uppercase => (
                            matches!(k, None | Some(FieldType::String)),
                            FieldType::String,
                        ),
                        TermFunc::Length => {
                            (matches!(k, None | Some(FieldType::String)), FieldType::Int)
                        }
                        TermFunc::Hour => (k == Some(FieldType::Datetime), FieldType::Int),
                        TermFunc::Year | TermFunc::Month | TermFunc::Day => (
                            matches!(k, Some(FieldType::Date | FieldType::Datetime)),
                            FieldType::Int,
                        ),
                    };
                    if !fits {
                        return invalid(format!(
                            "{}() does not apply to {} values in a filter",
                            func_name(*f),
                            k.map_or("string", type_name)
                        ));
                    }
                    Some(result)
                }
            };
            kinds.push(kind);
        }
        let (Some(&lk), Some(&rk)) = (kinds.get(t.left as usize), kinds.get(t.right as usize))
        else {
            return invalid("a comparison's side is out of range of its terms".into());
        };
        let class = |k: Option<FieldType>| match k {
            Some(FieldType::Int | FieldType::Float) => "number",
            Some(FieldType::Bool) => "bool",
            // A string value takes the type of the other side (a date, a datetime, a uuid).
            None => "any",
            Some(_) => "text",
        };
        let comparable = match (lk, rk) {
            (None, None) => true,
            (None, Some(ty)) | (Some(ty), None) => class(Some(ty)) == "text",
            (Some(a), Some(b)) => {
                let time = |k: FieldType| matches!(k, FieldType::Date | FieldType::Datetime);
                class(Some(a)) == class(Some(b)) && (a == b || !(time(a) || time(b)))
            }
        };
        if !comparable {
            return invalid(format!(
                "cannot compare {} with {} in a filter",
                lk.map_or("string", type_name),
                rk.map_or("string", type_name)
            ));
        }
        if op != "="
            && op != "<>"
            && [lk, rk]
                .iter()
                .any(|k| matches!(k, Some(FieldType::Bool | FieldType::Uuid)))
        {
            return invalid("booleans and uuids have no order".into());
        }
        self.term_sql(t, &kinds, t.left, rk, stmt)?;
        stmt.sql(format!(" {op} "));
        self.term_sql(t, &kinds, t.right, lk, stmt)
    }

    /// The SQL of term `i`; a string value is bound as the type of `other`, the other side.
    fn term_sql(
        &mut self,
        t: &TermComparison,
        kinds: &[Option<FieldType>],
        i: u32,
        other: Option<FieldType>,
        stmt: &mut Stmt,
    ) -> Result<(), QueryError> {
        // A term used twice is compiled twice: bounded like shared filter nodes.
        self.visited += 1;
        if self.visited > MAX_FILTER_EXPANSION {
            return Err(QueryError::Invalid(format!(
                "the filter expands to more than {MAX_FILTER_EXPANSION} nodes"
            )));
        }
        match &t.terms[i as usize] {
            Term::Column(name) => stmt.sql(quote_ident(&self.entity.field(name)?.name)),
            Term::Value(v) => {
                let value = parse_json(v, "a filter value")?;
                let ty = match (&value, other) {
                    (Value::String(_), Some(ty)) => ty,
                    (Value::String(_), None) => FieldType::String,
                    _ => kinds[i as usize].unwrap_or(FieldType::String),
                };
                let decl = FieldDecl {
                    name: "a filter value".into(),
                    ty,
                    primary: false,
                    optional: false,
                    unique: false,
                };
                stmt.bind(typed(&decl, &value)?);
            }
            Term::Arith((op, a, b)) => {
                if *op == ArithOp::Div {
                    // Never integral, and NULL (not an error) when dividing by zero.
                    let real = match self.dialect {
                        Dialect::Sqlite => "REAL",
                        Dialect::Postgres => "DOUBLE PRECISION",
                    };
                    stmt.sql("(CAST(");
                    self.term_sql(t, kinds, *a, None, stmt)?;
                    stmt.sql(format!(" AS {real}) / NULLIF("));
                    self.term_sql(t, kinds, *b, None, stmt)?;
                    stmt.sql(", 0))");
                } else {
                    stmt.sql("(");
                    self.term_sql(t, kinds, *a, None, stmt)?;
                    stmt.sql(match op {
                        ArithOp::Add => " + ",
                        ArithOp::Sub => " - ",
                        _ => " * ",
                    });
                    self.term_sql(t, kinds, *b, None, stmt)?;
                    stmt.sql(")");
                }
            }
            Term::Apply((f, a)) => {
                let (sqlite, postgres) = match f {
                    TermFunc::Lowercase => ("LOWER(", "LOWER("),
                    TermFunc::Uppercase => ("UPPER(", "UPPER("),
                    TermFunc::Length => ("LENGTH(", "LENGTH("),
                    TermFunc::Year => ("CAST(strftime('%Y', ", "CAST(EXTRACT(YEAR FROM "),
                    TermFunc::Month => ("CAST(strftime('%m', ", "CAST(EXTRACT(MONTH FROM "),
                    TermFunc::Day => ("CAST(strftime('%d', ", "CAST(EXTRACT(DAY FROM "),
                    TermFunc::Hour => ("CAST(strftime('%H', ", "CAST(EXTRACT(HOUR FROM "),
                };
                let part = !matches!(
                    f,
                    TermFunc::Lowercase | TermFunc::Uppercase | TermFunc::Length
                );
                stmt.sql(match self.dialect {
                    Dialect::Sqlite => sqlite,
                    Dialect::Postgres => postgres,
                });
                let utc = part
                    && self.dialect == Dialect::Postgres
                    && kinds[*a as usize] == Some(FieldType::Datetime);
                if utc {
                    stmt.sql("(");
                }
                self.term_sql(t, kinds, *a, None, stmt)?;
                if utc {
                    stmt.sql(") AT TIME ZONE 'UTC'");
                }
                stmt.sql(match (part, self.dialect) {
                    (false, _) => ")",
                    (true, Dialect::Sqlite) => ") AS INTEGER)",
                    (true, Dialect::Postgres) => ") AS BIGINT)",
                });
            }
        }
        Ok(())
    }

    fn comparison(&self, c: &Comparison, stmt: &mut Stmt) -> Result<(), QueryError> {
        let field = self.entity.field(&c.field)?;
        let column = quote_ident(&field.name);
        let op = sql_operator(c.op, self.dialect);
        if matches!(c.op, CompareOp::IsNull | CompareOp::IsNotNull) {
            stmt.sql(format!("{column} {op}"));
            return Ok(());
        }
        let value = parse_json(&c.value, &field.name)?;
        match c.op {
            CompareOp::Eq | CompareOp::Ne if value.is_null() => {
                let not = if c.op == CompareOp::Ne { " NOT" } else { "" };
                stmt.sql(format!("{column} IS{not} NULL"));
                return Ok(());
            }
            _ if field.ty == FieldType::Json => {
                return Err(QueryError::Invalid(format!(
                    "field `{}` is json; it can only be compared with null",
                    field.name
                )))
            }
            CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge
                if matches!(field.ty, FieldType::Bool | FieldType::Uuid) =>
            {
                return Err(QueryError::Invalid(format!(
                    "field `{}` is {}; it has no order",
                    field.name,
                    type_name(field.ty)
                )))
            }
            CompareOp::Like if field.ty != FieldType::String => {
                return Err(QueryError::Invalid(format!(
                    "`like` needs a string field; `{}` is {}",
                    field.name,
                    type_name(field.ty)
                )))
            }
            _ => {}
        }
        if c.op == CompareOp::In {
            let Value::Array(items) = &value else {
                return Err(QueryError::Invalid(format!(
                    "`in` on `{}` needs a JSON array, got {}",
                    field.name,
                    describe(&value)
                )));
            };
            if items.len() > MAX_IN_VALUES {
                return Err(QueryError::Invalid(format!(
                    "`in` on `{}` has {} values; at most {MAX_IN_VALUES} are allowed",
                    field.name,
                    items.len()
                )));
            }
            if items.is_empty() {
                stmt.sql("1=0");
                return Ok(());
            }
            stmt.sql(format!("{column} IN ("));
            for (n, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err(QueryError::Invalid(format!(
                        "`in` on `{}` contains null; use is_null",
                        field.name
                    )));
                }
                if n > 0 {
                    stmt.sql(", ");
                }
                stmt.bind(typed(field, item)?);
            }
            stmt.sql(")");
            return Ok(());
        }
        if value.is_null() {
            return Err(QueryError::Invalid(format!(
                "cannot compare `{}` with null using {}",
                field.name,
                op_label(c.op)
            )));
        }
        let param = typed(field, &value)?;
        stmt.sql(format!("{column} {op} "));
        stmt.bind(param);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// An entity's row as JSON, its columns read by their declared types.
fn entity_row<R: EntityRow>(entity: &Entity, row: &R) -> Result<Map<String, Value>, QueryError> {
    let mut out = Map::new();
    for (i, field) in entity.decl.fields.iter().enumerate() {
        let value = row
            .read(i, field.ty)
            .map_err(|e| QueryError::Failed(format!("reading `{}`: {e}", field.name)))?;
        out.insert(field.name.clone(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}

/// Reads a column of a field type as JSON: the databases differ where SQLite stores text.
trait EntityRow {
    fn read(&self, i: usize, ty: FieldType) -> Result<Option<Value>, sqlx::Error>;
}

impl EntityRow for SqliteRow {
    fn read(&self, i: usize, ty: FieldType) -> Result<Option<Value>, sqlx::Error> {
        Ok(match ty {
            FieldType::Int | FieldType::Float | FieldType::Bool => scalar_column(self, i, ty)?,
            FieldType::Json => self
                .try_get::<Option<String>, _>(i)?
                .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))),
            FieldType::String | FieldType::Uuid | FieldType::Datetime | FieldType::Date => {
                self.try_get::<Option<String>, _>(i)?.map(Value::String)
            }
        })
    }
}

impl EntityRow for PgRow {
    fn read(&self, i: usize, ty: FieldType) -> Result<Option<Value>, sqlx::Error> {
        Ok(match ty {
            FieldType::Int | FieldType::Float | FieldType::Bool => scalar_column(self, i, ty)?,
            FieldType::String => self.try_get::<Option<String>, _>(i)?.map(Value::String),
            FieldType::Uuid => self
                .try_get::<Option<Uuid>, _>(i)?
                .map(|u| Value::String(u.hyphenated().to_string())),
            FieldType::Datetime => self
                .try_get::<Option<DateTime<Utc>>, _>(i)?
                .map(|d| Value::String(datetime_text(&d))),
            FieldType::Date => self
                .try_get::<Option<NaiveDate>, _>(i)?
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
            FieldType::Json => self.try_get::<Option<Value>, _>(i)?,
        })
    }
}

/// An `int`, `float` or `bool` column, stored alike by both databases.
fn scalar_column<'r, R>(row: &'r R, i: usize, ty: FieldType) -> Result<Option<Value>, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(match ty {
        FieldType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        FieldType::Float => row.try_get::<Option<f64>, _>(i)?.map(float),
        FieldType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
        _ => unreachable!("scalar_column reads int, float and bool columns"),
    })
}

/// One aggregate column's SQL and the type of its value: `count` an int; `sum` of ints an int
/// and of floats a float, 0 over no rows; `avg` a float; `min`/`max` the field's type, null over
/// no rows.
fn aggregate_sql(
    entity: &Entity,
    column: &AggregateColumn,
    dialect: Dialect,
) -> Result<(String, FieldType), QueryError> {
    let func = match column.function {
        AggFunc::Count => "count",
        AggFunc::Sum => "sum",
        AggFunc::Avg => "avg",
        AggFunc::Min => "min",
        AggFunc::Max => "max",
    };
    let Some(name) = &column.field else {
        return match column.function {
            AggFunc::Count => Ok(("COUNT(*)".into(), FieldType::Int)),
            _ => Err(QueryError::Invalid(format!("`{func}` needs a field"))),
        };
    };
    let field = entity.field(name)?;
    let col = quote_ident(&field.name);
    let refused = |wanted: &str| {
        Err(QueryError::Invalid(format!(
            "`{func}` needs {wanted}; `{name}` is {}",
            field.ty.name()
        )))
    };
    Ok(match (column.function, field.ty, dialect) {
        (AggFunc::Count, _, _) => (format!("COUNT({col})"), FieldType::Int),
        (AggFunc::Sum, FieldType::Int, Dialect::Sqlite) => {
            (format!("COALESCE(SUM({col}), 0)"), FieldType::Int)
        }
        // PostgreSQL's sum of bigints is a numeric.
        (AggFunc::Sum, FieldType::Int, Dialect::Postgres) => (
            format!("CAST(COALESCE(SUM({col}), 0) AS BIGINT)"),
            FieldType::Int,
        ),
        (AggFunc::Sum, FieldType::Float, _) => {
            (format!("COALESCE(SUM({col}), 0.0)"), FieldType::Float)
        }
        (AggFunc::Avg, FieldType::Int | FieldType::Float, Dialect::Sqlite) => {
            (format!("AVG({col})"), FieldType::Float)
        }
        (AggFunc::Avg, FieldType::Int | FieldType::Float, Dialect::Postgres) => (
            format!("CAST(AVG({col}) AS DOUBLE PRECISION)"),
            FieldType::Float,
        ),
        (AggFunc::Sum | AggFunc::Avg, _, _) => return refused("a number"),
        (AggFunc::Min | AggFunc::Max, FieldType::Json | FieldType::Bool | FieldType::Uuid, _) => {
            return refused("a number, a string, a date or a datetime")
        }
        (AggFunc::Min, ty, _) => (format!("MIN({col})"), ty),
        (AggFunc::Max, ty, _) => (format!("MAX({col})"), ty),
    })
}

/// ` ON CONFLICT (tenant, keys…) DO UPDATE SET f = excluded.f, …` for the `written` fields
/// that are neither keys nor the primary key (`DO NOTHING` when there are none).
fn upsert_clause(fields: &[FieldDecl], keys: &[usize], written: &[usize]) -> String {
    let target: Vec<String> = std::iter::once(quote_ident(TENANT_COLUMN))
        .chain(keys.iter().map(|&k| quote_ident(&fields[k].name)))
        .collect();
    let set: Vec<String> = written
        .iter()
        .filter(|&&i| !keys.contains(&i) && !fields[i].primary)
        .map(|&i| {
            let column = quote_ident(&fields[i].name);
            format!("{column} = excluded.{column}")
        })
        .collect();
    let action = if set.is_empty() {
        "NOTHING".to_string()
    } else {
        format!("UPDATE SET {}", set.join(", "))
    };
    format!(" ON CONFLICT ({}) DO {action}", target.join(", "))
}

/// An operator in SQL (`LIKE` ignores case on both databases).
fn sql_operator(op: CompareOp, dialect: Dialect) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Like => match dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        },
        CompareOp::In => "IN",
        CompareOp::IsNull => "IS NULL",
        CompareOp::IsNotNull => "IS NOT NULL",
    }
}

/// How an error message names an operator.
fn op_label(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "Eq",
        CompareOp::Ne => "Ne",
        CompareOp::Lt => "Lt",
        CompareOp::Le => "Le",
        CompareOp::Gt => "Gt",
        CompareOp::Ge => "Ge",
        CompareOp::Like => "Like",
        CompareOp::In => "In",
        CompareOp::IsNull => "IsNull",
        CompareOp::IsNotNull => "IsNotNull",
    }
}

fn func_name(f: TermFunc) -> &'static str {
    match f {
        TermFunc::Lowercase => "lower",
        TermFunc::Uppercase => "upper",
        TermFunc::Length => "length",
        TermFunc::Year => "year",
        TermFunc::Month => "month",
        TermFunc::Day => "day",
        TermFunc::Hour => "hour",
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// `3`, `3.0` → 3; `3.5` or out of the exactly representable range → None.
fn integral(v: f64) -> Option<i64> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    (v.is_finite() && v.fract() == 0.0 && v.abs() <= LIMIT).then_some(v as i64)
}

fn parse_json(text: &str, field: &str) -> Result<Value, QueryError> {
    serde_json::from_str(text)
        .map_err(|e| QueryError::Invalid(format!("the value for `{field}` is not valid JSON: {e}")))
}

fn type_name(ty: FieldType) -> &'static str {
    FieldType::ALL
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or("?", |(_, name)| name)
}

/// A short description of a value for error messages.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut end = 57;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    let mut out = String::new();
    let _ = write!(out, "{kind} ({text})");
    out
}

fn prefix_row(n: usize, error: QueryError) -> QueryError {
    match error {
        QueryError::Invalid(m) => QueryError::Invalid(format!("row {n}: {m}")),
        other => other,
    }
}

/// Checks a non-null JSON value against a field's type and converts it.
fn typed(field: &FieldDecl, value: &Value) -> Result<Param, QueryError> {
    let wrong = || {
        QueryError::Invalid(format!(
            "field `{}` is {}; got {}",
            field.name,
            type_name(field.ty),
            describe(value)
        ))
    };
    Ok(match field.ty {
        FieldType::Int => match value {
            Value::Number(n) => match n.as_i64() {
                Some(v) => Param::Int(v),
                None => Param::Int(n.as_f64().and_then(integral).ok_or_else(wrong)?),
            },
            _ => return Err(wrong()),
        },
        FieldType::Float => Param::Float(value.as_f64().ok_or_else(wrong)?),
        FieldType::Bool => Param::Bool(value.as_bool().ok_or_else(wrong)?),
        FieldType::String => Param::Text(value.as_str().ok_or_else(wrong)?.to_owned()),
        FieldType::Uuid => {
            Param::Uuid(Uuid::parse_str(value.as_str().ok_or_else(wrong)?).map_err(|_| wrong())?)
        }
        FieldType::Datetime => {
            let text = value.as_str().ok_or_else(wrong)?;
            let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| wrong())?;
            Param::DateTime(parsed.with_timezone(&Utc))
        }
        // A day, or a timestamp (`today().start`, a typed `date` input) as the day it names
        // where it was written: `2026-02-01T00:00:00-06:00` is 2026-02-01.
        FieldType::Date => {
            let text = value.as_str().ok_or_else(wrong)?;
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(text).map(|t| t.date_naive()));
            Param::Date(day.map_err(|_| wrong())?)
        }
        FieldType::Json => Param::Json(value.clone()),
    })
}

/// A write refused by a unique index or the primary key, said in the entity's terms (the
/// database's words name the tenant's table and the tenant column); any other error as is.
fn conflict(entity: &Entity, error: sqlx::Error) -> QueryError {
    let unique = matches!(&error, sqlx::Error::Database(e) if e.is_unique_violation());
    if !unique {
        return failed(error);
    }
    let keys: Vec<String> = entity
        .decl
        .fields
        .iter()
        .filter(|f| f.primary || f.unique)
        .map(|f| format!("`{}`", f.name))
        .collect();
    QueryError::Invalid(format!(
        "`{}` already has a row with this {} (unique); `upsert {} {{ … }} on [field]` updates it instead",
        entity.decl.name,
        keys.join(" or "),
        entity.decl.name
    ))
}

fn failed(error: sqlx::Error) -> QueryError {
    QueryError::Failed(format!("database error: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, ty: FieldType) -> FieldDecl {
        FieldDecl {
            name: name.into(),
            ty,
            primary: false,
            optional: false,
            unique: false,
        }
    }

    #[test]
    fn values_are_checked_against_field_types() {
        let int = field("n", FieldType::Int);
        assert_eq!(typed(&int, &json!(3)).unwrap(), Param::Int(3));
        assert_eq!(typed(&int, &json!(3.0)).unwrap(), Param::Int(3));
        assert!(typed(&int, &json!(3.5)).is_err());
        assert!(typed(&int, &json!("3")).is_err());
        let dt = field("t", FieldType::Datetime);
        let Param::DateTime(t) = typed(&dt, &json!("2026-01-12T09:30:00+01:00")).unwrap() else {
            panic!()
        };
        assert_eq!(datetime_text(&t), "2026-01-12T08:30:00.000000Z");
        assert!(typed(&dt, &json!("yesterday")).is_err());
        assert!(typed(&field("u", FieldType::Uuid), &json!("not-a-uuid")).is_err());
        assert!(typed(&field("d", FieldType::Date), &json!("2026-02-30")).is_err());
        assert!(typed(&field("b", FieldType::Bool), &json!(1)).is_err());
        assert!(typed(&field("j", FieldType::Json), &json!({"a": [1]})).is_ok());
    }

    #[test]
    fn integral_floats() {
        assert_eq!(integral(1.0), Some(1));
        assert_eq!(integral(-2.0), Some(-2));
        assert_eq!(integral(0.5), None);
        assert_eq!(integral(f64::NAN), None);
        assert_eq!(integral(1e300), None);
    }
}
