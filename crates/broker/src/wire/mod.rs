//! Request bytes checked before they are decoded: the schema-driven walk
//! that refuses any length or count the frame does not back, and the
//! schemas it follows.

pub mod sample;
pub mod schemas;
pub mod walk;

pub use walk::{schema_for, walk_request, RequestSchema, WalkError};
