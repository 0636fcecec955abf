//! Connection metrics of every server, labelled `server` (`destination`, `policy`,
//! `identity`, `proxy_injector`, `admin`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    server: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Default)]
struct Families {
    open: Family<ServerLabel, Gauge>,
    accepted: Family<ServerLabel, Counter>,
    refused: Family<RefusedLabels, Counter>,
    accept_errors: Family<ServerLabel, Counter>,
}

/// One server's connection metrics. [`ServerMetrics::register`] adds the families to a
/// registry once; [`ServerMetrics::server`] names each server that shares them.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    families: Families,
    server: &'static str,
}

impl ServerMetrics {
    /// Registers the connection metrics in `registry`, for the server named `server`.
    pub fn register(registry: &mut Registry, server: &'static str) -> Self {
        let families = Families::default();
        registry.register(
            "server_connections_open",
            "Connections a server holds open",
            families.open.clone(),
        );
        registry.register(
            "server_connections_accepted",
            "Connections a server accepted",
            families.accepted.clone(),
        );
        registry.register(
            "server_connections_refused",
            "Connections a server closed before serving them: reason=\"limit\" (the connection limit), \"handshake\" or \"handshake_timeout\" (TLS), \"preface_timeout\" (no HTTP request in time)",
            families.refused.clone(),
        );
        registry.register(
            "server_accept_errors",
            "Failed accept calls (out of file descriptors and the like); each one backs off",
            families.accept_errors.clone(),
        );
        Self { families, server }
    }

    /// The server these metrics are labelled for.
    pub fn server(&self) -> &'static str {
        self.server
    }

    /// The same metric families, labelled for the server named `server`.
    pub fn for_server(&self, server: &'static str) -> Self {
        Self {
            families: self.families.clone(),
            server,
        }
    }

    /// Metrics that are not registered anywhere (tests, benches).
    pub fn unregistered(server: &'static str) -> Self {
        Self {
            families: Families::default(),
            server,
        }
    }

    /// Connections currently open.
    pub fn open(&self) -> i64 {
        self.families.open.get_or_create(&self.label()).get()
    }

    /// Connections refused for `reason` so far.
    pub fn refused_total(&self, reason: &'static str) -> u64 {
        self.families
            .refused
            .get_or_create(&RefusedLabels {
                server: self.server,
                reason,
            })
            .get()
    }

    pub(crate) fn opened(&self) {
        self.families.accepted.get_or_create(&self.label()).inc();
        self.families.open.get_or_create(&self.label()).inc();
    }

    pub(crate) fn closed(&self) {
        self.families.open.get_or_create(&self.label()).dec();
    }

    /// Counts a connection closed before it was served, for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.families
            .refused
            .get_or_create(&RefusedLabels {
                server: self.server,
                reason,
            })
            .inc();
    }

    pub(crate) fn accept_error(&self) {
        self.families
            .accept_errors
            .get_or_create(&self.label())
            .inc();
    }

    fn label(&self) -> ServerLabel {
        ServerLabel {
            server: self.server,
        }
    }
}
