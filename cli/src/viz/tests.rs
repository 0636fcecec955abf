use super::*;
use crate::{Cli, Command};
use clap::Parser;

fn viz(args: &[&str]) -> VizCommand {
    let cli = Cli::try_parse_from(["oxlink", "viz"].iter().chain(args.iter()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match cli.command {
        Command::Viz { command } => command,
        other => panic!("{other:?}"),
    }
}

fn parse_error(args: &[&str]) -> String {
    Cli::try_parse_from(["oxlink", "viz"].iter().chain(args.iter()))
        .unwrap_err()
        .to_string()
}

fn stat_queries(
    args: &[&str],
) -> anyhow::Result<Vec<(oxlink_viz::Resource, oxlink_viz::promql::StatQueries)>> {
    match viz(args) {
        VizCommand::Stat(s) => s.queries(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stat_flags_shape_the_promql() {
    let q = stat_queries(&["stat", "deploy", "-n", "todo"]).unwrap();
    assert_eq!(
        q[0].1.requests,
        r#"sum(increase(response_total{direction="inbound", namespace="todo"}[1m])) by (namespace, deployment, classification, tls)"#
    );
    let q = stat_queries(&["stat", "deployments", "-A", "-t", "30s"]).unwrap();
    assert_eq!(
        q[0].1.requests,
        r#"sum(increase(response_total{direction="inbound"}[30s])) by (namespace, deployment, classification, tls)"#
    );
    let q = stat_queries(&["stat", "deploy", "-n", "todo", "--to", "svc/todobackend"]).unwrap();
    assert!(q[0].1.requests.contains(
        r#"direction="outbound", dst_namespace="todo", dst_service="todobackend", namespace="todo""#
    ));
    let q = stat_queries(&[
        "stat",
        "deploy/todobackend",
        "-n",
        "todo",
        "--from",
        "deploy/todoui",
        "--from-namespace",
        "web",
    ])
    .unwrap();
    assert!(q[0].1.requests.contains(r#"deployment="todoui", direction="outbound", dst_deployment="todobackend", dst_namespace="todo", namespace="web""#));
    assert!(
        q[0].1
            .requests
            .ends_with("by (dst_namespace, dst_deployment, classification, tls)")
    );
    let q = stat_queries(&["stat", "po", "a", "b", "-n", "x"]).unwrap();
    assert_eq!(q.len(), 2);
    assert!(q[1].1.requests.contains(r#"pod="b""#));
    let q = stat_queries(&["stat", "ns/todo"]).unwrap();
    assert!(q[0].1.tcp_connections.contains(r#"namespace="todo""#));
}

#[test]
fn bad_stat_input_is_refused_precisely() {
    assert_eq!(
        stat_queries(&["stat", "widgets"]).unwrap_err().to_string(),
        "cannot find Kubernetes canonical name from friendly name [widgets]"
    );
    assert!(
        parse_error(&["stat", "deploy", "--to", "svc/a", "--from", "deploy/b"])
            .contains("cannot be used with")
    );
    assert!(parse_error(&["stat", "deploy", "-t", "5x"]).contains("invalid time window"));
    assert!(parse_error(&["stat", "deploy", "-o", "yaml"]).contains("table, wide and json"));
    assert!(parse_error(&["stat"]).contains("required"));
    assert_eq!(
        stat_queries(&["stat", "svc/web"]).unwrap_err().to_string(),
        "services is only supported as a --to resource"
    );
    assert!(
        stat_queries(&["stat", "deploy/web", "-A"])
            .unwrap_err()
            .to_string()
            .contains("across all namespaces")
    );
    assert!(
        stat_queries(&["stat", "deploy/a", "po/b"])
            .unwrap_err()
            .to_string()
            .contains("multiple resource types")
    );
}

#[test]
fn routes_and_edges_flags_shape_the_promql() {
    let VizCommand::Routes(r) = viz(&["routes", "deploy/todoui", "-n", "todo"]) else {
        panic!()
    };
    let (target, to) = r.resources().unwrap();
    assert_eq!(target.name.as_deref(), Some("todoui"));
    assert!(to.is_none());
    let q = r.queries(&target, None).unwrap();
    assert!(
        q.requests
            .contains(r#"{deployment="todoui", direction="inbound", namespace="todo"}"#)
    );
    let VizCommand::Routes(r) = viz(&[
        "routes",
        "deploy",
        "todoui",
        "--to",
        "svc/todobackend",
        "-t",
        "5m",
    ]) else {
        panic!()
    };
    let (target, to) = r.resources().unwrap();
    assert_eq!(to.unwrap().name.as_deref(), Some("todobackend"));
    let q = r
        .queries(&target, Some((&["todobackend".to_string()], "default")))
        .unwrap();
    assert!(
        q.requests
            .contains(r#"dst=~"(todobackend)\\.default\\.svc\\..+""#)
            && q.requests.contains("[5m]"),
        "{}",
        q.requests
    );
    let VizCommand::Routes(r) = viz(&["routes", "deploy/a", "--to", "svc"]) else {
        panic!()
    };
    assert!(
        r.resources()
            .unwrap_err()
            .to_string()
            .contains("--to needs a named resource")
    );
    let VizCommand::Routes(r) = viz(&["routes", "deploy"]) else {
        panic!()
    };
    assert!(
        r.resources()
            .unwrap_err()
            .to_string()
            .contains("please specify one resource")
    );
    let VizCommand::Routes(r) = viz(&["routes", "ns/todo"]) else {
        panic!()
    };
    assert!(
        r.resources()
            .unwrap_err()
            .to_string()
            .contains("not a namespace")
    );

    let VizCommand::Edges(e) = viz(&["edges", "deploy", "-n", "todo"]) else {
        panic!()
    };
    let (kind, q) = e.queries().unwrap();
    assert_eq!(kind, oxlink_viz::Kind::Deployment);
    assert!(
        q.outbound
            .contains(r#"{direction="outbound", namespace="todo"}"#)
    );
    let VizCommand::Edges(e) = viz(&["edges", "po", "-A", "-o", "wide"]) else {
        panic!()
    };
    assert!(
        e.queries()
            .unwrap()
            .1
            .outbound
            .contains(r#"{direction="outbound"}"#)
    );
    let VizCommand::Edges(e) = viz(&["edges", "deploy/web"]) else {
        panic!()
    };
    assert!(
        e.queries()
            .unwrap_err()
            .to_string()
            .contains("resource type")
    );
}

#[test]
fn install_renders_the_namespace_and_bad_values_change_nothing() {
    let VizCommand::Install(i) = viz(&[
        "install",
        "--set",
        "prometheus.globalConfig.scrape_interval=5s",
    ]) else {
        panic!()
    };
    let manifest = i.manifest().unwrap();
    assert!(manifest.starts_with("---\n# Source: oxlink-viz/templates/namespace.yaml\n"));
    assert!(manifest.contains("scrape_interval: \"5s\""));
    let VizCommand::Install(i) = viz(&["install", "-f", "/nonexistent/values.yaml"]) else {
        panic!()
    };
    assert!(
        format!("{:#}", i.manifest().unwrap_err())
            .contains("reading values file /nonexistent/values.yaml")
    );
}
