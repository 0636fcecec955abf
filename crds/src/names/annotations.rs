//! Annotation keys (`linkerd.io/*`, `config.linkerd.io/*`, `config.alpha.linkerd.io/*`).
//!
//! The `config.linkerd.io/*` keys are read from the pod, then its workload, then its namespace;
//! the first one found wins.

// === Injection ===

/// `enabled`, `disabled` or `ingress`: whether (and how) the proxy is injected.
pub const INJECT: &str = "linkerd.io/inject";
/// Value of [`INJECT`] that injects the proxy.
pub const INJECT_ENABLED: &str = "enabled";
/// Value of [`INJECT`] that keeps the proxy out.
pub const INJECT_DISABLED: &str = "disabled";
/// Value of [`INJECT`] that injects the proxy in ingress mode.
pub const INJECT_INGRESS: &str = "ingress";

// === Written by the injector ===

/// Who injected the pod (`linkerd/proxy-injector <version>` or the CLI).
pub const CREATED_BY: &str = "linkerd.io/created-by";
/// The injected proxy's version.
pub const PROXY_VERSION: &str = "linkerd.io/proxy-version";
/// SHA-256 of the trust anchors' PEM the proxy was injected with.
pub const TRUST_ROOT_SHA256: &str = "linkerd.io/trust-root-sha256";

// === Proxy configuration (config.linkerd.io) ===

/// Proxy image name.
pub const PROXY_IMAGE: &str = "config.linkerd.io/proxy-image";
/// Proxy image tag (the injector also writes it to [`PROXY_VERSION`]).
pub const PROXY_VERSION_OVERRIDE: &str = "config.linkerd.io/proxy-version";
/// Image pull policy of the proxy and proxy-init.
pub const IMAGE_PULL_POLICY: &str = "config.linkerd.io/image-pull-policy";
/// proxy-init image name.
pub const INIT_IMAGE: &str = "config.linkerd.io/init-image";
/// proxy-init image tag.
pub const INIT_IMAGE_VERSION: &str = "config.linkerd.io/init-image-version";
/// Debug sidecar image name.
pub const DEBUG_IMAGE: &str = "config.linkerd.io/debug-image";
/// Debug sidecar image tag.
pub const DEBUG_IMAGE_VERSION: &str = "config.linkerd.io/debug-image-version";
/// Debug sidecar image pull policy.
pub const DEBUG_IMAGE_PULL_POLICY: &str = "config.linkerd.io/debug-image-pull-policy";
/// `true` adds the `linkerd-debug` container.
pub const ENABLE_DEBUG_SIDECAR: &str = "config.linkerd.io/enable-debug-sidecar";
/// Proxy control port (default 4190).
pub const CONTROL_PORT: &str = "config.linkerd.io/control-port";
/// Proxy admin port (default 4191).
pub const ADMIN_PORT: &str = "config.linkerd.io/admin-port";
/// Proxy inbound port (default 4143).
pub const INBOUND_PORT: &str = "config.linkerd.io/inbound-port";
/// Proxy outbound port (default 4140).
pub const OUTBOUND_PORT: &str = "config.linkerd.io/outbound-port";
/// Overrides the computed `LINKERD2_PROXY_INBOUND_PORTS`.
pub const POD_INBOUND_PORTS: &str = "config.linkerd.io/pod-inbound-ports";
/// Inbound ports proxy-init leaves alone (added to the control and admin ports).
pub const SKIP_INBOUND_PORTS: &str = "config.linkerd.io/skip-inbound-ports";
/// Outbound ports proxy-init leaves alone.
pub const SKIP_OUTBOUND_PORTS: &str = "config.linkerd.io/skip-outbound-ports";
/// Subnets proxy-init leaves alone.
pub const SKIP_SUBNETS: &str = "config.linkerd.io/skip-subnets";
/// Ports (lists, ranges or names) on which protocol detection is skipped.
pub const OPAQUE_PORTS: &str = "config.linkerd.io/opaque-ports";
/// Proxy CPU request.
pub const PROXY_CPU_REQUEST: &str = "config.linkerd.io/proxy-cpu-request";
/// Proxy CPU limit (also sets `LINKERD2_PROXY_CORES`).
pub const PROXY_CPU_LIMIT: &str = "config.linkerd.io/proxy-cpu-limit";
/// Proxy memory request.
pub const PROXY_MEMORY_REQUEST: &str = "config.linkerd.io/proxy-memory-request";
/// Proxy memory limit.
pub const PROXY_MEMORY_LIMIT: &str = "config.linkerd.io/proxy-memory-limit";
/// Proxy ephemeral-storage request.
pub const PROXY_EPHEMERAL_STORAGE_REQUEST: &str =
    "config.linkerd.io/proxy-ephemeral-storage-request";
/// Proxy ephemeral-storage limit.
pub const PROXY_EPHEMERAL_STORAGE_LIMIT: &str = "config.linkerd.io/proxy-ephemeral-storage-limit";
/// The proxy's user id (default 2102).
pub const PROXY_UID: &str = "config.linkerd.io/proxy-uid";
/// `LINKERD2_PROXY_LOG`.
pub const PROXY_LOG_LEVEL: &str = "config.linkerd.io/proxy-log-level";
/// `LINKERD2_PROXY_LOG_FORMAT`.
pub const PROXY_LOG_FORMAT: &str = "config.linkerd.io/proxy-log-format";
/// `true` resolves profiles for every name (`DESTINATION_PROFILE_SUFFIXES=.`).
pub const ENABLE_EXTERNAL_PROFILES: &str = "config.linkerd.io/enable-external-profiles";
/// `LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY`.
pub const PROXY_REQUIRE_IDENTITY_INBOUND_PORTS: &str =
    "config.linkerd.io/proxy-require-identity-inbound-ports";
/// Go duration → `LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT` (ms).
pub const PROXY_OUTBOUND_CONNECT_TIMEOUT: &str = "config.linkerd.io/proxy-outbound-connect-timeout";
/// Go duration → `LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT` (ms).
pub const PROXY_INBOUND_CONNECT_TIMEOUT: &str = "config.linkerd.io/proxy-inbound-connect-timeout";
/// Go duration → `LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT` (s).
pub const PROXY_OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT: &str =
    "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout";
/// Go duration → `LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT` (s).
pub const PROXY_INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT: &str =
    "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout";
/// `true` sets `LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES`.
pub const ENABLE_GATEWAY: &str = "config.linkerd.io/enable-gateway";
/// proxy-init `--timeout-close-wait-secs` (makes the init container privileged).
pub const CLOSE_WAIT_TIMEOUT: &str = "config.linkerd.io/close-wait-timeout";
/// `enabled` / `disabled`: hold the application until the proxy is ready.
pub const PROXY_AWAIT: &str = "config.linkerd.io/proxy-await";
/// `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`.
pub const DEFAULT_INBOUND_POLICY: &str = "config.linkerd.io/default-inbound-policy";
/// `apache` or `json`: `LINKERD2_PROXY_ACCESS_LOG`.
pub const ACCESS_LOG: &str = "config.linkerd.io/access-log";
/// `LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD` (ms).
pub const SHUTDOWN_GRACE_PERIOD: &str = "config.linkerd.io/shutdown-grace-period";
/// preStop `/bin/sleep N`.
pub const PROXY_WAIT_BEFORE_EXIT_SECONDS: &str =
    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds";

// === Newer injector annotations ===

/// Run the proxy as a native sidecar (an init container with `restartPolicy: Always`).
pub const PROXY_ENABLE_NATIVE_SIDECAR: &str = "config.linkerd.io/proxy-enable-native-sidecar";
/// Beta spelling of [`PROXY_ENABLE_NATIVE_SIDECAR`]; consulted after the GA key.
pub const PROXY_ENABLE_NATIVE_SIDECAR_BETA: &str =
    "config.beta.linkerd.io/proxy-enable-native-sidecar";
/// Alpha spelling of [`PROXY_ENABLE_NATIVE_SIDECAR`]; consulted last.
pub const PROXY_ENABLE_NATIVE_SIDECAR_ALPHA: &str =
    "config.alpha.linkerd.io/proxy-enable-native-sidecar";
/// A JSON list of `EnvVar`s merged into the proxy container by name.
pub const PROXY_ADDITIONAL_ENV: &str = "config.linkerd.io/proxy-additional-env";

/// The proxy's group id (`runAsGroup`, proxy-init `--proxy-gid`).
pub const PROXY_GID: &str = "config.linkerd.io/proxy-gid";
/// `insecure` keeps HTTP headers in the proxy's debug logs.
pub const PROXY_LOG_HTTP_HEADERS: &str = "config.linkerd.io/proxy-log-http-headers";
/// `true` enables the proxy's admin `/shutdown` endpoint.
pub const PROXY_ADMIN_SHUTDOWN: &str = "config.linkerd.io/proxy-admin-shutdown";
/// `true` turns off the outbound protocol-detection timeout.
pub const PROXY_DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT: &str =
    "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout";
/// `true` turns off the inbound protocol-detection timeout.
pub const PROXY_DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT: &str =
    "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout";

// === Extensions ===

/// Set by the viz tap injector on pods it enabled tap for.
pub const VIZ_TAP_ENABLED: &str = "viz.linkerd.io/tap-enabled";
/// On a ServiceProfile: the SMI adaptor leaves its `dstOverrides` alone.
pub const SMI_SKIP: &str = "smi.linkerd.io/skip";

/// Every `config.linkerd.io` / `config.alpha.linkerd.io` key that a pod inherits from its
/// workload and namespace.
pub const PROXY_CONFIG: &[&str] = &[
    PROXY_IMAGE,
    PROXY_VERSION_OVERRIDE,
    IMAGE_PULL_POLICY,
    INIT_IMAGE,
    INIT_IMAGE_VERSION,
    DEBUG_IMAGE,
    DEBUG_IMAGE_VERSION,
    DEBUG_IMAGE_PULL_POLICY,
    ENABLE_DEBUG_SIDECAR,
    CONTROL_PORT,
    ADMIN_PORT,
    INBOUND_PORT,
    OUTBOUND_PORT,
    POD_INBOUND_PORTS,
    SKIP_INBOUND_PORTS,
    SKIP_OUTBOUND_PORTS,
    SKIP_SUBNETS,
    OPAQUE_PORTS,
    PROXY_CPU_REQUEST,
    PROXY_CPU_LIMIT,
    PROXY_MEMORY_REQUEST,
    PROXY_MEMORY_LIMIT,
    PROXY_EPHEMERAL_STORAGE_REQUEST,
    PROXY_EPHEMERAL_STORAGE_LIMIT,
    PROXY_UID,
    PROXY_LOG_LEVEL,
    PROXY_LOG_FORMAT,
    ENABLE_EXTERNAL_PROFILES,
    PROXY_REQUIRE_IDENTITY_INBOUND_PORTS,
    PROXY_OUTBOUND_CONNECT_TIMEOUT,
    PROXY_INBOUND_CONNECT_TIMEOUT,
    PROXY_OUTBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
    PROXY_INBOUND_DISCOVERY_CACHE_UNUSED_TIMEOUT,
    ENABLE_GATEWAY,
    CLOSE_WAIT_TIMEOUT,
    PROXY_AWAIT,
    DEFAULT_INBOUND_POLICY,
    ACCESS_LOG,
    SHUTDOWN_GRACE_PERIOD,
    PROXY_WAIT_BEFORE_EXIT_SECONDS,
    PROXY_ENABLE_NATIVE_SIDECAR,
    PROXY_ENABLE_NATIVE_SIDECAR_BETA,
    PROXY_ENABLE_NATIVE_SIDECAR_ALPHA,
    PROXY_ADDITIONAL_ENV,
    PROXY_GID,
    PROXY_LOG_HTTP_HEADERS,
    PROXY_ADMIN_SHUTDOWN,
    PROXY_DISABLE_OUTBOUND_PROTOCOL_DETECT_TIMEOUT,
    PROXY_DISABLE_INBOUND_PROTOCOL_DETECT_TIMEOUT,
];

/// Prefix of the proxy configuration annotations (`config.linkerd.io/...`); as a label key it is
/// a mistake that `check --proxy` reports.
pub const CONFIG_PREFIX: &str = "config.linkerd.io";
/// Prefix of the alpha proxy configuration annotations (`config.alpha.linkerd.io/...`).
pub const CONFIG_ALPHA_PREFIX: &str = "config.alpha.linkerd.io";

// === Service annotations read by the outbound policy API ===

/// `consecutive`: eject an endpoint after consecutive failures (outbound failure accrual).
pub const FAILURE_ACCRUAL: &str = "balancer.linkerd.io/failure-accrual";
/// The only failure accrual kind Linkerd knows.
pub const FAILURE_ACCRUAL_CONSECUTIVE: &str = "consecutive";
/// Failures in a row before an endpoint is ejected (default 7).
pub const FAILURE_ACCRUAL_MAX_FAILURES: &str =
    "balancer.linkerd.io/failure-accrual-consecutive-max-failures";
/// Longest ejection (Go duration, default 1m).
pub const FAILURE_ACCRUAL_MAX_PENALTY: &str =
    "balancer.linkerd.io/failure-accrual-consecutive-max-penalty";
/// Shortest ejection (Go duration, default 1s).
pub const FAILURE_ACCRUAL_MIN_PENALTY: &str =
    "balancer.linkerd.io/failure-accrual-consecutive-min-penalty";
/// Jitter of the ejection backoff, 0–100 (default 0.5).
pub const FAILURE_ACCRUAL_JITTER_RATIO: &str =
    "balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio";
/// Request timeout of every route of a Service (Go duration): the whole request, retries
/// included.
pub const TIMEOUT_REQUEST: &str = "timeout.linkerd.io/request";
/// Response timeout of every route of a Service (Go duration): until response headers.
pub const TIMEOUT_RESPONSE: &str = "timeout.linkerd.io/response";
/// Idle timeout of every route of a Service (Go duration): between body frames.
pub const TIMEOUT_IDLE: &str = "timeout.linkerd.io/idle";

// === Retries read by the outbound policy API (on a Service, or on a route to override it) ===

/// HTTP statuses to retry: a comma-separated list of codes (`504`), ranges (`500-504`),
/// `5xx` or `gateway-error` (502–504). Not read on GRPCRoutes.
pub const RETRY_HTTP: &str = "retry.linkerd.io/http";
/// gRPC statuses to retry: a comma-separated list of `cancelled`, `deadline-exceeded`,
/// `internal`, `resource-exhausted`, `unavailable`. Not read on HTTPRoutes.
pub const RETRY_GRPC: &str = "retry.linkerd.io/grpc";
/// How many times a request may be retried (default 1).
pub const RETRY_LIMIT: &str = "retry.linkerd.io/limit";
/// Each attempt's timeout (a duration with units), after which it is cancelled and retried.
pub const RETRY_TIMEOUT: &str = "retry.linkerd.io/timeout";

// === Kubernetes ===

/// On a CRD of a `*.k8s.io` group: where the API was approved (the API server rejects such a
/// CRD without it).
pub const API_APPROVED: &str = "api-approved.kubernetes.io";
/// On a pod template: when `kubectl rollout restart` (and `oxlink identity rotate-anchor`)
/// last asked for new pods.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

// === oxlink ===

/// On ConfigMap `linkerd-identity-trust-roots`: the state of a trust-anchor rotation (JSON),
/// written by `oxlink identity rotate-anchor` so that an interrupted rotation resumes.
pub const ANCHOR_ROTATION: &str = "oxlink.io/anchor-rotation";
