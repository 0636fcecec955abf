use super::*;
use crate::{
    index::{ObjKey, ProfileTarget},
    test_util::*,
};
use serde_json::json;

#[test]
fn index_sizes_are_read_at_scrape_time() {
    let index = mk_index();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, index.clone());
    index.write().apply(&mk_service(
        "web",
        "10.96.0.10",
        &[("http", 80, json!(8080))],
    ));
    let _profile = index
        .write()
        .watch_profile(&ProfileTarget::Service(ObjKey::new(NS, "web"), 80), None);
    let _outbound = index
        .write()
        .watch_outbound(&crate::index::policy::OutboundTarget::Service(
            ObjKey::new(NS, "web"),
            80,
        ))
        .unwrap();
    metrics
        .subscriptions
        .get_or_create(&Metrics::api("get"))
        .inc();
    metrics.record_started("svc", "Get");
    metrics.record_handled("svc", "Get", tonic::Code::NotFound);

    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &registry).unwrap();
    for line in [
        r#"destination_index_objects{kind="service"} 1"#,
        r#"destination_index_objects{kind="pod"} 0"#,
        r#"destination_index_subscription_keys{api="get_profile"} 1"#,
        r#"destination_index_subscription_keys{api="outbound"} 1"#,
        r#"destination_index_objects{kind="server"} 0"#,
        r#"destination_index_objects{kind="trafficsplit"} 0"#,
        r#"destination_index_invalid_objects{kind="trafficsplit"} 0"#,
        r#"destination_subscriptions{api="get"} 1"#,
        r#"grpc_server_started_total{grpc_service="svc",grpc_method="Get"} 1"#,
        r#"grpc_server_handled_total{grpc_service="svc",grpc_method="Get",grpc_code="NotFound"} 1"#,
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in\n{body}");
    }
}
