//! GraphQL results' camelCase keys as the REST layer's snake_case, free-form JSON left as it is.

use serde_json::Value;

/// `camelCase` → `snake_case`; borrowed when there is nothing to rename.
pub fn camel_to_snake(s: &str) -> std::borrow::Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut prev: Option<char> = None;
    for (i, c) in s.char_indices() {
        // A capital starts a word, and so does a run of digits after a letter:
        // `usersActive30d` → `users_active_30d`.
        let starts_word =
            c.is_ascii_uppercase() || c.is_ascii_digit() && prev.is_some_and(|p| p.is_ascii_alphabetic());
        if starts_word {
            let o = out.get_or_insert_with(|| {
                let mut o = String::with_capacity(s.len() + 4);
                o.push_str(&s[..i]);
                o
            });
            o.push('_');
            o.push(c.to_ascii_lowercase());
        } else if let Some(o) = &mut out {
            o.push(c);
        }
        prev = Some(c);
    }
    out.map_or(std::borrow::Cow::Borrowed(s), std::borrow::Cow::Owned)
}

/// [`camel_to_snake`] of an owned key, kept as it is when it is snake_case already (most keys
/// of a result are one word, and a response renames every key it holds).
fn snake_key(k: String) -> String {
    let renamed = match camel_to_snake(&k) {
        std::borrow::Cow::Owned(renamed) => Some(renamed),
        std::borrow::Cow::Borrowed(_) => None,
    };
    renamed.unwrap_or(k)
}

/// Fields whose value is free-form JSON passed through verbatim: user `metadata`, and WebAuthn
/// `options` (standard WebAuthn JSON, camelCase by specification: `publicKey`, `pubKeyCredParams`),
/// and an SSO provider's `attributeMapping` (IdP attribute names are the IdP's).
pub(crate) const VERBATIM: [&str; 3] = ["metadata", "options", "attributeMapping"];

/// Renames every key of a GraphQL result to snake_case, leaving [`VERBATIM`] fields untouched.
pub fn to_snake(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if VERBATIM.contains(&k.as_str()) { v } else { to_snake(v) };
                    (snake_key(k), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(to_snake).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn casing() {
        assert_eq!(camel_to_snake("refreshExpiresIn"), "refresh_expires_in");
        assert_eq!(camel_to_snake("usersActive30d"), "users_active_30d");
        for k in ["id", "email", "refreshExpiresIn", "usersActive30d", "a1", "x_y", "ÉtéJour", "1a"] {
            assert_eq!(snake_key(k.to_owned()), camel_to_snake(k), "{k}");
        }
        let v = to_snake(json!({"firstName": "A", "metadata": {"keepMe": 1}, "list": [{"ipAddress": "x"}]}));
        assert_eq!(v, json!({"first_name": "A", "metadata": {"keepMe": 1}, "list": [{"ip_address": "x"}]}));
        let v = to_snake(json!({"ceremonyId": "c", "options": {"publicKey": {"pubKeyCredParams": []}}}));
        assert_eq!(v, json!({"ceremony_id": "c", "options": {"publicKey": {"pubKeyCredParams": []}}}));
    }
}
