use super::*;

fn run(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("oxlink").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    cli.run(&mut out).expect("command runs");
    String::from_utf8(out).expect("utf-8 output")
}

#[test]
fn version_prints_the_client_version_like_linkerd() {
    assert_eq!(
        run(&["version", "--client"]),
        format!("Client version: {VERSION}\n")
    );
    assert_eq!(run(&["version", "--short"]), format!("{VERSION}\n"));
}

#[test]
fn unknown_subcommand_is_an_error() {
    let err = Cli::try_parse_from(["oxlink", "frobnicate"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::InvalidSubcommand);
}
