//! Older versions of a kind, served with its storage version's schema: each type lists its
//! own, and [`crate::install`] merges them into the kind's CRD.

/// A version served with the storage version's schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Served {
    name: &'static str,
    deprecation: Option<&'static str>,
}

// === impl Served ===

impl Served {
    pub(crate) const fn new(name: &'static str) -> Self {
        Self {
            name,
            deprecation: None,
        }
    }

    pub(crate) const fn deprecated(name: &'static str, warning: &'static str) -> Self {
        Self {
            name,
            deprecation: Some(warning),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The warning a client gets for a deprecated version.
    pub(crate) fn deprecation(&self) -> Option<&'static str> {
        self.deprecation
    }
}
