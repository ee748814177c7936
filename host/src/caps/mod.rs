//! Host capabilities: what a job component may do, checked against its manifest.

pub mod data;
