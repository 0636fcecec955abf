use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    tap: TapArgs,
}

fn parse(args: &[&str]) -> TapArgs {
    Cli::try_parse_from(std::iter::once("tap").chain(args.iter().copied()))
        .unwrap()
        .tap
}

#[test]
fn flags_become_the_servers_request() {
    let a = parse(&[
        "deploy/web",
        "-n",
        "todo",
        "--to",
        "svc/backend",
        "--to-namespace",
        "other",
        "--path",
        "/stress",
        "--method",
        "GET",
        "--max-rps",
        "5",
    ]);
    let req = a.filters.request().unwrap();
    assert_eq!(req.resource.display(), "deployment/web");
    assert_eq!(req.namespace, "todo");
    assert_eq!(req.to.as_ref().unwrap().display(), "service/backend");
    assert_eq!(req.to_namespace, "other");
    assert_eq!(req.path.as_deref(), Some("/stress"));
    assert_eq!(req.max_rps, 5.0);
    let two = parse(&["deploy", "web"]).filters.request().unwrap();
    assert_eq!(two.resource.display(), "deployment/web");
    assert_eq!(two.namespace, "default");
    assert_eq!(two.to_namespace, "default");
    assert_eq!(two.max_rps, 100.0);
}

#[test]
fn bad_flags_are_refused_before_any_request() {
    let err = |args: &[&str]| parse(args).filters.request().unwrap_err().to_string();
    assert_eq!(
        err(&["widgets/a"]),
        "cannot find Kubernetes canonical name from friendly name [widgets]"
    );
    assert_eq!(
        err(&["deploy/web", "--path", "stress"]),
        "invalid path: \"stress\" does not start with /"
    );
    assert_eq!(
        err(&["deploy/web", "--max-rps", "0"]),
        "invalid maxRps: 0 must be a number above zero"
    );
    assert_eq!(
        err(&["deploy/web", "--scheme", "ftp"]),
        "invalid scheme: \"ftp\": expected http or https"
    );
    assert_eq!(
        err(&["deploy/web", "po/x"]),
        "please specify one resource to tap: TYPE/NAME or TYPE NAME"
    );
    assert_eq!(tap_output("wide").unwrap(), TapOutput::Wide);
    assert_eq!(
        tap_output("yaml").unwrap_err().to_string(),
        "output format \"yaml\" not recognized: expected \"wide\" or \"json\""
    );
}

#[test]
fn the_tap_servers_words_are_shown_as_they_are() {
    let ours = kube::core::Status::failure(
        "no running pods found for deployment/web in namespace \"todo\"",
        "Failed to parse error data",
    )
    .with_code(404);
    assert_eq!(
        api_error(&ours),
        "no running pods found for deployment/web in namespace \"todo\""
    );
    let theirs =
        kube::core::Status::failure("services \"tap\" not found", "NotFound").with_code(404);
    assert!(
        api_error(&theirs).contains("tap server of the linkerd-viz extension is not reachable")
    );
}
