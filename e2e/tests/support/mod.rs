//! Pieces shared by e2e tests that are not part of the harness library.

pub(crate) mod proxy;
