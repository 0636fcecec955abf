use super::report::{Category, Outcome, Output, Verdict, render, success};

fn sample(fail: bool) -> Vec<Category> {
    vec![
        Category {
            name: "kubernetes-api",
            checks: vec![
                Outcome::new("can initialize the client", Ok(()), ""),
                Outcome::new("can query the Kubernetes API", Ok(()), ""),
            ],
        },
        Category {
            name: "linkerd-identity",
            checks: vec![
                Outcome::new("certificate config is valid", Ok(()), ""),
                Outcome::new(
                    "issuer cert is valid for at least 60 days",
                    Err("issuer certificate CN=x will expire on 2027-01-01T00:00:00Z".into()),
                    "rotate the issuer certificate before it expires",
                )
                .warn_only(),
                Outcome::new(
                    "issuer cert is issued by the trust anchor",
                    if fail {
                        Err("untrusted".into())
                    } else {
                        Ok(())
                    },
                    "the issuer must chain to one of the trust anchors",
                ),
            ],
        },
    ]
}

fn rendered(categories: &[Category], output: Output) -> String {
    let mut out = Vec::new();
    render(categories, output, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn table_is_linkerds_layout() {
    assert_eq!(
        rendered(&sample(false), Output::Table),
        "kubernetes-api\n\
         --------------\n\
         √ can initialize the client\n\
         √ can query the Kubernetes API\n\
         \n\
         linkerd-identity\n\
         ----------------\n\
         √ certificate config is valid\n\
         ‼ issuer cert is valid for at least 60 days\n\
         \x20   issuer certificate CN=x will expire on 2027-01-01T00:00:00Z\n\
         \x20   hint: rotate the issuer certificate before it expires\n\
         √ issuer cert is issued by the trust anchor\n\
         \n\
         Status check results are √\n"
    );
}

#[test]
fn warnings_pass_errors_fail() {
    assert!(success(&sample(false)));
    assert!(!success(&sample(true)));
    let table = rendered(&sample(true), Output::Table);
    assert!(
        table.contains("× issuer cert is issued by the trust anchor\n    untrusted\n"),
        "{table}"
    );
    assert!(table.ends_with("Status check results are ×\n"), "{table}");
}

#[test]
fn short_shows_only_problems() {
    let short = rendered(&sample(true), Output::Short);
    assert!(!short.contains("kubernetes-api"), "{short}");
    assert!(!short.contains("√ certificate config is valid"), "{short}");
    assert!(
        short.contains("‼ issuer cert is valid for at least 60 days"),
        "{short}"
    );
    assert!(
        short.contains("× issuer cert is issued by the trust anchor"),
        "{short}"
    );
}

#[test]
fn json_carries_results_errors_and_hints() {
    let doc: serde_json::Value =
        serde_json::from_str(&rendered(&sample(true), Output::Json)).unwrap();
    assert_eq!(doc["success"], false);
    assert_eq!(doc["categories"][0]["categoryName"], "kubernetes-api");
    let check = &doc["categories"][1]["checks"][2];
    assert_eq!(
        check["description"],
        "issuer cert is issued by the trust anchor"
    );
    assert_eq!(check["result"], "error");
    assert_eq!(check["error"], "untrusted");
    assert_eq!(
        check["hint"],
        "the issuer must chain to one of the trust anchors"
    );
    assert_eq!(doc["categories"][1]["checks"][1]["result"], "warning");
    assert!(doc["categories"][0]["checks"][0].get("error").is_none());
}

#[test]
fn a_warning_stays_a_warning() {
    let o = Outcome::new("x", Err("e".into()), "h").warn_only();
    assert_eq!(o.result, Verdict::Warning("e".into()));
    let o = Outcome::new("x", Ok(()), "h").warn_only();
    assert_eq!(o.result, Verdict::Success);
}
