//! The tenant trust boundary, attacked the way a hostile tenant would: with ordinary `.codeai`
//! jobs built by the real compiler (or their manifests edited after the build), uploaded with a
//! tenant's token and run by a whole in-process host, on SQLite and on PostgreSQL. Each module is
//! one boundary of `SECURITY.md`; every test asserts that the attack achieves nothing: refused
//! at build or upload with a clear reason, denied at run time, or confined to the tenant.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;
mod compile;
mod egress;
mod fairness;
mod namespace;
mod secrets;
mod support;
mod uploads;
