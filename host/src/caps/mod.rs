//! Host capabilities: what a job component may do, checked against its manifest.
//!
//! [`platform::JobCaps`] is the real implementation of every interface of the `job` world; the
//! runtime's gate ([`crate::runtime::gate`]) sits in front of it.

pub mod budgeted;
pub mod clock;
pub mod data;
pub mod egress;
pub mod env;
pub mod http;
pub mod platform;
