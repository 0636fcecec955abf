//! Mesh identity names: `<sa>.<ns>.serviceaccount.identity.<control-ns>.<trust-domain>`.

use super::control_plane::{IDENTITY_SERVICE_ACCOUNT_LABEL, TAP_SERVICE_ACCOUNT, VIZ_NAMESPACE};

/// The mesh identity of ServiceAccount `service_account` in `namespace`, in a mesh whose
/// control plane runs in `control_namespace` with `trust_domain`.
pub fn service_account_identity(
    service_account: &str,
    namespace: &str,
    control_namespace: &str,
    trust_domain: &str,
) -> String {
    identity_name(
        service_account,
        namespace,
        IDENTITY_SERVICE_ACCOUNT_LABEL,
        control_namespace,
        trust_domain,
    )
}

/// The identity name with `kind` as its third label, as Linkerd derives it from a TokenReview
/// username `system:<kind>:<namespace>:<name>`.
pub fn identity_name(
    name: &str,
    namespace: &str,
    kind: &str,
    control_namespace: &str,
    trust_domain: &str,
) -> String {
    format!("{name}.{namespace}.{kind}.identity.{control_namespace}.{trust_domain}")
}

/// The tap server's mesh identity, which every proxy is told to accept as its tap client
/// (`LINKERD2_PROXY_TAP_SVC_NAME`): `tap.linkerd-viz.serviceaccount.identity.<ns>.<trust-domain>`.
pub fn tap_identity(controller_ns: &str, trust_domain: &str) -> String {
    service_account_identity(
        TAP_SERVICE_ACCOUNT,
        VIZ_NAMESPACE,
        controller_ns,
        trust_domain,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_format_is_linkerds() {
        assert_eq!(
            super::service_account_identity("web", "emojivoto", "linkerd", "cluster.local"),
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        );
    }
}
