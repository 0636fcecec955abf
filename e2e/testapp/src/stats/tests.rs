use super::*;

#[test]
fn a_reset_forgets_requests_sent_before_it() {
    let recorder = Recorder::default();
    let before = recorder.sent("http://a/");
    let answered = recorder.sent("http://a/");
    recorder.response(answered, 200, Some("pod-a"), Duration::from_millis(5));
    let stats = recorder.snapshot();
    assert_eq!((stats.sent, stats.responses, stats.in_flight), (2, 1, 1));

    recorder.reset();
    let after = recorder.sent("http://b/");
    recorder.response(before, 200, Some("pod-a"), Duration::from_millis(5));
    recorder.error(after, "timeout");
    let stats = recorder.snapshot();
    assert_eq!(
        (stats.sent, stats.responses, stats.errors, stats.in_flight),
        (1, 0, 1, 0)
    );
    assert_eq!(stats.by_url, BTreeMap::from([("http://b/".into(), 1)]));
    assert_eq!(
        stats.errors_by_kind,
        BTreeMap::from([("timeout".into(), 1)])
    );
    assert!(stats.by_served_by.is_empty());
}

#[test]
fn responses_without_served_by_are_counted_under_a_dash() {
    let recorder = Recorder::default();
    let t = recorder.sent("u");
    recorder.response(t, 503, None, Duration::from_millis(1));
    let stats = recorder.snapshot();
    assert_eq!(
        stats.by_served_by,
        BTreeMap::from([(NOT_SERVED_BY.into(), 1)])
    );
    assert_eq!(stats.by_status, BTreeMap::from([("503".into(), 1)]));
    // The JSON round-trips, for tests that read it.
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(serde_json::from_str::<Stats>(&json).unwrap(), stats);
}

#[test]
fn windows_add_up_to_the_whole_run() {
    let recorder = Recorder::default();
    let early = recorder.sent("u");
    let answered = recorder.sent("u");
    recorder.response(answered, 200, None, Duration::from_millis(2));
    let first = recorder.window();
    assert_eq!((first.sent, first.responses), (2, 1));
    assert_eq!(first.latency_buckets_us.iter().map(|b| b.1).sum::<u64>(), 1);

    // Answered after the window closed: counted in the next one, not lost.
    recorder.error(early, "timeout");
    let late = recorder.sent("u");
    recorder.response(late, 200, None, Duration::from_millis(3));
    let second = recorder.window();
    assert_eq!((second.sent, second.responses, second.errors), (1, 1, 1));
    assert_eq!(first.sent + second.sent, 3);
    assert_eq!(
        first.responses + second.responses + first.errors + second.errors,
        3
    );
    assert_eq!(recorder.snapshot().sent, 0, "the window started anew");
}
