use super::*;
use serde_json::json;

fn render(text: &str, data: Value) -> Result<String, TemplateError> {
    let mut templates = Templates::default();
    templates.parse("t.yaml", text)?;
    templates.render("t.yaml", &data)
}

fn ok(text: &str, data: Value) -> String {
    render(text, data).unwrap_or_else(|e| panic!("{text:?} renders: {e}"))
}

fn err(text: &str, data: Value) -> TemplateError {
    render(text, data).expect_err(&format!("{text:?} must fail"))
}

#[test]
fn fields_and_variables() {
    let data = json!({"Values": {"a": {"b": "x"}, "n": 2103.0, "i": 3, "t": true}});
    assert_eq!(ok("v={{ .Values.a.b }}", data.clone()), "v=x");
    assert_eq!(ok("{{ $.Values.a.b }}", data.clone()), "x");
    assert_eq!(ok("{{ $a := .Values.a }}{{ $a.b }}", data.clone()), "x");
    assert_eq!(
        ok(
            "{{ .Values.n }} {{ .Values.i }} {{ .Values.t }}",
            data.clone()
        ),
        "2103 3 true"
    );
    // A missing key prints nothing, as Helm prints it.
    assert_eq!(ok("[{{ .Values.missing }}]", data.clone()), "[]");
    assert_eq!(
        ok("{{ 1.5 }} {{ \"s\" }} {{ `raw` }} {{ nil }}", data),
        "1.5 s raw "
    );
}

#[test]
fn go_prints_large_floats_in_exponent_form() {
    let data = json!({"a": 1_000_000.0, "b": 100_000.0, "c": 0.5, "d": 86400.0, "e": 0.00001});
    assert_eq!(
        ok("{{.a}} {{.b}} {{.c}} {{.d}} {{.e}}", data),
        "1e+06 100000 0.5 86400 1e-05"
    );
}

#[test]
fn trimming_and_comments() {
    let data = json!({"x": "v"});
    assert_eq!(ok("a  \n  {{- .x -}}  \n b", data.clone()), "avb");
    assert_eq!(ok("a {{/* note */}} b", data.clone()), "a  b");
    assert_eq!(ok("a\n{{- /* note */ -}}\nb", data.clone()), "ab");
    // `{{-3}}` is a number, not a trim marker.
    assert_eq!(ok("a {{-3}}", data), "a -3");
}

#[test]
fn if_else_if_else() {
    let t = "{{ if eq .v \"a\" }}A{{ else if .w }}W{{ else }}E{{ end }}";
    assert_eq!(ok(t, json!({"v": "a"})), "A");
    assert_eq!(ok(t, json!({"v": "b", "w": 1})), "W");
    assert_eq!(ok(t, json!({"v": "b", "w": ""})), "E");
}

#[test]
fn truthiness_follows_go() {
    let t = "{{ if .v }}T{{ else }}F{{ end }}";
    for falsy in [
        json!(null),
        json!(false),
        json!(0),
        json!(""),
        json!([]),
        json!({}),
    ] {
        assert_eq!(ok(t, json!({ "v": falsy })), "F", "{falsy}");
    }
    for truthy in [
        json!(true),
        json!(1),
        json!("x"),
        json!([0]),
        json!({"a": 0}),
    ] {
        assert_eq!(ok(t, json!({ "v": truthy })), "T", "{truthy}");
    }
}

#[test]
fn with_sets_dot_and_has_else() {
    let t = "{{ with .a }}{{ .b }}{{ else }}none{{ end }}";
    assert_eq!(ok(t, json!({"a": {"b": "x"}})), "x");
    assert_eq!(ok(t, json!({"a": {}})), "none");
}

#[test]
fn range_over_lists_and_sorted_dicts() {
    assert_eq!(
        ok("{{ range .l }}<{{ . }}>{{ end }}", json!({"l": [1, 2]})),
        "<1><2>"
    );
    assert_eq!(
        ok(
            "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}",
            json!({"m": {"b": 2, "a": 1}})
        ),
        "a=1;b=2;"
    );
    assert_eq!(
        ok(
            "{{ range $i, $v := .l }}{{ $i }}{{ $v }}{{ end }}",
            json!({"l": ["x", "y"]})
        ),
        "0x1y"
    );
    assert_eq!(
        ok("{{ range .l }}x{{ else }}empty{{ end }}", json!({"l": []})),
        "empty"
    );
    let e = err("{{ range .s }}{{ end }}", json!({"s": "str"}));
    assert!(e.message.contains("can't iterate over string"), "{e}");
}

#[test]
fn variables_are_scoped_to_their_block() {
    let e = err("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", json!({}));
    assert_eq!(e.message, "undefined variable $x");
}

#[test]
fn define_include_and_template() {
    let t = "{{ define \"n\" }}[{{ . }}]{{ end }}{{ include \"n\" \"a\" | nindent 2 }}|{{ template \"n\" .v }}";
    assert_eq!(ok(t, json!({"v": "b"})), "\n  [a]|[b]");
    let mut templates = Templates::default();
    templates
        .parse("_helpers.tpl", "{{- define \"h\" -}}{{ $.x }}{{- end }}")
        .unwrap();
    templates.parse("a.yaml", "{{ include \"h\" . }}").unwrap();
    assert_eq!(templates.render("a.yaml", &json!({"x": 7})).unwrap(), "7");
    let e = err("{{ include \"nope\" . }}", json!({}));
    assert_eq!(e.message, "no template \"nope\" is defined");
}

#[test]
fn recursion_is_stopped() {
    let e = err(
        "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
        json!({}),
    );
    assert!(e.message.contains("nests deeper than"), "{e}");
}

#[test]
fn sprig_functions() {
    let data = json!({"s": "a\"b", "n": null, "y": {"b": [1, "x"], "a": "t"}, "e": ""});
    assert_eq!(
        ok("{{ quote .s }} {{ .s | quote }}", data.clone()),
        r#""a\"b" "a\"b""#
    );
    assert_eq!(ok("{{ quote .n }}", data.clone()), "");
    assert_eq!(
        ok(
            "{{ default \"d\" .e }} {{ default \"d\" .s }}",
            data.clone()
        ),
        "d a\"b"
    );
    assert_eq!(ok("{{ .e | default \"d\" }}", data.clone()), "d");
    assert_eq!(ok("{{ toYaml .y }}", data.clone()), "a: t\nb:\n- 1\n- x");
    assert_eq!(
        ok("x:{{ toYaml .y | indent 2 }}", data.clone()),
        "x:  a: t\n  b:\n  - 1\n  - x"
    );
    assert_eq!(
        ok("{{ \"hi\" | b64enc }} {{ \"h\" | b64enc }}", data.clone()),
        "aGk= aA=="
    );
    assert_eq!(ok("{{ \"  t \\n\" | trim }}", data.clone()), "t");
    assert_eq!(
        ok(
            "{{ and 1 \"\" }}|{{ or \"\" \"b\" }}|{{ not 0 }}",
            data.clone()
        ),
        "|b|true"
    );
    assert_eq!(
        ok("{{ ne .s \"x\" }} {{ eq 1 2 1 }}", data.clone()),
        "true true"
    );
    // `and` stops before evaluating what would fail.
    assert_eq!(ok("{{ and .n .n.deep }}", data.clone()), "");
    assert_eq!(
        ok(
            "{{ $c := deepCopy .y }}{{ $_ := unset $c \"a\" }}{{ toYaml $c }}|{{ .y.a }}",
            data.clone()
        ),
        "b:\n- 1\n- x|t"
    );
    let e = err("{{ required \"set .e!\" .e }}", data.clone());
    assert_eq!(e.to_string(), "t.yaml:1: set .e!");
    assert_eq!(ok("{{ required \"m\" .s }}", data), "a\"b");
}

#[test]
fn to_yaml_quotes_what_would_read_back_differently() {
    let v = json!({"a": "true", "b": "0.1.0", "c": "", "d": "x: y", "e": "line1\nline2\n", "f": "no", "g": [{"k": 1, "l": 2}], "h": {}, "i": 2103.0});
    assert_eq!(
        to_yaml(&v),
        "a: \"true\"\nb: \"0.1.0\"\nc: \"\"\nd: \"x: y\"\ne: |\n  line1\n  line2\nf: \"no\"\ng:\n- k: 1\n  l: 2\nh: {}\ni: 2103"
    );
    let back: Value = serde_saphyr::from_str(&to_yaml(&v)).unwrap();
    assert_eq!(back["e"], v["e"]);
    assert_eq!(back["a"], v["a"]);
}

#[test]
fn errors_name_the_file_line_and_construct() {
    let cases: &[(&str, &str)] = &[
        (
            "a\n{{ printf \"%s\" .x }}",
            "function \"printf\" is not supported",
        ),
        ("{{ block \"b\" . }}{{ end }}", "{{block}} is not supported"),
        (
            "{{ range .l }}{{ break }}{{ end }}",
            "{{break}} is not supported",
        ),
        (
            "{{ $x := 1 }}{{ $x = 2 }}",
            "assigning an existing variable",
        ),
        ("{{ if .a }}", "{{if}} has no matching {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ .a", "unclosed action"),
        ("{{ (.a).b }}", "field access on a parenthesized value"),
        (
            "{{ with .a }}{{ else with .b }}{{ end }}",
            "`else if`/`else with` inside {{with}}",
        ),
        ("{{ .a | .b }}", "only a function can receive a piped value"),
        ("{{ .s.x }}", "can't evaluate field x in .s (string)"),
        ("{{ .m.n.o }}", "nil pointer evaluating .m.n.o"),
        ("{{ .m }}", "printing a dict is not supported; use toYaml"),
        ("{{ eq .i 1.0 }}", "incompatible types for comparison"),
        ("{{ eq .m .m }}", "non-comparable type"),
        ("{{ nindent \"x\" .s }}", "nindent's width must be a number"),
        ("{{ not 1 2 }}", "not takes 1 argument(s), got 2"),
        ("{{ unset .m \"k\" }}", "unset takes a variable path"),
        ("{{ $x }}", "undefined variable $x"),
        ("{{ & }}", "unexpected character '&'"),
    ];
    for (text, want) in cases {
        let e = err(text, json!({"s": "str", "m": {}, "i": 1}));
        assert!(e.message.contains(want), "{text:?}: {e} lacks {want:?}");
        assert_eq!(e.file, "t.yaml");
    }
    assert_eq!(err("a\n{{ printf \"%s\" .x }}", json!({})).line, 2);
}
