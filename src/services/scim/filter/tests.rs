//! Tests of the SCIM filter and path parser (`super`).

use super::*;

fn p(name: &str) -> AttrPath {
    AttrPath { urn: None, name: name.into(), sub: None }
}

fn eq(name: &str, value: &str) -> Filter {
    Filter::Compare(p(name), CompareOp::Eq, CompValue::Str(value.into()))
}

fn bx(f: Filter) -> Box<Filter> {
    Box::new(f)
}

#[test]
fn every_operator_case_insensitively() {
    let ops = [
        ("eq", CompareOp::Eq),
        ("NE", CompareOp::Ne),
        ("Co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("eW", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("GE", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    for (word, op) in ops {
        let f = parse_filter(&format!("userName {word} \"x\"")).expect(word);
        assert_eq!(f, Filter::Compare(p("userName"), op, CompValue::Str("x".into())));
    }
    assert_eq!(parse_filter("title PR"), Ok(Filter::Present(p("title"))));
}

#[test]
fn literals() {
    let f = parse_filter("active eq TRUE").expect("bool");
    assert_eq!(f, Filter::Compare(p("active"), CompareOp::Eq, CompValue::Bool(true)));
    let f = parse_filter("active ne false").expect("bool");
    assert_eq!(f, Filter::Compare(p("active"), CompareOp::Ne, CompValue::Bool(false)));
    let f = parse_filter("x eq null").expect("null");
    assert_eq!(f, Filter::Compare(p("x"), CompareOp::Eq, CompValue::Null));
    let f = parse_filter("age gt -1.5e3").expect("number");
    let n = serde_json::Number::from_f64(-1500.0).expect("finite");
    assert_eq!(f, Filter::Compare(p("age"), CompareOp::Gt, CompValue::Num(n)));
    let f = parse_filter("age le 42").expect("number");
    assert_eq!(f, Filter::Compare(p("age"), CompareOp::Le, CompValue::Num(42.into())));
    let f = parse_filter(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).expect("date");
    let path = AttrPath { urn: None, name: "meta".into(), sub: Some("lastModified".into()) };
    assert_eq!(f, Filter::Compare(path, CompareOp::Gt, CompValue::Str("2011-05-13T04:42:34Z".into())));
}

#[test]
fn string_escapes() {
    let f = parse_filter(r#"displayName eq "a\"b\\c\u00e9\n""#).expect("escapes");
    assert_eq!(f, eq("displayName", "a\"b\\c\u{e9}\n"));
    let f = parse_filter(r#"displayName eq "\ud83d\ude00""#).expect("surrogate pair");
    assert_eq!(f, eq("displayName", "\u{1F600}"));
    let f = parse_filter(r#"displayName eq "and or not ( ) [ ]""#).expect("keywords in strings");
    assert_eq!(f, eq("displayName", "and or not ( ) [ ]"));
}

#[test]
fn precedence_not_and_or() {
    let f = parse_filter(r#"a eq "1" or b eq "2" and c eq "3""#).expect("precedence");
    let and = Filter::And(bx(eq("b", "2")), bx(eq("c", "3")));
    assert_eq!(f, Filter::Or(bx(eq("a", "1")), bx(and)));
    let f = parse_filter(r#"a eq "1" AND b eq "2" Or c eq "3""#).expect("keywords");
    let and = Filter::And(bx(eq("a", "1")), bx(eq("b", "2")));
    assert_eq!(f, Filter::Or(bx(and), bx(eq("c", "3"))));
    let f = parse_filter(r#"not (a eq "1") and b eq "2""#).expect("not binds tighter");
    assert_eq!(f, Filter::And(bx(Filter::Not(bx(eq("a", "1")))), bx(eq("b", "2"))));
}

#[test]
fn chains_are_left_associative() {
    let f = parse_filter(r#"a eq "1" or b eq "2" or c eq "3""#).expect("chain");
    let left = Filter::Or(bx(eq("a", "1")), bx(eq("b", "2")));
    assert_eq!(f, Filter::Or(bx(left), bx(eq("c", "3"))));
}

#[test]
fn parentheses_and_not() {
    let f = parse_filter(r#"(a eq "1" or b eq "2") and NOT(c pr)"#).expect("parens");
    let or = Filter::Or(bx(eq("a", "1")), bx(eq("b", "2")));
    let not = Filter::Not(bx(Filter::Present(p("c"))));
    assert_eq!(f, Filter::And(bx(or), bx(not)));
    let f = parse_filter(r#"((a eq "1"))"#).expect("double parens");
    assert_eq!(f, eq("a", "1"));
}

#[test]
fn value_filters() {
    let f = parse_filter(r#"emails[type eq "work" and value co "@x"]"#).expect("value path");
    let inner = Filter::And(
        bx(eq("type", "work")),
        bx(Filter::Compare(p("value"), CompareOp::Co, CompValue::Str("@x".into()))),
    );
    assert_eq!(f, Filter::ValuePath(p("emails"), bx(inner)));
    let f =
        parse_filter(r#"userType eq "E" and emails[type eq "work"] or ims[type eq "xmpp"]"#).expect("mixed");
    let and =
        Filter::And(bx(eq("userType", "E")), bx(Filter::ValuePath(p("emails"), bx(eq("type", "work")))));
    assert_eq!(f, Filter::Or(bx(and), bx(Filter::ValuePath(p("ims"), bx(eq("type", "xmpp"))))));
    let f = parse_filter(r#"members[not (value eq "1")]"#).expect("not inside");
    assert_eq!(f, Filter::ValuePath(p("members"), bx(Filter::Not(bx(eq("value", "1"))))));
}

#[test]
fn urn_paths() {
    let f = parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#).expect("core urn");
    let path = AttrPath {
        urn: Some(crate::services::scim::schema::USER_URN.into()),
        name: "userName".into(),
        sub: None,
    };
    assert_eq!(f, Filter::Compare(path, CompareOp::Sw, CompValue::Str("J".into())));
    let f =
        parse_filter(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26""#)
            .expect("extension urn with sub");
    let path = AttrPath {
        urn: Some(crate::services::scim::schema::ENTERPRISE_URN.into()),
        name: "manager".into(),
        sub: Some("value".into()),
    };
    assert_eq!(f, Filter::Compare(path, CompareOp::Eq, CompValue::Str("26".into())));
    let f = parse_filter(r#"members.$ref eq "x""#).expect("$ref");
    let path = AttrPath { urn: None, name: "members".into(), sub: Some("$ref".into()) };
    assert_eq!(f, Filter::Compare(path, CompareOp::Eq, CompValue::Str("x".into())));
}

#[test]
fn malformed_filters_are_errors() {
    let deep = format!("{}a pr{}", "(".repeat(40), ")".repeat(40));
    let chain = vec!["a pr"; 10_000].join(" or ");
    let many = vec!["a pr"; 101].join(" and ");
    let long = format!("a eq \"{}\"", "x".repeat(5000));
    let not_bomb = format!("{}a pr{}", "not (".repeat(33), ")".repeat(33));
    let cases: &[&str] = &[
        "",
        "   ",
        r#"userName eq "x"#,
        "userName eq",
        r#"eq "x""#,
        r#"userName xx "x""#,
        r#"(userName eq "x""#,
        r#"userName eq "x")"#,
        r#"userName eq "x" garbage"#,
        r#"userName eq "x" and"#,
        r#"userName eq "\u12G4""#,
        r#"userName eq "\x""#,
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]]"#,
        r#"emails[type eq "work" and x[y eq "1"]]"#,
        r#"emails[urn:a:b:type eq "1"]"#,
        r#"emails.value[type eq "1"]"#,
        "age gt 1.2.3",
        "age gt 12abc",
        "age gt 01",
        "age gt -",
        "age gt +1",
        "age gt work",
        "1abc pr",
        "user:name pr",
        "a.b.c pr",
        "urn:x pr",
        "not a pr",
        "()",
        "a pr or or b pr",
        "[a pr]",
        "aaa\u{fc} pr",
        "\u{fc}\u{fc}\u{fc} pr",
        "a eq \"\u{1}\"",
        &deep,
        &chain,
        &many,
        &long,
        &not_bomb,
    ];
    for case in cases {
        let result = parse_filter(case);
        assert!(result.is_err(), "accepted {case:?}: {result:?}");
    }
}

#[test]
fn errors_name_the_position() {
    let e = parse_filter(r#"userName xx "x""#).expect_err("bad operator");
    assert_eq!(e.message, "'xx' is not an operator at position 9");
    let e = parse_filter(r#"a eq "1" )"#).expect_err("trailing");
    assert!(e.message.ends_with("at position 9"), "{}", e.message);
}

#[test]
fn limits_allow_what_they_promise() {
    let deep = format!("{}a pr{}", "(".repeat(32), ")".repeat(32));
    assert!(parse_filter(&deep).is_ok());
    let hundred = vec!["a pr"; 100].join(" or ");
    assert!(parse_filter(&hundred).is_ok());
}

/// A deterministic stream of pseudo-random numbers (no dependency needed).
fn lcg(seed: &mut u64) -> usize {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

#[test]
fn random_inputs_never_panic() {
    let pieces = [
        "(", ")", "[", "]", "\"", "\\", "a", "emails", " eq ", " and ", " or ", "not ", " pr", "1", "-", ".",
        ":", "urn:", "\"x\"", "\\u12", "\u{e9}", " ", "$ref", "value", "type", "]", "0.5e", "true", "null",
    ];
    let mut seed = 7;
    let obj = serde_json::json!({ "emails": [{ "value": "x", "type": "work" }], "a": 1 });
    for _ in 0..20_000 {
        let len = lcg(&mut seed) % 24;
        let input: String = (0..len).map(|_| pieces[lcg(&mut seed) % pieces.len()]).collect();
        if let Ok(f) = parse_filter(&input) {
            matches(&f, &obj, &|_| false);
        }
        let _ = parse_path(&input);
    }
}

#[test]
fn patch_paths() {
    let path = parse_path("name.givenName").expect("sub");
    assert_eq!(path.attr, AttrPath { urn: None, name: "name".into(), sub: Some("givenName".into()) });
    assert_eq!((path.filter, path.sub), (None, None));
    let path = parse_path(r#"emails[type eq "work"].value"#).expect("filter and sub");
    assert_eq!(path.attr, p("emails"));
    assert_eq!(path.filter, Some(eq("type", "work")));
    assert_eq!(path.sub.as_deref(), Some("value"));
    let path = parse_path(r#"members[value eq "2819c223"]"#).expect("filter");
    assert_eq!(path.filter, Some(eq("value", "2819c223")));
    assert_eq!(path.sub, None);
    let path =
        parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").expect("urn");
    assert_eq!(path.attr.urn.as_deref(), Some(crate::services::scim::schema::ENTERPRISE_URN));
    assert_eq!(path.attr.name, "department");
    let path = parse_path(crate::services::scim::schema::ENTERPRISE_URN).expect("bare extension");
    assert_eq!(path.attr.urn.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"));
    assert_eq!(path.attr.name, "User");
}

#[test]
fn malformed_paths_are_errors() {
    for case in [
        "",
        "emails[",
        r#"emails[type eq "work"]value"#,
        r#"emails[type eq "work"].value.x"#,
        r#"emails[type eq "work"].1"#,
        r#"emails[type eq "work"] x"#,
        r#"emails.value[type eq "work"]"#,
        "name givenName",
        "(name)",
        "name.",
        ".name",
    ] {
        assert!(parse_path(case).is_err(), "accepted {case:?}");
    }
}

/// Filters from the RFC 7644 grammar: comparisons and `pr` on plain, dotted, URN-qualified
/// and value paths, joined by `and`/`or`, negated, parenthesized (any case of keyword).
fn grammar_filter() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let attr = prop::sample::select(vec![
        "userName",
        "name.givenName",
        "emails",
        "emails.value",
        "meta.lastModified",
        "active",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "members.value",
    ]);
    let op = prop::sample::select(vec!["eq", "NE", "co", "Sw", "ew", "gt", "ge", "lt", "LE"]);
    let value = prop_oneof![
        "[a-zA-Z0-9@. _-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just(r#""quote \" back \\ slash \u00e9""#.to_owned()),
        Just("true".to_owned()),
        Just("False".to_owned()),
        Just("null".to_owned()),
        any::<i32>().prop_map(|n| n.to_string()),
        any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
    ];
    let sub = prop::sample::select(vec!["type", "value", "primary", "display"]);
    let comparison = prop_oneof![
        (attr.clone(), op.clone(), value.clone()).prop_map(|(a, o, v)| format!("{a} {o} {v}")),
        attr.prop_map(|a| format!("{a} pr")),
        (prop::sample::select(vec!["emails", "members", "groups"]), sub, op, value)
            .prop_map(|(a, s, o, v)| format!("{a}[{s} {o} {v}]")),
    ];
    comparison.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(vec!["and", "OR", "And", "or"]), inner.clone())
                .prop_map(|(a, j, b)| format!("{a} {j} {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

/// Fuzz: arbitrary input, grammar filters and their mutations parse or are refused, never
/// panic; every grammar filter parses; whatever parses evaluates against a user without
/// panicking. PATCH paths likewise.
#[test]
fn fuzz_filters_and_paths() {
    use proptest::prelude::*;
    let doc = serde_json::json!({
        "userName": "bjensen", "active": true, "name": {"givenName": "Barbara"},
        "emails": [{"value": "b@example.com", "type": "work", "primary": true}, "stray", 7, null],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"}, "members": {"value": [1, 2]},
    });
    let input = prop_oneof![
        2 => any::<String>(),
        1 => r#"[a-zA-Z.:\[\]()" ]{0,60}"#,
        3 => grammar_filter(),
        4 => grammar_filter().prop_flat_map(crate::fuzz::mutated),
    ];
    crate::fuzz::run("SCIM filter", 4000, (input, grammar_filter()), |(raw, valid)| {
        if let Ok(f) = parse_filter(&raw) {
            let _ = matches(&f, &doc, &|_| false);
            let _ = matches(&f, &doc, &|_| true);
        }
        let parsed = parse_filter(&valid);
        prop_assert!(parsed.is_ok(), "refused {}: {:?}", valid, parsed);
        let _ = matches(&parsed.unwrap(), &doc, &|_| false);
        Ok(())
    });
    let path = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "displayName",
            "name.givenName",
            r#"emails[type eq "work"].value"#,
            r#"members[value eq "u1"]"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        ])
        .prop_flat_map(|p| crate::fuzz::mutated(p.to_owned())),
        grammar_filter().prop_map(|f| format!("emails[{f}].value")),
    ];
    crate::fuzz::run("SCIM PATCH path", 4000, path, |p| {
        if let Ok(path) = parse_path(&p)
            && let Some(f) = &path.filter
        {
            let _ = matches(f, &doc, &|_| false);
        }
        Ok(())
    });
}
