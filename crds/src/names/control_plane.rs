//! Names of the control plane's own objects: namespace, ServiceAccounts, Services, Secrets,
//! ConfigMaps, their keys, ports and identity audiences.

/// The control plane's default namespace.
pub const NAMESPACE: &str = "linkerd";

/// The default trust domain of mesh identities.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The default cluster DNS domain (`clusterDomain`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Ports treated as opaque when neither the pod nor the Service says otherwise (the chart's
/// `proxy.opaquePorts`).
pub const DEFAULT_OPAQUE_PORTS: &str = "25,587,3306,4444,5432,6379,9300,11211";

/// The proxy's inbound port when the pod does not say otherwise (`proxy.ports.inbound`).
pub const DEFAULT_PROXY_INBOUND_PORT: u16 = 4143;

// === identity ===

/// ServiceAccount (and Deployment) of the identity controller.
pub const IDENTITY_SERVICE_ACCOUNT: &str = "linkerd-identity";
/// The identity controller's Deployment, the object its issuer events are recorded on.
pub const IDENTITY_DEPLOYMENT: &str = "linkerd-identity";
/// The component name identity reports events as.
pub const IDENTITY_COMPONENT: &str = "linkerd-identity";
/// ClusterIP Service in front of identity.
pub const IDENTITY_SERVICE: &str = "linkerd-identity";
/// Headless Service that proxies resolve to reach identity.
pub const IDENTITY_HEADLESS_SERVICE: &str = "linkerd-identity-headless";
/// gRPC port of `io.linkerd.proxy.identity.Identity`.
pub const IDENTITY_GRPC_PORT: u16 = 8080;
/// Admin port (`/live`, `/ready`, `/metrics`) of identity.
pub const IDENTITY_ADMIN_PORT: u16 = 9990;

/// Secret holding the issuer certificate chain and key.
pub const IDENTITY_ISSUER_SECRET: &str = "linkerd-identity-issuer";
/// Issuer Secret scheme of Linkerd's chart: keys [`ISSUER_CRT_KEY`] and [`ISSUER_KEY_KEY`].
pub const ISSUER_SCHEME_LINKERD: &str = "linkerd.io/tls";
/// Issuer Secret scheme of cert-manager and other external issuers: [`TLS_CRT_KEY`],
/// [`TLS_KEY_KEY`] and [`CA_CRT_KEY`].
pub const ISSUER_SCHEME_KUBERNETES: &str = "kubernetes.io/tls";
/// `linkerd.io/tls` issuer certificate chain (PEM, issuer first).
pub const ISSUER_CRT_KEY: &str = "crt.pem";
/// `linkerd.io/tls` issuer private key (PEM).
pub const ISSUER_KEY_KEY: &str = "key.pem";
/// `kubernetes.io/tls` certificate chain.
pub const TLS_CRT_KEY: &str = "tls.crt";
/// `kubernetes.io/tls` private key.
pub const TLS_KEY_KEY: &str = "tls.key";
/// `kubernetes.io/tls` CA certificate (trust anchors, read by the CLI only).
pub const CA_CRT_KEY: &str = "ca.crt";

/// ConfigMap holding the trust anchors.
pub const TRUST_ROOTS_CONFIGMAP: &str = "linkerd-identity-trust-roots";
/// Key of the PEM bundle in [`TRUST_ROOTS_CONFIGMAP`].
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";
/// Secret holding the next issuer (`crt.pem`, `key.pem`) while a trust-anchor rotation runs.
pub const NEXT_ISSUER_SECRET: &str = "oxlink-identity-issuer-next";

/// Audience of the ServiceAccount tokens proxies present to Certify.
pub const IDENTITY_TOKEN_AUDIENCE: &str = "identity.l5d.io";

/// The label between the ServiceAccount part and the control-plane namespace of a mesh
/// identity: `<sa>.<ns>.serviceaccount.identity.<control-ns>.<trust-domain>`.
pub const IDENTITY_SERVICE_ACCOUNT_LABEL: &str = "serviceaccount";

// === destination and policy ===

/// ServiceAccount (and Deployment) of the destination controller.
pub const DESTINATION_SERVICE_ACCOUNT: &str = "linkerd-destination";
/// ServiceAccount (and Deployment) of the proxy injector.
pub const PROXY_INJECTOR_SERVICE_ACCOUNT: &str = "linkerd-proxy-injector";

/// The control plane's configuration ConfigMap and its key.
pub const CONFIG_CONFIGMAP: &str = "linkerd-config";
pub const CONFIG_VALUES_KEY: &str = "values";

// === proxy-injector ===

/// Secret holding the admission server's serving certificate.
pub const PROXY_INJECTOR_TLS_SECRET: &str = "linkerd-proxy-injector-k8s-tls";
/// Key of [`PROXY_INJECTOR_TLS_SECRET`] holding the certificate minted for the next rotation,
/// trusted (in the `caBundle`) before any replica serves it.
pub const PROXY_INJECTOR_NEXT_CRT_KEY: &str = "next.crt";
/// Key of [`PROXY_INJECTOR_TLS_SECRET`] holding the next certificate's private key.
pub const PROXY_INJECTOR_NEXT_KEY_KEY: &str = "next.key";
/// Annotation of [`PROXY_INJECTOR_TLS_SECRET`], and of the webhook configurations whose
/// `caBundle` it is written to: the generation of the Secret, raised by every write, so that
/// a replica with an older view never overwrites a newer `caBundle`.
pub const PROXY_INJECTOR_CERT_GENERATION: &str = "oxlink.io/webhook-cert-generation";
/// Annotation of [`PROXY_INJECTOR_TLS_SECRET`]: until when (Unix seconds) the certificate that
/// was served before the last rotation stays in the `caBundle`.
pub const PROXY_INJECTOR_PREVIOUS_TRUSTED_UNTIL: &str = "oxlink.io/previous-cert-trusted-until";
/// The MutatingWebhookConfiguration the injector is registered in.
pub const PROXY_INJECTOR_WEBHOOK_CONFIG: &str = "linkerd-proxy-injector-webhook-config";
/// The Service in front of the admission server.
pub const PROXY_INJECTOR_SERVICE: &str = "linkerd-proxy-injector";
/// Service of the ServiceProfile validator (served by the proxy injector's pods).
pub const SP_VALIDATOR_SERVICE: &str = "linkerd-sp-validator";
/// Service of the policy validator (served by the proxy injector's pods).
pub const POLICY_VALIDATOR_SERVICE: &str = "linkerd-policy-validator";
/// Port of the admission server.
pub const PROXY_INJECTOR_PORT: u16 = 8443;
/// Port of the admission server's admin endpoints.
pub const PROXY_INJECTOR_ADMIN_PORT: u16 = 9995;
/// Trust roots file mounted into the injector (ConfigMap `linkerd-identity-trust-roots`).
pub const TRUST_ROOTS_PATH: &str = "/var/run/linkerd/identity/trust-roots/ca-bundle.crt";
/// Values file mounted into the injector (ConfigMap `linkerd-config`).
pub const CONFIG_VALUES_PATH: &str = "/var/run/linkerd/config/values";

// === Services the proxy is pointed at ===

/// Headless Service of the destination controller.
pub const DESTINATION_HEADLESS_SERVICE: &str = "linkerd-dst-headless";
/// gRPC port of `io.linkerd.proxy.destination.Destination`.
pub const DESTINATION_GRPC_PORT: u16 = 8086;
/// Admin port (`/live`, `/ready`, `/metrics`) of destination.
pub const DESTINATION_ADMIN_PORT: u16 = 9996;
/// Headless Service of the policy controller.
pub const POLICY_SERVICE: &str = "linkerd-policy";
/// gRPC port of the inbound and outbound policy APIs.
pub const POLICY_GRPC_PORT: u16 = 8090;

// === admission webhooks and the objects `check` expects ===

/// The ValidatingWebhookConfiguration for ServiceProfiles.
pub const SP_VALIDATOR_WEBHOOK_CONFIG: &str = "linkerd-sp-validator-webhook-config";
/// The ValidatingWebhookConfiguration for the policy resources.
pub const POLICY_VALIDATOR_WEBHOOK_CONFIG: &str = "linkerd-policy-validator-webhook-config";
/// Secret of a separate ServiceProfile validator's serving certificate, when there is one.
pub const SP_VALIDATOR_TLS_SECRET: &str = "linkerd-sp-validator-k8s-tls";
/// Secret of a separate policy validator's serving certificate, when there is one.
pub const POLICY_VALIDATOR_TLS_SECRET: &str = "linkerd-policy-validator-k8s-tls";
/// Deployment of the destination controller.
pub const DESTINATION_DEPLOYMENT: &str = "linkerd-destination";
/// Deployment of the proxy injector.
pub const PROXY_INJECTOR_DEPLOYMENT: &str = "linkerd-proxy-injector";
/// ClusterIP Service in front of destination.
pub const DESTINATION_SERVICE: &str = "linkerd-dst";

/// The cluster-wide default inbound policy (the policy controller's `--default-policy`).
pub const DEFAULT_INBOUND_POLICY: &str = "all-unauthenticated";
/// Networks that `cluster-*` default policies admit (`clusterNetworks`).
pub const DEFAULT_CLUSTER_NETWORKS: &str =
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8";
/// Networks whose probes the default probe routes admit (`--probe-networks`).
pub const DEFAULT_PROBE_NETWORKS: &str = "0.0.0.0/0,::/0";
/// The namespace whose EgressNetworks apply to clients in every namespace (those in a client's
/// own namespace take precedence): policy's `--global-egress-network-namespace`.
pub const GLOBAL_EGRESS_NETWORK_NAMESPACE: &str = "linkerd-egress";

// === The viz extension ===

/// Namespace of the viz extension.
pub const VIZ_NAMESPACE: &str = "linkerd-viz";
/// The viz tap server's ServiceAccount, Deployment and Service. Proxies accept tap clients with
/// this ServiceAccount's mesh identity only (`names::identity::tap_identity`).
pub const TAP_SERVICE_ACCOUNT: &str = "tap";
/// Port of the tap server's HTTP API (clients reach it through the API server's Service proxy).
pub const TAP_PORT: u16 = 8088;
/// Port of the tap server's admin endpoints.
pub const TAP_ADMIN_PORT: u16 = 9998;
/// The proxy's tap port (its control listener, `LINKERD2_PROXY_CONTROL_LISTEN_ADDR`).
pub const PROXY_TAP_PORT: u16 = 4190;
