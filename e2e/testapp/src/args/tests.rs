use super::*;

#[test]
fn durations_need_a_unit() {
    assert_eq!(duration("300ms"), Ok(Duration::from_millis(300)));
    assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
    assert!(duration("300").unwrap_err().contains("no unit"));
    assert!(duration("3d").unwrap_err().contains("unknown unit"));
    assert!(duration("ms").unwrap_err().contains("number"));
}

#[test]
fn path_rules_split_at_the_last_equals_sign() {
    assert_eq!(
        latency_rule("/stress=300ms"),
        Ok(PathRule {
            path: "/stress".into(),
            value: Duration::from_millis(300)
        })
    );
    assert_eq!(
        status_rule("/a=b=404").map(|r| (r.path, r.value)),
        Ok(("/a=b".into(), StatusCode::NOT_FOUND))
    );
    assert!(status_rule("/x=99").unwrap_err().contains("not a final"));
    assert!(status_rule("x=200").unwrap_err().contains("'/'"));
    assert!(latency_rule("/x").unwrap_err().contains("PATH=VALUE"));
}

#[test]
fn fractions_headers_and_urls() {
    assert_eq!(fraction("0.25"), Ok(0.25));
    assert!(fraction("1.5").is_err());
    assert!(rate("0").is_err());
    let (k, v) = header("X-Test: a b").unwrap();
    assert_eq!((k.as_str(), v.to_str().unwrap()), ("x-test", "a b"));
    assert!(header("nocolon").is_err());
    assert!(http_url("http://web:8080/x").is_ok());
    assert!(http_url("https://web/").unwrap_err().contains("http://"));
    assert!(http_url("/relative").is_err());
}
