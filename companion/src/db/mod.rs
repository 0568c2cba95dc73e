//! Database access: user work as PostgREST runs it (`user`), and work that is not a request
//! (migrations, the compat layer, seeds), and database errors answered as PostgREST answers them
//! (`errors`).

pub mod errors;
pub mod migrate;
pub mod statements;
pub mod user;
