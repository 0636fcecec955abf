//! What the injector writes into pods: container, port and volume names, mount paths, and the
//! binaries inside the proxy image.

// === Containers ===

/// The proxy container (a native-sidecar init container or a regular container).
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
/// The init container that configures the pod's firewall.
pub const INIT_CONTAINER: &str = "linkerd-init";
/// The init container that checks the CNI plugin's firewall instead (CNI mode).
pub const NETWORK_VALIDATOR_CONTAINER: &str = "linkerd-network-validator";
/// The optional debug sidecar.
pub const DEBUG_CONTAINER: &str = "linkerd-debug";
/// Another mesh's sidecar and init container: a pod with either is never injected.
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
pub const ISTIO_INIT_CONTAINER: &str = "istio-init";
/// Image name fragment of another mesh's sidecar.
pub const ISTIO_PROXY_IMAGE: &str = "istio/proxyv2";

/// Port names of the proxy container.
pub const PROXY_PORT_NAME: &str = "linkerd-proxy";
pub const ADMIN_PORT_NAME: &str = "linkerd-admin";

// === Volumes and mounts ===

/// Memory-backed directory holding the proxy's key and CSR.
pub const IDENTITY_END_ENTITY_VOLUME: &str = "linkerd-identity-end-entity";
/// Where the proxy finds [`IDENTITY_END_ENTITY_VOLUME`].
pub const IDENTITY_END_ENTITY_PATH: &str = "/var/run/linkerd/identity/end-entity";
/// Projected ServiceAccount token for Certify.
pub const IDENTITY_TOKEN_VOLUME: &str = "linkerd-identity-token";
/// Directory of [`IDENTITY_TOKEN_VOLUME`] in the proxy.
pub const IDENTITY_TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// The token file's name inside [`IDENTITY_TOKEN_DIR`].
pub const IDENTITY_TOKEN_FILE_NAME: &str = "linkerd-identity-token";
/// [`IDENTITY_TOKEN_FILE_NAME`] under [`IDENTITY_TOKEN_DIR`]: where a meshed pod's projected
/// token is, and where our own servers read theirs.
pub const IDENTITY_TOKEN_PATH: &str = "/var/run/secrets/tokens/linkerd-identity-token";
/// Lifetime of the projected token.
pub const IDENTITY_TOKEN_EXPIRATION_SECONDS: i64 = 86400;
/// The ServiceAccount token mounted by Kubernetes (when projection is disabled).
pub const LEGACY_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The xtables lock directory shared with proxy-init.
pub const XTABLES_LOCK_VOLUME: &str = "linkerd-proxy-init-xtables-lock";
/// Where proxy-init mounts [`XTABLES_LOCK_VOLUME`].
pub const XTABLES_LOCK_PATH: &str = "/run";

// === Binaries inside the proxy image ===

pub const PROXY_INIT_BIN: &str = "/usr/lib/linkerd/linkerd2-proxy-init";
pub const NETWORK_VALIDATOR_BIN: &str = "/usr/lib/linkerd/linkerd2-network-validator";
pub const AWAIT_BIN: &str = "/usr/lib/linkerd/linkerd-await";
