use super::*;
use std::collections::BTreeSet;

fn chart_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/oxlink-viz")
}

fn objects(overlay: Value) -> Vec<Value> {
    render(&values_with(overlay).unwrap())
        .unwrap()
        .iter()
        .map(|d| serde_saphyr::from_str(&d.yaml).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

#[test]
fn every_template_file_is_embedded() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(chart_dir().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let embedded: BTreeSet<String> = TEMPLATES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(embedded, on_disk);
    for (file, text) in TEMPLATES {
        assert_eq!(
            *text,
            std::fs::read_to_string(chart_dir().join("templates").join(file)).unwrap()
        );
    }
    assert_eq!(
        VALUES_YAML,
        std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()
    );
}

#[test]
fn tap_runs_our_server_with_its_own_identity() {
    let o = objects(json!({}));
    find(&o, "ServiceAccount", "tap");
    let svc = find(&o, "Service", "tap");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8088);
    let deploy = find(&o, "Deployment", "tap");
    let pod = &deploy["spec"]["template"];
    // It speaks mesh TLS itself: no proxy in front of it.
    assert_eq!(
        pod["metadata"]["annotations"]["linkerd.io/inject"],
        "disabled"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "tap");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["command"][0], "/oxlink-tap");
    assert_eq!(c["image"], "oxlink:0.1.0");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--controller-namespace=linkerd"), "{args:?}");
    assert!(args.contains(&"--max-rps=1000"), "{args:?}");
    let token = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "identity.l5d.io");
    let role = find(&o, "Role", "linkerd-linkerd-viz-tap-trust-roots");
    assert_eq!(role["metadata"]["namespace"], "linkerd");
    find(&o, "ClusterRoleBinding", "linkerd-linkerd-viz-tap");
    assert!(
        !objects(json!({"tap": {"enabled": false}}))
            .iter()
            .any(|o| o["metadata"]["name"] == "tap")
    );
}

#[test]
fn prometheus_has_linkerd_viz_names_and_labels() {
    let o = objects(json!({"installNamespace": true}));
    let ns = find(&o, "Namespace", NAMESPACE);
    assert_eq!(ns["metadata"]["labels"]["linkerd.io/extension"], "viz");
    assert_eq!(
        ns["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    let deploy = find(&o, "Deployment", "prometheus");
    assert_eq!(deploy["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deploy["metadata"]["labels"]["component"], "prometheus");
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "prom/prometheus:v3.16.0");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--log.level=info",
            "--log.format=logfmt",
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/data",
            "--storage.tsdb.retention.time=6h",
        ]
    );
    find(&o, "ServiceAccount", "prometheus");
    find(&o, "Service", "prometheus");
    let role = find(&o, "ClusterRole", "linkerd-linkerd-viz-prometheus");
    assert_eq!(
        role["rules"][0]["resources"],
        json!(["nodes", "nodes/proxy", "pods"])
    );
    let binding = find(&o, "ClusterRoleBinding", "linkerd-linkerd-viz-prometheus");
    assert_eq!(binding["subjects"][0]["name"], "prometheus");
    // Every object carries the extension's label, which `viz uninstall` and `viz check` use.
    for obj in &o {
        assert_eq!(
            obj["metadata"]["labels"]["linkerd.io/extension"], "viz",
            "{obj}"
        );
    }
}

#[test]
fn the_scrape_config_relabels_proxies_like_linkerd_viz() {
    let o = objects(
        json!({"linkerdNamespace": "mesh", "prometheus": {"globalConfig": {"scrape_interval": "5s"}}}),
    );
    let cm = find(&o, "ConfigMap", "prometheus-config");
    let config: Value =
        serde_saphyr::from_str(cm["data"]["prometheus.yml"].as_str().unwrap()).unwrap();
    assert_eq!(config["global"]["scrape_interval"], "5s");
    assert_eq!(config["global"]["evaluation_interval"], "10s");
    let jobs: Vec<&str> = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        [
            "prometheus",
            "kubernetes-nodes-cadvisor",
            "linkerd-controller",
            "linkerd-proxy"
        ]
    );
    let proxy = &config["scrape_configs"][3];
    assert_eq!(proxy["kubernetes_sd_configs"][0]["role"], "pod");
    let rules = proxy["relabel_configs"].as_array().unwrap();
    assert_eq!(rules[1]["regex"], "^linkerd-proxy;linkerd-admin;mesh$");
    assert_eq!(rules[2]["target_label"], "namespace");
    assert_eq!(rules[3]["target_label"], "pod");
    assert_eq!(rules[4]["target_label"], "k8s_job");
    assert_eq!(
        rules[6]["regex"],
        "__meta_kubernetes_pod_label_linkerd_io_proxy_(.+)"
    );
    assert_eq!(rules.last().unwrap()["regex"], "__tmp_pod_label_(.+)");
}

#[test]
fn prometheus_can_be_left_out_and_values_extend_it() {
    // With `prometheusUrl`, no Prometheus: the metrics API reads the one named.
    for overlay in [
        json!({"prometheusUrl": "http://prom.monitoring:9090"}),
        json!({"prometheus": {"enabled": false}, "prometheusUrl": "http://prom.monitoring:9090"}),
    ] {
        let o = objects(overlay);
        assert!(
            o.iter().all(|d| ["web", "tap"].contains(
                &d["metadata"]["labels"]["component"]
                    .as_str()
                    .unwrap_or_default()
            )),
            "only the dashboard and the tap server are left: {o:?}"
        );
        find(&o, "Deployment", "tap");
        let web = find(&o, "Deployment", "web");
        let args = web["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        assert!(
            args.as_array()
                .unwrap()
                .contains(&json!("--prometheus-url=http://prom.monitoring:9090")),
            "{args}"
        );
    }
    let o = objects(json!({
        "commonLabels": {"team": "mesh"},
        "prometheus": {"logFormat": "json", "args": {"web.enable-lifecycle": ""}},
    }));
    let deploy = find(&o, "Deployment", "prometheus");
    assert_eq!(deploy["metadata"]["labels"]["team"], "mesh");
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--log.format=json"))
    );
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--web.enable-lifecycle"))
    );
}

#[test]
fn web_serves_the_dashboard_and_the_metrics_api_under_linkerds_names() {
    let o = objects(json!({}));
    let web = find(&o, "Deployment", "web");
    assert_eq!(
        web["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    let c = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["/oxlink-web"]));
    assert_eq!(c["image"], "oxlink:0.1.0");
    // The bundled Prometheus is the binary's default: no --prometheus-url.
    assert!(
        !c["args"].to_string().contains("--prometheus-url"),
        "{}",
        c["args"]
    );
    let ports: Vec<i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [8084, 8085, 9994]);
    assert_eq!(find(&o, "Service", "web")["spec"]["ports"][0]["port"], 8084);
    assert_eq!(
        find(&o, "Service", "metrics-api")["spec"]["ports"][0]["port"],
        8085
    );
    let role = find(&o, "ClusterRole", "linkerd-linkerd-viz-web");
    assert!(
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verbs"] == json!(["get", "list"]))
    );
    find(&o, "ClusterRoleBinding", "linkerd-linkerd-viz-web");
    let o = objects(json!({"dashboard": {"enforcedHostRegexp": ".*"}}));
    let c = &find(&o, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0];
    assert!(c["args"].to_string().contains("--enforced-host=.*"));
}
