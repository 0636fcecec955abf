//! Environment variables of the injected `linkerd2-proxy` and `proxy-init` containers.
//!
//! Grouped as the injector renders them; values and defaults live with the injector.

// === Downward-API helpers referenced by other values as `$(NAME)` ===

/// fieldRef `metadata.name`.
pub const POD_NAME: &str = "_pod_name";
/// fieldRef `metadata.namespace`.
pub const POD_NS: &str = "_pod_ns";
/// fieldRef `spec.nodeName`.
pub const POD_NODE_NAME: &str = "_pod_nodeName";
/// fieldRef `spec.serviceAccountName`.
pub const POD_SA: &str = "_pod_sa";
/// The control plane's namespace.
pub const L5D_NS: &str = "_l5d_ns";
/// The trust domain.
pub const L5D_TRUST_DOMAIN: &str = "_l5d_trustdomain";
/// fieldRef `metadata.uid` (newer proxies).
pub const POD_UID: &str = "_pod_uid";
/// fieldRef `status.podIP` (newer proxies).
pub const POD_IP: &str = "_pod_ip";
/// The proxy container's name (newer proxies).
pub const POD_CONTAINER_NAME: &str = "_pod_containerName";

// === Runtime and logging ===

/// Worker threads, from the CPU limit.
pub const CORES: &str = "LINKERD2_PROXY_CORES";
/// Minimum worker threads (newer proxies).
pub const CORES_MIN: &str = "LINKERD2_PROXY_CORES_MIN";
/// Maximum worker threads (newer proxies).
pub const CORES_MAX: &str = "LINKERD2_PROXY_CORES_MAX";
/// Maximum worker threads as a ratio of the node's cores (newer proxies).
pub const CORES_MAX_RATIO: &str = "LINKERD2_PROXY_CORES_MAX_RATIO";
/// Log filter.
pub const LOG: &str = "LINKERD2_PROXY_LOG";
/// `plain` or `json`.
pub const LOG_FORMAT: &str = "LINKERD2_PROXY_LOG_FORMAT";
/// `apache` or `json` access logs.
pub const ACCESS_LOG: &str = "LINKERD2_PROXY_ACCESS_LOG";
/// Grace period on shutdown.
pub const SHUTDOWN_GRACE_PERIOD: &str = "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD";
/// Enables the admin `/shutdown` endpoint (newer proxies).
pub const SHUTDOWN_ENDPOINT_ENABLED: &str = "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED";

// === Destination and policy ===

/// `host:port` of the destination service.
pub const DESTINATION_SVC_ADDR: &str = "LINKERD2_PROXY_DESTINATION_SVC_ADDR";
/// TLS identity of the destination service.
pub const DESTINATION_SVC_NAME: &str = "LINKERD2_PROXY_DESTINATION_SVC_NAME";
/// Networks for which profiles are resolved.
pub const DESTINATION_PROFILE_NETWORKS: &str = "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS";
/// Name suffixes for which profiles are resolved.
pub const DESTINATION_PROFILE_SUFFIXES: &str = "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES";
/// JSON context token sent with destination lookups.
pub const DESTINATION_CONTEXT: &str = "LINKERD2_PROXY_DESTINATION_CONTEXT";
/// `host:port` of the policy service.
pub const POLICY_SVC_ADDR: &str = "LINKERD2_PROXY_POLICY_SVC_ADDR";
/// TLS identity of the policy service.
pub const POLICY_SVC_NAME: &str = "LINKERD2_PROXY_POLICY_SVC_NAME";
/// The workload the proxy asks policies for (`ns:pod`, or JSON on newer proxies).
pub const POLICY_WORKLOAD: &str = "LINKERD2_PROXY_POLICY_WORKLOAD";
/// The cluster's networks, for policy defaults.
pub const POLICY_CLUSTER_NETWORKS: &str = "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS";
/// Default inbound policy.
pub const INBOUND_DEFAULT_POLICY: &str = "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY";
/// Lifetime limits of control-plane streams (newer proxies).
pub const CONTROL_STREAM_INITIAL_TIMEOUT: &str = "LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT";
/// See [`CONTROL_STREAM_INITIAL_TIMEOUT`].
pub const CONTROL_STREAM_IDLE_TIMEOUT: &str = "LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT";
/// See [`CONTROL_STREAM_INITIAL_TIMEOUT`].
pub const CONTROL_STREAM_LIFETIME: &str = "LINKERD2_PROXY_CONTROL_STREAM_LIFETIME";

// === Listeners, ports and timeouts ===

/// Control listener.
pub const CONTROL_LISTEN_ADDR: &str = "LINKERD2_PROXY_CONTROL_LISTEN_ADDR";
/// Admin listener.
pub const ADMIN_LISTEN_ADDR: &str = "LINKERD2_PROXY_ADMIN_LISTEN_ADDR";
/// Outbound listener.
pub const OUTBOUND_LISTEN_ADDR: &str = "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR";
/// Outbound listeners, IPv4 and IPv6 (newer proxies).
pub const OUTBOUND_LISTEN_ADDRS: &str = "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS";
/// Inbound listener.
pub const INBOUND_LISTEN_ADDR: &str = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR";
/// fieldRef `status.podIPs`.
pub const INBOUND_IPS: &str = "LINKERD2_PROXY_INBOUND_IPS";
/// The pod's container and probe ports.
pub const INBOUND_PORTS: &str = "LINKERD2_PROXY_INBOUND_PORTS";
/// Inbound ports that require a client identity.
pub const INBOUND_PORTS_REQUIRE_IDENTITY: &str = "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY";
/// Inbound ports that require TLS.
pub const INBOUND_PORTS_REQUIRE_TLS: &str = "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_TLS";
/// Opaque inbound ports (no protocol detection).
pub const INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION: &str =
    "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION";
/// Gateway mode suffixes.
pub const INBOUND_GATEWAY_SUFFIXES: &str = "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES";
/// Ingress mode.
pub const INGRESS_MODE: &str = "LINKERD2_PROXY_INGRESS_MODE";
/// Inbound connect timeout.
pub const INBOUND_CONNECT_TIMEOUT: &str = "LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT";
/// Outbound connect timeout.
pub const OUTBOUND_CONNECT_TIMEOUT: &str = "LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT";
/// Outbound discovery idle timeout.
pub const OUTBOUND_DISCOVERY_IDLE_TIMEOUT: &str = "LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT";
/// Inbound discovery idle timeout.
pub const INBOUND_DISCOVERY_IDLE_TIMEOUT: &str = "LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT";
/// Inbound accept keepalive.
pub const INBOUND_ACCEPT_KEEPALIVE: &str = "LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE";
/// Outbound connect keepalive.
pub const OUTBOUND_CONNECT_KEEPALIVE: &str = "LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE";
/// TCP user timeout on accepted connections (newer proxies).
pub const INBOUND_ACCEPT_USER_TIMEOUT: &str = "LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT";
/// TCP user timeout on outbound connections (newer proxies).
pub const OUTBOUND_CONNECT_USER_TIMEOUT: &str = "LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT";
/// Protocol detection timeout, inbound (newer proxies).
pub const INBOUND_DETECT_TIMEOUT: &str = "LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT";
/// Protocol detection timeout, outbound (newer proxies).
pub const OUTBOUND_DETECT_TIMEOUT: &str = "LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT";
/// HTTP/2 keep-alive interval, inbound server (newer proxies).
pub const INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL: &str =
    "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL";
/// HTTP/2 keep-alive timeout, inbound server (newer proxies).
pub const INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT: &str =
    "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT";
/// HTTP/2 keep-alive interval, outbound server (newer proxies).
pub const OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL: &str =
    "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL";
/// HTTP/2 keep-alive timeout, outbound server (newer proxies).
pub const OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT: &str =
    "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT";
/// Hostname labels on outbound metrics (newer proxies).
pub const OUTBOUND_METRICS_HOSTNAME_LABELS: &str =
    "LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS";

// === Identity ===

/// Where the proxy keeps its key and certificate.
pub const IDENTITY_DIR: &str = "LINKERD2_PROXY_IDENTITY_DIR";
/// Trust anchors PEM.
pub const IDENTITY_TRUST_ANCHORS: &str = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS";
/// Path of the ServiceAccount token sent to Certify.
pub const IDENTITY_TOKEN_FILE: &str = "LINKERD2_PROXY_IDENTITY_TOKEN_FILE";
/// `host:port` of the identity service.
pub const IDENTITY_SVC_ADDR: &str = "LINKERD2_PROXY_IDENTITY_SVC_ADDR";
/// TLS identity of the identity service.
pub const IDENTITY_SVC_NAME: &str = "LINKERD2_PROXY_IDENTITY_SVC_NAME";
/// The proxy's own identity.
pub const IDENTITY_LOCAL_NAME: &str = "LINKERD2_PROXY_IDENTITY_LOCAL_NAME";
/// Identity to use when [`IDENTITY_LOCAL_NAME`] is unset (newer proxies).
pub const IDENTITY_SERVER_ID: &str = "LINKERD2_PROXY_IDENTITY_SERVER_ID";
/// Server name to use when [`IDENTITY_LOCAL_NAME`] is unset (newer proxies).
pub const IDENTITY_SERVER_NAME: &str = "LINKERD2_PROXY_IDENTITY_SERVER_NAME";
/// SPIRE workload API address (newer proxies).
pub const IDENTITY_SPIRE_WORKLOAD_API_ADDRESS: &str =
    "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS";

// === Extensions ===

/// Identity of the viz tap server, the only client the proxy's tap port accepts; without it the
/// proxy serves no tap. Set on every injected proxy (see `identity::tap_identity`).
pub const TAP_SVC_NAME: &str = "LINKERD2_PROXY_TAP_SVC_NAME";
