//! The containers and volumes that injection adds, rendered as JSON.

use crate::{config::ProxyConfig, values::DirectionValues};
use k8s_openapi::api::core::v1::Capabilities;
use oxlink_crds::names;
use oxlink_crds::names::{control_plane as cp, env};
use serde_json::{Value, json};

/// Where the pod's proxy talks to its control plane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ControlPlane<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) cluster_domain: &'a str,
    pub(crate) trust_domain: &'a str,
}

// === impl ControlPlane ===

impl ControlPlane<'_> {
    fn headless(&self, service: &str, port: u16) -> String {
        format!(
            "{service}.{}.svc.{}.:{port}",
            self.namespace, self.cluster_domain
        )
    }

    fn identity_of(&self, service_account: &str) -> String {
        names::identity::service_account_identity(
            service_account,
            self.namespace,
            self.namespace,
            self.trust_domain,
        )
    }
}

fn var(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

fn field_ref(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// The proxy's environment, in a fixed order.
fn proxy_env(cfg: &ProxyConfig, cp: ControlPlane<'_>, anchors: &str) -> Vec<Value> {
    let any = if cfg.disable_ipv6 { "0.0.0.0" } else { "[::]" };
    let mut out = vec![
        field_ref(env::POD_NAME, "metadata.name"),
        field_ref(env::POD_NS, "metadata.namespace"),
        field_ref(env::POD_NODE_NAME, "spec.nodeName"),
    ];
    if let Some(cores) = cfg.cores {
        out.push(var(env::CORES, cores.to_string()));
    }
    out.push(var(
        env::CORES_MIN,
        cfg.runtime.workers.minimum.max(1).to_string(),
    ));
    if let Some(max) = cfg.runtime.workers.maximum {
        out.push(var(env::CORES_MAX, max.to_string()));
    }
    if let Some(ratio) = cfg.runtime.workers.maximum_cpu_ratio {
        out.push(var(env::CORES_MAX_RATIO, ratio.to_string()));
    }
    out.push(var(
        env::SHUTDOWN_ENDPOINT_ENABLED,
        cfg.shutdown_endpoint.to_string(),
    ));
    if !cfg.require_identity_ports.is_empty() {
        out.push(var(
            env::INBOUND_PORTS_REQUIRE_IDENTITY,
            &*cfg.require_identity_ports,
        ));
    }
    let log = if cfg.log_http_headers {
        cfg.log_level.clone()
    } else {
        format!("{},[{{headers}}]=off,[{{request}}]=off", cfg.log_level)
    };
    let workload = format!(
        "{{\"ns\":\"$({})\", \"pod\":\"$({})\"}}\n",
        env::POD_NS,
        env::POD_NAME
    );
    let context = format!(
        "{{\"ns\":\"$({})\", \"nodeName\":\"$({})\", \"pod\":\"$({})\"}}\n",
        env::POD_NS,
        env::POD_NODE_NAME,
        env::POD_NAME
    );
    out.extend([
        var(env::LOG, log),
        var(env::LOG_FORMAT, &*cfg.log_format),
        var(
            env::DESTINATION_SVC_ADDR,
            cp.headless(
                names::control_plane::DESTINATION_HEADLESS_SERVICE,
                names::control_plane::DESTINATION_GRPC_PORT,
            ),
        ),
        var(env::DESTINATION_PROFILE_NETWORKS, &*cfg.cluster_networks),
        var(
            env::POLICY_SVC_ADDR,
            cp.headless(
                names::control_plane::POLICY_SERVICE,
                names::control_plane::POLICY_GRPC_PORT,
            ),
        ),
        var(env::POLICY_WORKLOAD, workload),
        var(env::INBOUND_DEFAULT_POLICY, &*cfg.default_inbound_policy),
        var(env::POLICY_CLUSTER_NETWORKS, &*cfg.cluster_networks),
        var(
            env::CONTROL_STREAM_INITIAL_TIMEOUT,
            &*cfg.control.streams.initial_timeout,
        ),
        var(
            env::CONTROL_STREAM_IDLE_TIMEOUT,
            &*cfg.control.streams.idle_timeout,
        ),
        var(env::CONTROL_STREAM_LIFETIME, &*cfg.control.streams.lifetime),
        var(env::INBOUND_CONNECT_TIMEOUT, &*cfg.inbound_connect_timeout),
        var(
            env::OUTBOUND_CONNECT_TIMEOUT,
            &*cfg.outbound_connect_timeout,
        ),
        var(
            env::OUTBOUND_DISCOVERY_IDLE_TIMEOUT,
            &*cfg.outbound_discovery_idle_timeout,
        ),
        var(
            env::INBOUND_DISCOVERY_IDLE_TIMEOUT,
            &*cfg.inbound_discovery_idle_timeout,
        ),
    ]);
    if cfg.disable_outbound_detect_timeout {
        out.push(var(env::OUTBOUND_DETECT_TIMEOUT, "365d"));
    }
    if cfg.disable_inbound_detect_timeout {
        out.push(var(env::INBOUND_DETECT_TIMEOUT, "365d"));
    }
    let outbound_addrs = if cfg.disable_ipv6 {
        format!("127.0.0.1:{}", cfg.outbound_port)
    } else {
        format!("127.0.0.1:{0},[::1]:{0}", cfg.outbound_port)
    };
    out.extend([
        var(
            env::CONTROL_LISTEN_ADDR,
            format!("{any}:{}", cfg.control_port),
        ),
        var(env::ADMIN_LISTEN_ADDR, format!("{any}:{}", cfg.admin_port)),
        var(
            env::OUTBOUND_LISTEN_ADDR,
            format!("127.0.0.1:{}", cfg.outbound_port),
        ),
        var(env::OUTBOUND_LISTEN_ADDRS, outbound_addrs),
        var(
            env::INBOUND_LISTEN_ADDR,
            format!("{any}:{}", cfg.inbound_port),
        ),
        field_ref(env::INBOUND_IPS, "status.podIPs"),
        var(env::INBOUND_PORTS, &*cfg.inbound_ports),
    ]);
    if cfg.gateway {
        out.push(var(
            env::INBOUND_GATEWAY_SUFFIXES,
            format!("svc.{}.", cp.cluster_domain),
        ));
    }
    if cfg.ingress {
        out.push(var(env::INGRESS_MODE, "true"));
    }
    let suffixes = if cfg.external_profiles {
        ".".to_string()
    } else {
        format!("svc.{}.", cp.cluster_domain)
    };
    let keepalive = |d: &DirectionValues| d.server.http2.clone();
    let (inbound_h2, outbound_h2) = (keepalive(&cfg.inbound), keepalive(&cfg.outbound));
    out.extend([
        var(env::DESTINATION_PROFILE_SUFFIXES, suffixes),
        var(env::INBOUND_ACCEPT_KEEPALIVE, "10000ms"),
        var(env::OUTBOUND_CONNECT_KEEPALIVE, "10000ms"),
        var(env::INBOUND_ACCEPT_USER_TIMEOUT, "30s"),
        var(env::OUTBOUND_CONNECT_USER_TIMEOUT, "30s"),
        var(
            env::INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL,
            inbound_h2.keep_alive_interval,
        ),
        var(
            env::INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT,
            inbound_h2.keep_alive_timeout,
        ),
        var(
            env::OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL,
            outbound_h2.keep_alive_interval,
        ),
        var(
            env::OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT,
            outbound_h2.keep_alive_timeout,
        ),
    ]);
    if cfg.metrics_hostname_labels {
        out.push(var(env::OUTBOUND_METRICS_HOSTNAME_LABELS, "true"));
    }
    if !cfg.opaque_ports.is_empty() {
        out.push(var(
            env::INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION,
            &*cfg.opaque_ports,
        ));
    }
    let token_file = if cfg.token_projection {
        format!(
            "{}/{}",
            names::proxy::IDENTITY_TOKEN_DIR,
            names::proxy::IDENTITY_TOKEN_FILE_NAME
        )
    } else {
        names::proxy::LEGACY_TOKEN_FILE.to_string()
    };
    let mut anchors = anchors.trim().to_string();
    anchors.push('\n');
    out.extend([
        var(env::DESTINATION_CONTEXT, context),
        field_ref(env::POD_SA, "spec.serviceAccountName"),
        var(env::L5D_NS, cp.namespace),
        var(env::L5D_TRUST_DOMAIN, cp.trust_domain),
        var(env::IDENTITY_DIR, names::proxy::IDENTITY_END_ENTITY_PATH),
        var(env::IDENTITY_TRUST_ANCHORS, anchors),
        var(env::IDENTITY_TOKEN_FILE, token_file),
        var(
            env::IDENTITY_SVC_ADDR,
            cp.headless(cp::IDENTITY_HEADLESS_SERVICE, cp::IDENTITY_GRPC_PORT),
        ),
        var(
            env::IDENTITY_LOCAL_NAME,
            format!(
                "$({}).$({}).{}.identity.$({}).$({})",
                env::POD_SA,
                env::POD_NS,
                cp::IDENTITY_SERVICE_ACCOUNT_LABEL,
                env::L5D_NS,
                env::L5D_TRUST_DOMAIN
            ),
        ),
        var(
            env::IDENTITY_SVC_NAME,
            cp.identity_of(cp::IDENTITY_SERVICE_ACCOUNT),
        ),
        var(
            env::DESTINATION_SVC_NAME,
            cp.identity_of(cp::DESTINATION_SERVICE_ACCOUNT),
        ),
        var(
            env::POLICY_SVC_NAME,
            cp.identity_of(cp::DESTINATION_SERVICE_ACCOUNT),
        ),
        // What Linkerd's viz tap injector adds at admission, set here so that `oxlink inject`
        // and the webhook agree: the proxy serves tap to the viz tap server only.
        var(
            env::TAP_SVC_NAME,
            names::identity::tap_identity(cp.namespace, cp.trust_domain),
        ),
    ]);
    if !cfg.access_log.is_empty() {
        out.push(var(env::ACCESS_LOG, &*cfg.access_log));
    }
    if !cfg.shutdown_grace_period.is_empty() {
        out.push(var(env::SHUTDOWN_GRACE_PERIOD, &*cfg.shutdown_grace_period));
    }
    // Additional variables replace ours by name, or are appended.
    for extra in &cfg.additional_env {
        let Ok(extra) = serde_json::to_value(extra) else {
            continue;
        };
        match out.iter_mut().find(|e| e["name"] == extra["name"]) {
            Some(existing) => *existing = extra,
            None => out.push(extra),
        }
    }
    out
}

fn resources(r: &crate::values::ResourcesValues) -> Option<Value> {
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    for (name, rl) in [
        ("cpu", &r.cpu),
        ("memory", &r.memory),
        ("ephemeral-storage", &r.ephemeral_storage),
    ] {
        if !rl.request.is_empty() {
            requests.insert(name.into(), rl.request.clone().into());
        }
        if !rl.limit.is_empty() {
            limits.insert(name.into(), rl.limit.clone().into());
        }
    }
    let mut out = serde_json::Map::new();
    if !limits.is_empty() {
        out.insert("limits".into(), limits.into());
    }
    if !requests.is_empty() {
        out.insert("requests".into(), requests.into());
    }
    (!out.is_empty()).then(|| out.into())
}

/// The `linkerd-proxy` container: a native sidecar (an init container with
/// `restartPolicy: Always`) or a regular container.
pub(crate) fn proxy_container(
    cfg: &ProxyConfig,
    cp: ControlPlane<'_>,
    anchors: &str,
    capabilities: Option<&Capabilities>,
) -> Value {
    let admin = cfg.admin_port;
    let mut security = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": cfg.uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if cfg.gid >= 0 {
        security["runAsGroup"] = cfg.gid.into();
    }
    if let Some(caps) = capabilities {
        security["capabilities"] = serde_json::to_value(caps).unwrap_or_default();
    }
    let mut c = json!({
        "name": names::proxy::PROXY_CONTAINER,
        "image": cfg.proxy_image,
        "imagePullPolicy": cfg.pull_policy,
        "env": proxy_env(cfg, cp, anchors),
        "ports": [
            {"containerPort": cfg.inbound_port, "name": names::proxy::PROXY_PORT_NAME},
            {"containerPort": admin, "name": names::proxy::ADMIN_PORT_NAME},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": admin},
            "initialDelaySeconds": 10,
            "timeoutSeconds": 1,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": admin},
            "initialDelaySeconds": 2,
            "timeoutSeconds": 1,
        },
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": proxy_mounts(cfg),
    });
    if let Some(r) = resources(&cfg.resources) {
        c["resources"] = r;
    }
    if cfg.native_sidecar {
        c["restartPolicy"] = "Always".into();
        if cfg.await_ {
            c["startupProbe"] = json!({
                "httpGet": {"path": "/ready", "port": admin},
                "initialDelaySeconds": 0,
                "periodSeconds": 1,
                "failureThreshold": 120,
            });
        }
    } else {
        let mut lifecycle = serde_json::Map::new();
        if cfg.await_ {
            lifecycle.insert(
                "postStart".into(),
                json!({"exec": {"command": [
                    names::proxy::AWAIT_BIN, "--timeout=2m", format!("--port={admin}"),
                ]}}),
            );
        }
        if cfg.wait_before_exit_seconds > 0 {
            lifecycle.insert(
                "preStop".into(),
                json!({"exec": {"command": [
                    "/bin/sleep", cfg.wait_before_exit_seconds.to_string(),
                ]}}),
            );
        }
        if !lifecycle.is_empty() {
            c["lifecycle"] = lifecycle.into();
        }
    }
    c
}

fn proxy_mounts(cfg: &ProxyConfig) -> Value {
    let mut mounts = vec![json!({
        "mountPath": names::proxy::IDENTITY_END_ENTITY_PATH,
        "name": names::proxy::IDENTITY_END_ENTITY_VOLUME,
    })];
    if cfg.token_projection {
        mounts.push(json!({
            "mountPath": names::proxy::IDENTITY_TOKEN_DIR,
            "name": names::proxy::IDENTITY_TOKEN_VOLUME,
        }));
    }
    mounts.into()
}

/// `linkerd-init`: sets up the pod's firewall so that traffic goes through the proxy.
pub(crate) fn init_container(cfg: &ProxyConfig) -> Value {
    let init = &cfg.proxy_init;
    let mut args: Vec<String> = Vec::new();
    if init.iptables_mode == "nft" {
        args.extend(
            [
                "--firewall-bin-path",
                "iptables-nft",
                "--firewall-save-bin-path",
                "iptables-nft-save",
            ]
            .map(String::from),
        );
    }
    if cfg.disable_ipv6 {
        args.push("--ipv6=false".into());
    }
    args.extend([
        "--incoming-proxy-port".into(),
        cfg.inbound_port.to_string(),
        "--outgoing-proxy-port".into(),
        cfg.outbound_port.to_string(),
        "--proxy-uid".into(),
        cfg.uid.to_string(),
    ]);
    if cfg.gid >= 0 {
        args.extend(["--proxy-gid".into(), cfg.gid.to_string()]);
    }
    let mut inbound_ignored = format!("{},{}", cfg.control_port, cfg.admin_port);
    if !cfg.skip_inbound_ports.is_empty() {
        inbound_ignored = format!("{inbound_ignored},{}", cfg.skip_inbound_ports);
    }
    args.extend(["--inbound-ports-to-ignore".into(), inbound_ignored]);
    if !cfg.skip_outbound_ports.is_empty() {
        args.extend([
            "--outbound-ports-to-ignore".into(),
            cfg.skip_outbound_ports.clone(),
        ]);
    }
    if !cfg.skip_subnets.is_empty() {
        args.extend(["--subnets-to-ignore".into(), cfg.skip_subnets.clone()]);
    }
    if cfg.close_wait_secs > 0 {
        args.extend([
            "--timeout-close-wait-secs".into(),
            cfg.close_wait_secs.to_string(),
        ]);
    }
    if !init.log_level.is_empty() {
        args.extend(["--log-level".into(), init.log_level.clone()]);
    }
    if !init.log_format.is_empty() {
        args.extend(["--log-format".into(), init.log_format.clone()]);
    }
    // Changing the close-wait timeout writes a sysctl, which needs privileges.
    let privileged = cfg.close_wait_secs > 0;
    let mut c = json!({
        "name": names::proxy::INIT_CONTAINER,
        "image": cfg.init_image,
        "imagePullPolicy": cfg.pull_policy,
        "command": [names::proxy::PROXY_INIT_BIN],
        "args": args,
        "securityContext": {
            "allowPrivilegeEscalation": privileged,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
            "privileged": privileged,
            "readOnlyRootFilesystem": true,
            "runAsGroup": init.run_as_group,
            "runAsNonRoot": !privileged,
            "runAsUser": if privileged { 0 } else { init.run_as_user },
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{
            "mountPath": names::proxy::XTABLES_LOCK_PATH,
            "name": names::proxy::XTABLES_LOCK_VOLUME,
        }],
    });
    if let Some(r) = resources(&init.resources) {
        c["resources"] = r;
    }
    if cfg.init_image != cfg.proxy_image
        && let Some(c) = c.as_object_mut()
    {
        // A separate proxy-init image brings its own entrypoint.
        c.remove("command");
    }
    c
}

/// `linkerd-network-validator`: in CNI mode, checks that the CNI plugin redirected traffic.
pub(crate) fn network_validator(cfg: &ProxyConfig) -> Value {
    let mut c = json!({
        "name": names::proxy::NETWORK_VALIDATOR_CONTAINER,
        "image": cfg.proxy_image,
        "imagePullPolicy": cfg.pull_policy,
        "command": [names::proxy::NETWORK_VALIDATOR_BIN],
        "args": [
            "--log-format", "plain",
            "--log-level", "debug",
            "--connect-addr", "1.1.1.1:20001",
            "--listen-addr", format!("0.0.0.0:{}", cfg.outbound_port),
            "--timeout", "10s",
        ],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsGroup": cfg.proxy_init.run_as_group,
            "runAsNonRoot": true,
            "runAsUser": cfg.proxy_init.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if let Some(r) = resources(&cfg.proxy_init.resources) {
        c["resources"] = r;
    }
    c
}

/// `linkerd-debug`: a container with network tools, next to the proxy.
pub(crate) fn debug_container(image: &str, pull_policy: &str) -> Value {
    json!({
        "name": names::proxy::DEBUG_CONTAINER,
        "image": image,
        "imagePullPolicy": pull_policy,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    })
}

/// The volumes the proxy and proxy-init mount.
pub(crate) fn volumes(cfg: &ProxyConfig) -> Vec<Value> {
    let mut out = vec![json!({
        "name": names::proxy::IDENTITY_END_ENTITY_VOLUME,
        "emptyDir": {"medium": "Memory"},
    })];
    if cfg.token_projection {
        out.push(json!({
            "name": names::proxy::IDENTITY_TOKEN_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": cp::IDENTITY_TOKEN_AUDIENCE,
                "expirationSeconds": names::proxy::IDENTITY_TOKEN_EXPIRATION_SECONDS,
                "path": names::proxy::IDENTITY_TOKEN_FILE_NAME,
            }}]},
        }));
    }
    if !cfg.cni_enabled {
        out.push(json!({"name": names::proxy::XTABLES_LOCK_VOLUME, "emptyDir": {}}));
    }
    out
}
