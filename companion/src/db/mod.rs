//! Database work that is not a request: migrations, the compat layer, seeds.

pub mod migrate;
pub mod statements;
