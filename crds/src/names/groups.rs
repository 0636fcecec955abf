//! API groups of the custom resources.
