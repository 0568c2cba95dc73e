//! Helpers for careplane's end-to-end tests.
