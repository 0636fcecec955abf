use super::*;
use crate::{
    Cli,
    serve::{BehaviourArgs, Serving},
    test_util::{any_port, closed_port},
};
use clap::Parser;

fn get_args(argv: &[&str]) -> GetArgs {
    let argv = ["oxlink-testapp", "get"].iter().chain(argv);
    match Cli::try_parse_from(argv).unwrap().command {
        crate::Command::Get(args) => args,
        other => panic!("{other:?}"),
    }
}

async fn lines(args: GetArgs) -> Vec<Line> {
    let mut out = Vec::new();
    args.run(&mut out).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test]
async fn one_line_per_request_with_status_served_by_and_time() {
    let serving = Serving::start(
        &[any_port()],
        "pod-a".into(),
        BehaviourArgs {
            fail_first: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}/x", serving.addrs()[0]);
    let mut out = Vec::new();
    get_args(&[
        &url, "--count", "3", "--method", "post", "--header", "x-a: b", "--http2",
    ])
    .run(&mut out)
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(r#"{"status":503,"served_by":"pod-a","ms":"#),
        "{out}"
    );
    for line in &lines[1..] {
        match serde_json::from_str(line).unwrap() {
            Line::Response {
                status: 200,
                served_by: Some(pod),
                ms,
            } => assert!(pod == "pod-a" && ms >= 0.0, "{line}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(serving.counts().requests, 3);
}

#[tokio::test]
async fn a_refused_connection_is_an_error_line() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    match &lines(get_args(&[&url])).await[..] {
        [Line::Error { error }] => assert!(error.starts_with("connect: "), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    for argv in [
        &["get", "ftp://x"][..],
        &["get", "http://x/", "--count", "many"],
        &["get", "http://x/", "--header", "nocolon"],
        &["get", "http://x/", "--timeout", "10"],
        &["load"],
        &["serve", "--fail-rate", "2"],
        &["serve", "--fail-every", "0"],
    ] {
        let error =
            Cli::try_parse_from(std::iter::once(&"oxlink-testapp").chain(argv)).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{argv:?}: {error}");
    }
}
