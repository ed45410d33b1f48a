//! What a list request asks for, independent of storage: the page (size and cursors), the sort
//! order checked against each list's fields, the cursor format, and `search` patterns. The
//! paginator that reads pages is `storage::keyset`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use uuid::Uuid;

use super::bounds::{MAX_CURSOR_CHARS, MAX_SEARCH_CHARS, check_len};
use super::page::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::error::{AppError, AppResult, FieldIssue};

/// Which page to read, with raw cursors (decoded against the list's sort).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    pub limit: u64,
    pub after: Option<String>,
    pub before: Option<String>,
    pub backward: bool,
}

impl ListRequest {
    /// Validates Relay-style arguments: a page of 1 to [`MAX_LIMIT`] rows, cursors of at most
    /// [`MAX_CURSOR_CHARS`] characters.
    pub fn parse(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Self> {
        let check = |field: &str, n: i32| -> AppResult<u64> {
            match u64::try_from(n) {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(AppError::field(field, FieldIssue::OutOfRange)),
            }
        };
        let limit = match (first, last) {
            (Some(_), Some(_)) => return Err(AppError::field("last", FieldIssue::InvalidFormat)),
            (Some(n), None) => check("first", n)?,
            (None, Some(n)) => check("last", n)?,
            (None, None) => DEFAULT_LIMIT,
        };
        for (field, c) in [("after", &after), ("before", &before)] {
            if let Some(c) = c {
                check_len(field, c, MAX_CURSOR_CHARS)?;
            }
        }
        Ok(Self { limit, backward: last.is_some() || (before.is_some() && first.is_none()), after, before })
    }
}

/// Sort fields of user lists (`/users`, `/admin/users`).
pub const USER_SORTS: [&str; 3] = ["created_at", "email", "name"];
/// Sort fields of organization lists (`/organizations`, `/admin/organizations`).
pub const ORG_SORTS: [&str; 2] = ["created_at", "name"];
/// Sort fields of the caller's sessions.
pub const SESSION_SORTS: [&str; 2] = ["created_at", "last_active_at"];

/// A sort order `field:asc|desc`, checked against the list's allowed fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortSpec {
    pub field: String,
    pub desc: bool,
}

impl SortSpec {
    /// Parses `field[:asc|:desc]`; unknown fields or directions are a validation error on `sort`.
    pub fn parse(raw: Option<&str>, allowed: &[&str], default: (&str, bool)) -> AppResult<Self> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self { field: default.0.to_owned(), desc: default.1 });
        };
        let (field, dir) = raw.split_once(':').unwrap_or((raw, "asc"));
        let desc = match dir {
            "asc" => false,
            "desc" => true,
            _ => return Err(AppError::field("sort", FieldIssue::InvalidFormat)),
        };
        if !allowed.contains(&field) {
            return Err(AppError::field("sort", FieldIssue::InvalidFormat));
        }
        Ok(Self { field: field.to_owned(), desc })
    }
}

/// The cursor of a row with sort value `value` (as lists hand them out).
pub fn encode_cursor(value: Value, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(json!([value, id]).to_string())
}

/// A cursor back as its sort value and row id; a malformed one is a format error on `field`.
pub fn decode_cursor(field: &str, c: &str) -> AppResult<(Value, Uuid)> {
    let bad = || AppError::field(field, FieldIssue::InvalidFormat);
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let id = v[1].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(bad)?;
    Ok((v[0].clone(), id))
}

/// A timestamp as a cursor value (full precision, so equal values compare equal).
pub fn time_value(t: &chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// A `search` (at most [`MAX_SEARCH_CHARS`] characters, trimmed, lower-cased) as a
/// `LIKE … ESCAPE '\'` pattern that matches it anywhere; `None` when it is blank.
pub fn like_pattern(search: &str) -> AppResult<Option<String>> {
    Ok(search_term(search)?.map(|t| format!("%{}%", like_escape(&t))))
}

/// The FTS5 trigram query (a quoted phrase: every character literal) that finds every row
/// whose column holds `term` (already trimmed and lower-cased; the tokenizer folds case) as a
/// substring, among others; `None` below three characters, which trigrams cannot find.
pub fn trigram_phrase(term: &str) -> Option<String> {
    (term.chars().count() >= 3).then(|| format!("\"{}\"", term.replace('"', "\"\"")))
}

/// A `search` trimmed and lower-cased, as [`like_pattern`] matches it; `None` when blank.
pub fn search_term(search: &str) -> AppResult<Option<String>> {
    check_len("search", search, MAX_SEARCH_CHARS)?;
    let s = search.trim();
    Ok((!s.is_empty()).then(|| s.to_lowercase()))
}

/// Escapes `%`, `_` and `\` of `s` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_specs() {
        let allowed = ["created_at", "email"];
        assert_eq!(
            SortSpec::parse(None, &allowed, ("created_at", true)).unwrap(),
            SortSpec { field: "created_at".into(), desc: true }
        );
        assert!(!SortSpec::parse(Some("email"), &allowed, ("created_at", true)).unwrap().desc);
        assert!(SortSpec::parse(Some("email:desc"), &allowed, ("created_at", true)).unwrap().desc);
        assert!(SortSpec::parse(Some("password_hash:asc"), &allowed, ("created_at", true)).is_err());
        assert!(SortSpec::parse(Some("email:sideways"), &allowed, ("created_at", true)).is_err());
        assert_eq!(like_pattern(" A_b% ").unwrap().as_deref(), Some("%a\\_b\\%%"));
        assert_eq!(like_pattern("  ").unwrap(), None);
        assert!(like_pattern(&"\\".repeat(25_000)).is_err());
        assert_eq!(search_term(" A_b% ").unwrap().as_deref(), Some("a_b%"));
        assert_eq!(trigram_phrase("ab"), None);
        assert_eq!(trigram_phrase("a\"b").as_deref(), Some("\"a\"\"b\""));
        assert_eq!(trigram_phrase("é_%").as_deref(), Some("\"é_%\""));
    }

    /// Fuzz: any string, and mutations of real cursors, decode to a (value, id) or are a format
    /// error on their field; a sort spec is one of the allowed fields or refused.
    #[test]
    fn fuzz_list_cursors_and_sorts() {
        use proptest::prelude::*;
        let value = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
            (0i64..4_000_000_000).prop_map(|s| time_value(&chrono::DateTime::from_timestamp(s, 0).unwrap())),
        ];
        let real = (value, prop::array::uniform16(any::<u8>()))
            .prop_map(|(v, b)| encode_cursor(v, Uuid::from_bytes(b)));
        let input = prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,80}",
            // base64 of arbitrary JSON-looking text
            "[\\[\\]{}\",:0-9a-f-]{0,60}".prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
            real.prop_flat_map(crate::fuzz::mutated),
        ];
        let sorts = ["created_at", "email"];
        crate::fuzz::run("cursor (list)", 4000, input, |c| {
            match decode_cursor("before", &c) {
                Ok((v, id)) => prop_assert_eq!(decode_cursor("before", &encode_cursor(v, id)).unwrap().1, id),
                Err(e) => prop_assert_eq!(e.fields.get("before"), Some(&FieldIssue::InvalidFormat)),
            }
            let _ = ListRequest::parse(Some(1), Some(c.clone()), None, None);
            let _ = like_pattern(&c);
            if let Ok(s) = SortSpec::parse(Some(&c), &sorts, ("created_at", true)) {
                prop_assert!(sorts.contains(&s.field.as_str()));
            }
            Ok(())
        });
    }
}
