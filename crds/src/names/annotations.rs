//! Annotation keys (`linkerd.io/*`, `config.linkerd.io/*`, `config.alpha.linkerd.io/*`).
