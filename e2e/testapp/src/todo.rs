//! The workshop's todo app, played by three roles: `todoui` → `todobackend` → `postgres`.

pub mod backend;
mod form;
pub mod postgres;
pub mod ui;

use std::time::Duration;

/// How long both `/stress` endpoints sleep: the workshop's deliberately slow route.
pub const STRESS_DELAY: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests;
