//! Background work the companion does beside serving HTTP.

pub mod sweep;
