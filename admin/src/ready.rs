//! Readiness: ready when every named condition holds.
//!
//! A subsystem either holds a [`Latch`] until it has synced (a watch's first full list), or
//! registers a check that is asked at every `/ready` (an issuer that is loaded right now).

use parking_lot::RwLock;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The process's readiness: a set of named conditions, all of which must hold.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<(&'static str, Check)>>>,
}

/// Held by a subsystem until it is ready; [`Latch::release`] marks it so.
#[derive(Clone, Debug)]
pub struct Latch {
    released: Arc<AtomicBool>,
}

// === impl Readiness ===

impl Readiness {
    /// A condition named `what` (said in `/ready` while it does not hold) that holds once the
    /// returned latch is released.
    pub fn latch(&self, what: &'static str) -> Latch {
        let released = Arc::new(AtomicBool::new(false));
        let flag = released.clone();
        self.require(what, move || flag.load(Ordering::Acquire));
        Latch { released }
    }

    /// A condition named `what` that holds while `check` returns true.
    pub fn require(&self, what: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks.write().push((what, Arc::new(check)));
    }

    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// The first condition that does not hold, if any.
    pub fn not_ready(&self) -> Option<&'static str> {
        self.checks
            .read()
            .iter()
            .find(|(_, check)| !check())
            .map(|(what, _)| *what)
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("not_ready", &self.not_ready())
            .finish()
    }
}

// === impl Latch ===

impl Latch {
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_condition_holds() {
        let ready = Readiness::default();
        assert!(ready.is_ready(), "nothing to wait for");
        let watch = ready.latch("the Secret watch has not synced");
        let loaded = Arc::new(AtomicBool::new(false));
        let flag = loaded.clone();
        ready.require("no valid issuer is loaded", move || {
            flag.load(Ordering::Acquire)
        });

        assert_eq!(ready.not_ready(), Some("the Secret watch has not synced"));
        watch.release();
        assert_eq!(ready.not_ready(), Some("no valid issuer is loaded"));
        loaded.store(true, Ordering::Release);
        assert!(ready.is_ready());
        loaded.store(false, Ordering::Release);
        assert_eq!(
            ready.not_ready(),
            Some("no valid issuer is loaded"),
            "checks are live"
        );
    }
}
