//! Liveness: the process is live until one of the tasks it cannot run without has ended.

use parking_lot::RwLock;
use std::sync::Arc;

/// Whether every task the process needs is still running. Once one has ended (returned or
/// panicked outside shutdown), `/live` fails with the reason, so Kubernetes restarts the
/// process instead of leaving it to serve stale answers.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    dead: Arc<RwLock<Option<String>>>,
}

impl Liveness {
    /// Records that the process can no longer do its job, and why (the first reason is kept).
    pub fn died(&self, why: String) {
        tracing::error!(reason = %why, "a task the process needs has ended: /live fails from now on");
        let mut dead = self.dead.write();
        if dead.is_none() {
            *dead = Some(why);
        }
    }

    /// Why the process is no longer live, if it is not.
    pub fn dead(&self) -> Option<String> {
        self.dead.read().clone()
    }

    pub fn is_live(&self) -> bool {
        self.dead.read().is_none()
    }
}
