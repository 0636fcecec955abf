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

#[test]
fn install_crds_prints_the_generated_manifest() {
    let out = run(&["install", "--crds"]);
    assert_eq!(out, oxlink_crds::install::manifest());
    let docs = out.matches("\n---\n").count();
    assert_eq!(
        docs,
        oxlink_crds::install::crds().len(),
        "one document per CRD"
    );
    for crd in oxlink_crds::install::crds() {
        let name = crd.metadata.name.unwrap();
        assert!(
            out.contains(&format!("\n  name: {name}\n")),
            "{name} is in the output"
        );
    }
}

#[test]
fn install_renders_the_control_plane_not_the_crds() {
    let out = run(&["install", "--ignore-cluster"]);
    assert!(out.contains("\nkind: Deployment\n"), "{out}");
    assert!(!out.contains("kind: CustomResourceDefinition"), "{out}");
}
