use super::*;
use crate::{
    Kind,
    stat::{Listed, Row, Stats},
};

fn row(ns: &str, name: &str, meshed: u32, stats: Option<Stats>) -> Row {
    Row {
        kind: Kind::Deployment,
        listed: Listed {
            namespace: ns.into(),
            name: name.into(),
            meshed,
            pods: 1,
            status: None,
        },
        stats,
    }
}

fn web_stats() -> Stats {
    Stats {
        success: Some(0.9),
        rps: 10.0,
        latency_ms: [Some(1.2), Some(4.0), Some(9.6)],
        tcp_connections: Some(2.0),
        read_bytes_rate: Some(512.0),
        write_bytes_rate: Some(1024.0),
    }
}

#[test]
fn stat_table_is_linkerds() {
    let rows = [
        row("todo", "vote-bot", 1, None),
        row("todo", "web", 1, Some(web_stats())),
        row("todo", "plain", 0, None),
    ];
    assert_eq!(
        stat(&rows, false, Output::Table),
        "\
NAME       MESHED   SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN
vote-bot      1/1         -         -             -             -             -          -
web           1/1    90.00%   10.0rps           1ms           4ms          10ms          2
plain         0/1         -         -             -             -             -          -
"
    );
}

#[test]
fn all_namespaces_and_wide_add_columns() {
    let rows = [
        row("todo", "web", 1, Some(web_stats())),
        row("linkerd-viz", "prometheus", 1, None),
    ];
    let out = stat(&rows, true, Output::Wide);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "NAMESPACE     NAME         MESHED   SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN   READ_BYTES/SEC   WRITE_BYTES/SEC"
    );
    assert_eq!(
        lines[1],
        "todo          web             1/1    90.00%   10.0rps           1ms           4ms          10ms          2         512.0B/s         1024.0B/s"
    );
    assert!(lines[2].starts_with("linkerd-viz   prometheus      1/1         -"));
    assert!(lines[2].ends_with("-                 -"));
}

#[test]
fn stat_json_has_linkerds_fields_and_nulls() {
    let rows = [
        row("todo", "web", 1, Some(web_stats())),
        row("todo", "idle", 1, None),
    ];
    let out: Value = serde_json::from_str(&stat(&rows, false, Output::Json)).unwrap();
    assert_eq!(out[0]["kind"], "deployment");
    assert_eq!(out[0]["meshed"], "1/1");
    assert_eq!(out[0]["success"], 0.9);
    assert_eq!(out[0]["rps"], 10.0);
    assert_eq!(out[0]["latency_ms_p99"], 10);
    assert_eq!(out[0]["tcp_open_connections"], 2);
    assert_eq!(out[1]["success"], Value::Null);
    assert_eq!(out[1]["latency_ms_p50"], Value::Null);
    assert_eq!(stat(&[], false, Output::Table), "No traffic found.\n");
}

#[test]
fn routes_table_lists_default_last() {
    let rows = [
        routes::Row {
            route: "GET /stress".into(),
            service: "todoui".into(),
            stats: Some(routes::RouteStats {
                success: Some(0.0),
                rps: 0.5,
                latency_ms: [Some(100.0), Some(100.0), Some(100.0)],
            }),
        },
        routes::Row {
            route: "[DEFAULT]".into(),
            service: "todoui".into(),
            stats: None,
        },
    ];
    assert_eq!(
        routes(&rows, Output::Table),
        "\
ROUTE         SERVICE   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99
GET /stress    todoui     0.00%   0.5rps         100ms         100ms         100ms
[DEFAULT]      todoui         -        -             -             -             -
"
    );
}

#[test]
fn edges_table_marks_secured_edges() {
    let e = |src: &str, server: &str| Edge {
        src: src.into(),
        src_namespace: "todo".into(),
        dst: "todobackend".into(),
        dst_namespace: "todo".into(),
        client_id: format!("{src}.todo.serviceaccount.identity.linkerd.cluster.local"),
        server_id: server.into(),
        no_tls_reason: if server.is_empty() {
            "not_provided_by_remote".into()
        } else {
            String::new()
        },
    };
    let edges_ = [
        e(
            "todoui",
            "todobackend.todo.serviceaccount.identity.linkerd.cluster.local",
        ),
        e("load", ""),
    ];
    assert_eq!(
        edges(&edges_, Output::Table),
        "\
SRC      DST           SRC_NS   DST_NS   SECURED
todoui   todobackend   todo     todo     √
load     todobackend   todo     todo     ×
"
    );
    let wide = edges(&edges_, Output::Wide);
    assert!(wide.starts_with("SRC      DST           SRC_NS   DST_NS   CLIENT_ID"));
    assert!(wide.contains("todoui.todo.serviceaccount.identity.linkerd.cluster.local   todobackend.todo.serviceaccount"));
    assert!(wide.contains("not_provided_by_remote"));
    assert_eq!(edges(&[], Output::Table), "No edges found.\n");
}
