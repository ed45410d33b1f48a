//! ETags (RFC 7644 §3.14) and errors (§3.12): a stale `If-Match` is a 412, a current
//! `If-None-Match` a 304; malformed filters, paths and bodies and taken names are SCIM errors
//! with the right `scimType`; hostile input is a 4xx, never a 500, and the server keeps answering.

use serde_json::{Value, json};

use super::{
    ERROR_URN, GROUP_URN, Provisioned, USER_URN, V2, assert_scim_error, create_group, create_user, enc,
    filter, listed, patch, provisioned_with, scim, send, user_doc,
};
use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(
    etags_guard_changes_and_spare_transfers,
    malformed_requests_are_scim_errors,
    concurrent_duplicates_are_uniqueness_conflicts,
    hostile_input_never_fails_the_server
);

/// `meta.version` is the `ETag`; PUT with a stale `If-Match` is refused (412) and changes
/// nothing, with the current one succeeds and moves the version; `If-None-Match` with the
/// current version is a 304; the same holds for groups and DELETE.
async fn etags_guard_changes_and_spare_transfers(b: Backend) {
    let Provisioned { app, token, .. } = provisioned_with(TestApp::spawn(b).await).await;
    let r =
        scim(&app, "POST", "/Users", &token, Some(user_doc("etag@example.com", "etag@example.com"))).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let v1 = r.body["meta"]["version"].as_str().expect("meta.version").to_owned();
    assert_eq!(r.header("etag"), v1, "ETag is meta.version on create");
    let got = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    assert_eq!(got.header("etag"), v1, "and on read");

    let url = format!("{V2}/Users/{id}");
    let auth = format!("Bearer {token}");
    let put = |given: &str| {
        let mut doc = user_doc("etag@example.com", "etag@example.com");
        doc["displayName"] = json!(given);
        Some(doc.to_string())
    };
    let r = send(&app, "PUT", &url, Some(&auth), put("first"), &[("if-match", &v1)]).await;
    assert_eq!(r.status, 200, "the current version: {}", r.body);
    let v2 = r.body["meta"]["version"].as_str().unwrap().to_owned();
    assert_ne!(v2, v1, "a change moves the version");
    assert_eq!(r.header("etag"), v2);
    let r = send(&app, "PUT", &url, Some(&auth), put("second"), &[("if-match", &v1)]).await;
    assert_scim_error(&r, 412, None, "a stale If-Match");
    let r = send(
        &app,
        "PATCH",
        &url,
        Some(&auth),
        Some(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}])).to_string()),
        &[("if-match", &v1)],
    )
    .await;
    assert_scim_error(&r, 412, None, "a stale If-Match on PATCH");
    let r = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    assert_eq!(
        (r.body["displayName"].as_str(), r.header("etag")),
        (Some("first"), v2.as_str()),
        "unchanged by the refusals"
    );

    let r = send(&app, "GET", &url, Some(&auth), None, &[("if-none-match", &v2)]).await;
    assert_eq!((r.status, r.header("etag")), (304, v2.as_str()), "not modified");
    let r = send(&app, "GET", &url, Some(&auth), None, &[("if-none-match", &v1)]).await;
    assert_eq!(r.status, 200, "an old version is sent in full");
    let r = send(&app, "PUT", &url, Some(&auth), put("third"), &[("if-match", "*")]).await;
    assert_eq!(r.status, 200, "If-Match: * matches any version: {}", r.body);
    let v3 = r.header("etag").to_owned();

    // Groups, and DELETE.
    let gid = create_group(&app, &token, "Tagged", None).await;
    let gurl = format!("{V2}/Groups/{gid}");
    let g = scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await;
    let gv = g.header("etag").to_owned();
    assert_eq!(g.body["meta"]["version"], gv.as_str());
    let other = create_user(&app, &token, "member@example.com").await;
    let ourl = format!("{V2}/Users/{other}");
    let ov = send(&app, "GET", &ourl, Some(&auth), None, &[]).await.header("etag").to_owned();
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": other}]}])).to_string();
    let r = send(&app, "PATCH", &gurl, Some(&auth), Some(add.clone()), &[("if-match", &gv)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.header("etag"), gv, "a member added moves the group's version");
    // The member's own representation changed too (its `groups`): no 304 for the old version.
    let r = send(&app, "GET", &ourl, Some(&auth), None, &[("if-none-match", &ov)]).await;
    assert_eq!(r.status, 200, "the member's groups changed since {ov}");
    assert_eq!(r.body["groups"][0]["value"], gid.as_str(), "{}", r.body);
    assert_ne!(r.header("etag"), ov, "a new group moves the member's version");
    let r = send(&app, "PATCH", &gurl, Some(&auth), Some(add), &[("if-match", &gv)]).await;
    assert_scim_error(&r, 412, None, "a stale group version");
    let r = send(&app, "DELETE", &url, Some(&auth), None, &[("if-match", &v1)]).await;
    assert_scim_error(&r, 412, None, "DELETE with a stale version");
    let r = send(&app, "DELETE", &url, Some(&auth), None, &[("if-match", &v3)]).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Malformed and refused requests, each a SCIM `Error` with its `scimType`.
async fn malformed_requests_are_scim_errors(b: Backend) {
    let Provisioned { app, token, .. } = provisioned_with(TestApp::spawn(b).await).await;
    let id = create_user(&app, &token, "taken@example.com").await;
    create_group(&app, &token, "Taken", None).await;
    let auth = format!("Bearer {token}");

    for (f, what) in [
        ("userName eq", "a comparison without a value"),
        ("userName eq \"unterminated", "an unterminated string"),
        ("userName zz \"x\"", "an unknown operator"),
        ("(userName eq \"x\"", "an unbalanced parenthesis"),
        ("userName eq \"x\" and", "a dangling and"),
        ("emails[type eq \"work\"", "an unclosed value filter"),
        ("nosuchattribute eq \"x\"", "an unknown attribute"),
        ("urn:example:unknown:2.0:User:thing eq \"x\"", "an unknown schema"),
        ("active eq \"yes\"", "a string for a boolean"),
        ("meta.created gt \"yesterday\"", "a date that is not one"),
    ] {
        let r = scim(&app, "GET", &format!("/Users?{}", filter(f)), &token, None).await;
        assert_scim_error(&r, 400, Some("invalidFilter"), what);
    }
    let r = scim(&app, "GET", &format!("/Groups?{}", filter("displayName eq")), &token, None).await;
    assert_scim_error(&r, 400, Some("invalidFilter"), "a group filter");

    // Uniqueness: the same userName, also in another case, with another email; a group name.
    let mut dup = user_doc("TAKEN@example.com", "someone-else@example.com");
    let r = scim(&app, "POST", "/Users", &token, Some(dup.clone())).await;
    assert_scim_error(&r, 409, Some("uniqueness"), "a userName differing in case");
    dup["userName"] = json!("taken@example.com");
    let r = scim(&app, "POST", "/Users", &token, Some(dup)).await;
    assert_scim_error(&r, 409, Some("uniqueness"), "the same userName");
    let other = create_user(&app, &token, "other@example.com").await;
    let r = scim(
        &app,
        "PATCH",
        &format!("/Users/{other}"),
        &token,
        Some(patch(json!([{"op": "replace", "path": "userName", "value": "Taken@Example.com"}]))),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"), "renamed onto a taken userName");
    let r =
        scim(&app, "POST", "/Groups", &token, Some(json!({"schemas": [GROUP_URN], "displayName": "taken"})))
            .await;
    assert_scim_error(&r, 409, Some("uniqueness"), "a group name differing in case");

    // Bodies.
    for (body, what) in
        [("{\"userName\": ", "truncated JSON"), ("not json at all", "not JSON"), ("", "an empty body")]
    {
        let r = send(&app, "POST", &format!("{V2}/Users"), Some(&auth), Some(body.to_owned()), &[]).await;
        assert_scim_error(&r, 400, Some("invalidSyntax"), what);
    }
    let r = scim(&app, "POST", "/Users", &token, Some(json!([1, 2]))).await;
    assert_scim_error(&r, 400, None, "an array for a user");
    let r = scim(
        &app,
        "POST",
        "/Users",
        &token,
        Some(json!({"schemas": [USER_URN], "emails": [{"value": "nouser@example.com"}]})),
    )
    .await;
    assert_scim_error(&r, 400, None, "no userName");
    let r = scim(&app, "POST", "/Users", &token, Some(json!({"schemas": [USER_URN], "userName": 42}))).await;
    assert_scim_error(&r, 400, None, "a number for userName");
    let r = scim(&app, "POST", "/Groups", &token, Some(json!({"schemas": [GROUP_URN]}))).await;
    assert_scim_error(&r, 400, None, "a group without displayName");

    // PATCH.
    let user = format!("/Users/{id}");
    for (ops, scim_type, what) in [
        (
            json!([{"op": "replace", "path": "nosuchattribute", "value": "x"}]),
            "invalidPath",
            "an unknown attribute",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
            "invalidPath",
            "a malformed path",
        ),
        (
            json!([{"op": "replace", "path": "name.nosuchpart", "value": "x"}]),
            "invalidPath",
            "an unknown sub-attribute",
        ),
        (json!([{"op": "frobnicate", "path": "displayName", "value": "x"}]), "invalidValue", "an unknown op"),
        (json!([{"op": "remove"}]), "noTarget", "remove without a path"),
        (
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
            "a string that is not a boolean",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "0190e5a8-1d1c-7a3a-8f3e-9a9a9a9a9a9a"}]),
            "mutability",
            "the read-only id",
        ),
    ] {
        let r = scim(&app, "PATCH", &user, &token, Some(patch(ops))).await;
        assert_scim_error(&r, 400, Some(scim_type), what);
    }
    let r = scim(&app, "PATCH", &user, &token, Some(json!({"schemas": [USER_URN], "Operations": []}))).await;
    assert_scim_error(&r, 400, None, "a PATCH without the PatchOp schema");
    let r = scim(&app, "GET", &user, &token, None).await;
    assert_eq!(r.body["meta"]["version"], "W/\"1\"", "no refused PATCH changed anything: {}", r.body);

    // Lists and routes.
    for (q, what) in [
        ("count=abc", "a count that is not a number"),
        ("startIndex=x", "a start that is not a number"),
        ("sortOrder=sideways", "an unknown sort order"),
        ("sortBy=nosuchattribute", "an unknown sort attribute"),
    ] {
        let r = scim(&app, "GET", &format!("/Users?{q}"), &token, None).await;
        assert_scim_error(&r, 400, Some("invalidValue"), what);
    }
    assert_scim_error(
        &scim(&app, "GET", "/Users/not-a-uuid", &token, None).await,
        404,
        None,
        "a malformed id",
    );
    assert_scim_error(
        &scim(&app, "GET", "/Users/0190e5a8-1d1c-7a3a-8f3e-9a9a9a9a9a9a", &token, None).await,
        404,
        None,
        "an unknown id",
    );
    assert_scim_error(&scim(&app, "GET", "/Nothing", &token, None).await, 404, None, "an unknown endpoint");
    assert_scim_error(
        &scim(&app, "DELETE", "/Users", &token, None).await,
        405,
        None,
        "DELETE on the collection",
    );
    let r = scim(&app, "POST", "/.search", &token, Some(json!({"filter": "nosuchattribute eq 1"}))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"), "a root search neither type understands");
    let r = scim(&app, "POST", "/.search", &token, Some(json!({"sortBy": "userName"}))).await;
    assert_eq!(r.status, 200, "a root search sorted on a user-only attribute: {}", r.body);
    let r = scim(&app, "POST", "/.search", &token, Some(json!({"sortBy": "nosuchattribute"}))).await;
    assert_scim_error(&r, 400, Some("invalidValue"), "a root search sorted on what neither type has");
    let r = send(&app, "POST", &format!("{V2}/Users"), Some(&auth), None, &[("content-type", "text/plain")])
        .await;
    assert!(r.status == 400 || r.status == 415, "a text body: {}", r.body);
    assert_eq!(r.body["schemas"], json!([ERROR_URN]));
}

/// Racing creates of one `userName`, one email or one group name: one wins (201), every other is
/// a 409 `uniqueness`, never a 5xx.
async fn concurrent_duplicates_are_uniqueness_conflicts(b: Backend) {
    let Provisioned { app, token, .. } = provisioned_with(TestApp::spawn(b).await).await;
    let docs: [(&str, Vec<Value>); 3] = [
        ("/Users", (0..6).map(|i| user_doc("race@acme.example", &format!("race{i}@acme.example"))).collect()),
        ("/Users", (0..6).map(|i| user_doc(&format!("racer-{i}"), "same@acme.example")).collect()),
        ("/Groups", (0..6).map(|_| json!({"schemas": [GROUP_URN], "displayName": "Race"})).collect()),
    ];
    for (path, docs) in docs {
        let tries = docs.into_iter().map(|d| scim(&app, "POST", path, &token, Some(d)));
        let rs = futures::future::join_all(tries).await;
        let created = rs.iter().filter(|r| r.status == 201).count();
        assert_eq!(
            created,
            1,
            "{path}: one wins: {:?}",
            rs.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>()
        );
        for r in rs.iter().filter(|r| r.status != 201) {
            assert_scim_error(r, 409, Some("uniqueness"), &format!("{path}: a racing duplicate"));
        }
    }
    let (users, _) = listed(&scim(&app, "GET", "/Users", &token, None).await);
    assert_eq!(users, 2);
}

/// Hostile input is answered with a 4xx (or a 200 for what is merely odd), never a 5xx, and
/// the server still answers afterwards.
async fn hostile_input_never_fails_the_server(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.scim_rate_limit_per_minute = 100_000).await;
    let Provisioned { app, token, .. } = provisioned_with(app).await;
    let id = create_user(&app, &token, "target@example.com").await;
    let gid = create_group(&app, &token, "Target", None).await;
    let auth = format!("Bearer {token}");
    let search = |f: String| {
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f})
                .to_string(),
        )
    };
    let ors =
        (0..10_000).map(|i| format!("userName eq \"u{i}@example.com\"")).collect::<Vec<_>>().join(" or ");
    let ands = (0..10_000).map(|i| format!("displayName co \"{i}\"")).collect::<Vec<_>>().join(" and ");
    let nots = format!("{}userName eq \"x\"{}", "not (".repeat(5_000), ")".repeat(5_000));
    let parens = format!("{}userName eq \"x\"{}", "(".repeat(10_000), ")".repeat(10_000));
    let brackets = format!("emails[{}value eq \"x\"{}]", "(".repeat(5_000), ")".repeat(5_000));
    let nested = format!("{}1{}", "{\"a\": ".repeat(10_000), "}".repeat(10_000));
    let huge = "x".repeat(900_000);
    let many_ops: Vec<Value> = (0..10_000)
        .map(|i| json!({"op": "replace", "path": "displayName", "value": format!("n{i}")}))
        .collect();
    let many_members: Vec<Value> =
        (0..10_000).map(|i| json!({"value": format!("0190e5a8-1d1c-7a3a-8f3e-{i:012}")})).collect();
    let deep_path = format!("{}.value", "emails".repeat(20_000));
    let user = format!("{V2}/Users/{id}");
    let group = format!("{V2}/Groups/{gid}");
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        ("POST", format!("{V2}/Users/.search"), search(ors.clone()), "a 10,000-term or"),
        ("POST", format!("{V2}/Groups/.search"), search(ands), "a 10,000-term and"),
        ("POST", format!("{V2}/Users/.search"), search(nots), "5,000 nested nots"),
        ("POST", format!("{V2}/Users/.search"), search(parens), "10,000 nested parentheses"),
        ("POST", format!("{V2}/Users/.search"), search(brackets), "5,000 parentheses in a value filter"),
        ("GET", format!("{V2}/Users?filter={}", enc(&ors[..ors.len().min(18_000)])), None, "a long or in the URL"),
        ("POST", format!("{V2}/Users"), Some(nested.clone()), "10,000 nested objects"),
        ("PATCH", user.clone(), Some(nested), "10,000 nested objects in a PATCH"),
        ("POST", format!("{V2}/Users"), Some(user_doc(&huge, "huge@example.com").to_string()), "a 900 KB userName"),
        ("POST", format!("{V2}/Users"), Some(user_doc("big@example.com", &format!("{}@example.com", "a".repeat(100_000))).to_string()), "a 100 KB email"),
        ("PATCH", user.clone(), Some(patch(json!(many_ops)).to_string()), "10,000 operations"),
        ("PATCH", group.clone(), Some(patch(json!([{"op": "add", "path": "members", "value": many_members}])).to_string()), "10,000 unknown members"),
        ("PATCH", user.clone(), Some(patch(json!([{"op": "replace", "path": deep_path, "value": "x"}])).to_string()), "a 120 KB path"),
        ("PATCH", user.clone(), Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": "all"}).to_string()), "Operations a string"),
        ("PATCH", user.clone(), Some(patch(json!([{"op": "add", "path": "emails", "value": {"value": null}}])).to_string()), "a null email"),
        ("PATCH", user.clone(), Some(patch(json!([{"op": "add", "value": [1, 2, 3]}])).to_string()), "a path-less add of an array"),
        ("PATCH", user.clone(), Some(patch(json!([{"op": "replace", "path": "emails[value eq \"\u{0}\"].value", "value": "\u{202e}"}])).to_string()), "NUL and bidi characters"),
        ("PUT", user.clone(), Some(json!({"schemas": [USER_URN], "userName": "target@example.com", "emails": "nope", "name": [], "active": "perhaps"}).to_string()), "wrong types everywhere"),
        ("PUT", group.clone(), Some(json!({"schemas": [GROUP_URN], "displayName": "Target", "members": [{"value": 7}, null, "x"]}).to_string()), "odd members"),
        ("GET", format!("{V2}/Users?startIndex=-5"), None, "startIndex=-5"),
        ("GET", format!("{V2}/Users?startIndex=9223372036854775807&count=200"), None, "the largest startIndex"),
        ("GET", format!("{V2}/Users?startIndex=99999999999999999999999"), None, "a startIndex past i64"),
        ("GET", format!("{V2}/Users?count=abc"), None, "count=abc"),
        ("GET", format!("{V2}/Users?count=-1"), None, "count=-1"),
        ("GET", format!("{V2}/Users?count=1000000000"), None, "a huge count"),
        ("GET", format!("{V2}/Users?count=1e3"), None, "count=1e3"),
        ("GET", format!("{V2}/Users?count=5&count=6"), None, "count twice"),
        ("GET", format!("{V2}/Users?sortBy={}", enc(&"a.".repeat(5_000))), None, "a long sortBy"),
        ("GET", format!("{V2}/Users?sortBy={}", enc("emails[type eq \"work\"]")), None, "a filter as sortBy"),
        ("GET", format!("{V2}/Users?attributes={}", enc(&"userName,".repeat(2_000))), None, "2,000 attributes"),
        ("GET", format!("{V2}/Users?excludedAttributes={}", enc("meta.nothing.deeper,urn:x:y:z")), None, "odd excludedAttributes"),
        ("GET", format!("{V2}/Users?filter=%FF%FE"), None, "a filter that is not UTF-8"),
        ("GET", format!("{V2}/Users?filter={}", enc("userName eq \"%\" or userName sw \"_\" or userName co \"\\\\\"")), None, "LIKE wildcards"),
        ("GET", format!("{V2}/Users?filter={}", enc("meta.lastModified gt \"+262142-12-01T00:00:00Z\"")), None, "a date past chrono's range"),
        ("GET", format!("{V2}/Users?filter={}", enc("userName eq 1e400")), None, "a number past f64"),
        ("GET", format!("{V2}/Users?filter={}", enc("groups.value eq \"not-a-uuid\" or id eq 12")), None, "ids that are not ids"),
        ("GET", format!("{V2}/Users/{}", "9".repeat(5_000)), None, "a 5,000-digit id"),
        ("GET", format!("{V2}/Users/%00"), None, "a NUL id"),
        ("POST", format!("{V2}/Users/.search"), Some(json!({"startIndex": "one", "count": 1e300}).to_string()), "a search with odd numbers"),
        ("POST", format!("{V2}/Users/.search"), Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": [1]}).to_string()), "attributes of numbers"),
    ];
    for (method, url, body, what) in cases {
        let r = send(&app, method, &url, Some(&auth), body, &[]).await;
        assert!(r.status < 500, "{what}: {method} answered {}: {}", r.status, r.body);
        if r.status >= 400 {
            assert_eq!(r.body["schemas"], json!([ERROR_URN]), "{what}: a SCIM error: {}", r.body);
        }
    }
    // A body over the limit: a SCIM 413, or the connection closed before the client finished
    // sending it (the server stops reading at the limit); either way no 5xx.
    let over = app.client.post(app.url(&format!("{V2}/Users"))).bearer_auth(&token);
    let over = over.header("content-type", "application/scim+json").body("x".repeat(2_000_000));
    if let Ok(r) = over.send().await {
        let r = crate::helpers::Resp::from(r).await;
        assert_scim_error(&r, 413, None, "a body over the limit");
    }
    // Still answering, with the data intact.
    let r = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    assert_eq!((r.status, r.body["userName"].as_str()), (200, Some("target@example.com")), "{}", r.body);
    assert_eq!(listed(&scim(&app, "GET", "/Groups", &token, None).await), (1, vec![gid]));
    let r = scim(&app, "GET", "/Users?startIndex=-5&count=1", &token, None).await;
    assert_eq!(
        (r.status, r.body["startIndex"].as_u64()),
        (200, Some(1)),
        "startIndex below 1 counts as 1: {}",
        r.body
    );
}
