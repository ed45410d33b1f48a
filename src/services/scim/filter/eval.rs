//! Evaluation of a parsed filter against one JSON object.

use super::{AttrPath, CompValue, CompareOp, Filter};
use serde_json::Value;
use std::borrow::Cow;

/// Evaluates a filter against one JSON object (used for value filters inside PATCH, on one
/// resource — never for listing). Attribute names match case-insensitively; a path with a URN looks
/// inside the object's member of that URN when there is one. `case_exact` tells, for a path, whether
/// string comparisons are case-sensitive; inside `attr[…]` it is asked about `attr.sub`.
/// `ne` is the negation of `eq` (true when the attribute is absent); `eq null` means absent.
pub fn matches(f: &Filter, obj: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    eval(f, obj, None, case_exact)
}

fn eval(f: &Filter, obj: &Value, parent: Option<&AttrPath>, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match f {
        Filter::Present(p) => any_value(obj, p, &mut |v| is_present(v)),
        Filter::Compare(p, op, value) => {
            let exact = case_exact(&qualified(parent, p));
            compare_all(obj, p, *op, value, exact)
        }
        Filter::And(a, b) => eval(a, obj, parent, case_exact) && eval(b, obj, parent, case_exact),
        Filter::Or(a, b) => eval(a, obj, parent, case_exact) || eval(b, obj, parent, case_exact),
        Filter::Not(a) => !eval(a, obj, parent, case_exact),
        Filter::ValuePath(p, inner) => any_value(obj, p, &mut |e| eval(inner, e, Some(p), case_exact)),
    }
}

/// The full path of a value filter's relative path: `attr.sub`.
fn qualified<'a>(parent: Option<&AttrPath>, p: &'a AttrPath) -> Cow<'a, AttrPath> {
    match parent {
        Some(parent) => Cow::Owned(AttrPath {
            urn: parent.urn.clone(),
            name: parent.name.clone(),
            sub: Some(p.name.clone()),
        }),
        None => Cow::Borrowed(p),
    }
}

/// A member of an object, its name matched case-insensitively.
fn get_ci<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Whether `f` holds for one of the values at a path (arrays flattened, nulls left out).
fn any_value(obj: &Value, p: &AttrPath, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let container = p.urn.as_deref().and_then(|urn| get_ci(obj, urn)).unwrap_or(obj);
    any_of(get_ci(container, &p.name), &mut |v| match &p.sub {
        Some(sub) => any_of(get_ci(v, sub), f),
        None => f(v),
    })
}

/// Whether `f` holds for the value or one of its elements, nulls left out.
fn any_of(v: Option<&Value>, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items.iter().filter(|v| !v.is_null()).any(f),
        Some(v) => f(v),
    }
}

/// RFC 7644 §3.4.2.2 `pr`: a non-empty value, or a complex value with a non-empty member.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(members) => members.values().any(is_present),
        _ => true,
    }
}

fn compare_all(obj: &Value, p: &AttrPath, op: CompareOp, value: &CompValue, exact: bool) -> bool {
    match (op, value) {
        (CompareOp::Eq, CompValue::Null) => !any_value(obj, p, &mut |_| true),
        (CompareOp::Ne, CompValue::Null) => any_value(obj, p, &mut |_| true),
        (CompareOp::Ne, _) => !any_value(obj, p, &mut |v| compare(v, CompareOp::Eq, value, exact)),
        _ => any_value(obj, p, &mut |v| compare(v, op, value, exact)),
    }
}

fn compare(v: &Value, op: CompareOp, value: &CompValue, exact: bool) -> bool {
    match (v, value) {
        (Value::String(a), CompValue::Str(b)) => compare_str(a, op, b, exact),
        (Value::Number(a), CompValue::Num(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).and_then(|o| ordered(o, op)).unwrap_or(false),
            _ => false,
        },
        (Value::Bool(a), CompValue::Bool(b)) => op == CompareOp::Eq && a == b,
        _ => false,
    }
}

/// String comparison; ordering compares instants when both sides are RFC 3339 date-times.
fn compare_str(a: &str, op: CompareOp, b: &str, exact: bool) -> bool {
    if let Some(result) = compare_instants(a, op, b) {
        return result;
    }
    if op == CompareOp::Eq || op == CompareOp::Ne {
        let equal = if exact { a == b } else { equal_ignoring_case(a, b) };
        return equal == (op == CompareOp::Eq);
    }
    let (a, b) = if exact { (a.to_string(), b.to_string()) } else { (a.to_lowercase(), b.to_lowercase()) };
    match op {
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        _ => ordered(a.cmp(&b), op).unwrap_or(false),
    }
}

/// Case-insensitive equality, without allocating for ASCII strings (ids, most names).
fn equal_ignoring_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.to_lowercase() == b.to_lowercase()
}

/// An ordering operator on two date-times; None unless both look like and parse as RFC 3339.
fn compare_instants(a: &str, op: CompareOp, b: &str) -> Option<bool> {
    // A cheap shape check first: ids such as UUIDs also start with digits.
    let dated = |s: &str| s.len() >= 20 && s.as_bytes()[4] == b'-' && matches!(s.as_bytes()[10], b'T' | b't');
    if !matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le) || !dated(a) || !dated(b)
    {
        return None;
    }
    let x = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let y = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    ordered(x.cmp(&y), op)
}

/// The outcome of an ordering operator (`eq` included); None for the string-only operators.
fn ordered(o: std::cmp::Ordering, op: CompareOp) -> Option<bool> {
    match op {
        CompareOp::Eq => Some(o.is_eq()),
        CompareOp::Gt => Some(o.is_gt()),
        CompareOp::Ge => Some(o.is_ge()),
        CompareOp::Lt => Some(o.is_lt()),
        CompareOp::Le => Some(o.is_le()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_filter;
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "userName": "BJensen",
            "externalId": "AbC",
            "active": true,
            "age": 42,
            "name": { "givenName": "Barbara", "familyName": "" },
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@home.example", "type": "home" }
            ],
            "meta": { "lastModified": "2011-05-13T04:42:34Z" },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Tour" }
        })
    }

    fn exact(p: &AttrPath) -> bool {
        p.name.eq_ignore_ascii_case("externalId")
    }

    fn check(filter: &str) -> bool {
        let f = parse_filter(filter).expect(filter);
        matches(&f, &user(), &exact)
    }

    #[test]
    fn string_operators_respect_case_exactness() {
        assert!(check(r#"userName eq "bjensen""#));
        assert!(check(r#"USERNAME Eq "BJENSEN""#));
        assert!(!check(r#"externalId eq "abc""#));
        assert!(check(r#"externalId eq "AbC""#));
        assert!(check(r#"userName co "jen""#));
        assert!(check(r#"userName sw "bj""#));
        assert!(check(r#"userName ew "SEN""#));
        assert!(!check(r#"userName ew "bj""#));
        assert!(check(r#"userName gt "a""#));
        assert!(check(r#"userName lt "c""#));
        assert!(check(r#"userName ge "bjensen""#));
        assert!(check(r#"userName le "bjensen""#));
    }

    #[test]
    fn ne_is_the_negation_of_eq() {
        assert!(check(r#"userName ne "x""#));
        assert!(!check(r#"userName ne "bjensen""#));
        assert!(check(r#"nickName ne "x""#));
        assert!(check("nickName eq null"));
        assert!(check("userName ne null"));
        assert!(!check("userName eq null"));
    }

    #[test]
    fn presence() {
        assert!(check("userName pr"));
        assert!(check("name pr"));
        assert!(!check("name.familyName pr"));
        assert!(!check("nickName pr"));
        assert!(check("emails pr"));
    }

    #[test]
    fn numbers_booleans_and_dates() {
        assert!(check("active eq true"));
        assert!(!check("active eq false"));
        assert!(!check("active gt false"));
        assert!(!check(r#"active eq "true""#));
        assert!(check("age gt 41.5"));
        assert!(check("age eq 42"));
        assert!(!check("age lt 42"));
        assert!(!check(r#"age eq "42""#));
        assert!(check(r#"meta.lastModified gt "2011-05-13T00:00:00Z""#));
        assert!(check(r#"meta.lastModified lt "2011-05-13T06:00:00+01:00""#));
        assert!(!check(r#"meta.lastModified gt "2011-05-13T06:00:00+01:00""#));
    }

    #[test]
    fn multi_valued_and_value_paths() {
        assert!(check(r#"emails.type eq "home""#));
        assert!(!check(r#"emails co "example.com""#));
        assert!(check(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!check(r#"emails[type eq "home" and primary eq true]"#));
        assert!(check(r#"emails[not (type eq "work")]"#));
        assert!(check(r#"emails[type eq "home"] and not (userName eq "x")"#));
    }

    #[test]
    fn value_path_comparisons_ask_about_the_qualified_path() {
        let asked = std::cell::RefCell::new(Vec::new());
        let f = parse_filter(r#"emails[type eq "WORK"]"#).expect("filter");
        let seen = |p: &AttrPath| {
            asked.borrow_mut().push(p.clone());
            true
        };
        assert!(!matches(&f, &user(), &seen));
        let want = AttrPath { urn: None, name: "emails".into(), sub: Some("type".into()) };
        assert!(asked.borrow().iter().all(|p| *p == want));
    }

    #[test]
    fn urn_paths_look_inside_the_extension() {
        assert!(check(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour""#));
        assert!(check(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#));
        assert!(!check(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#));
    }

    #[test]
    fn logic() {
        assert!(check(r#"userName eq "x" or active eq true"#));
        assert!(!check(r#"userName eq "x" and active eq true"#));
        assert!(check(r#"not (userName eq "x")"#));
        assert!(!matches(&parse_filter("a pr").expect("f"), &json!("not an object"), &exact));
    }
}
