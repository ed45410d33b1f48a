//! The bound on nesting that every GraphQL and JSON entry checks before any recursive parser
//! or validator sees its input (API.md §1, README "Limits").
//!
//! The GraphQL parser and validator recurse once per level of a nested list or object value, and
//! a few thousand levels overflow a worker thread's stack, which aborts the whole process.
//! Selections are bounded by the schema's depth limit only after parsing, so the text itself is
//! scanned here first: [`check_document`] counts `[`, `{` and `(` outside strings, block strings
//! and comments; [`check_json`] counts `[` and `{` of a JSON text outside strings;
//! [`check_request`] does both for a request that was already decoded (its variables and
//! extensions walked without recursion). Each scan is one pass over the bytes, with no recursion.
//!
//! Entries: `POST /graphql` (body, then query), `GET /graphql` (query, variables, extensions),
//! every `/graphql/ws` message and its `subscribe`/`start` payload, and every REST JSON body.

use async_graphql::Value as GqlValue;
use serde_json::json;

use crate::error::{AppError, ErrorCode};

/// Deepest nesting accepted: of brackets, braces and parentheses together in a GraphQL document,
/// of arrays and objects in a JSON text (a request's envelope counts as one level). Legitimate
/// documents stay far below it (the selection depth limit defaults to 15); serde_json alone
/// stops at 128, and a few hundred levels already exhaust the parser's stack.
pub const MAX_NESTING: usize = 64;

/// The error for input nested deeper than [`MAX_NESTING`]: `BAD_REQUEST` (400), the limit in
/// `details.max_nesting`.
pub fn too_deep() -> AppError {
    AppError::new(ErrorCode::BadRequest).with_details(json!({ "max_nesting": MAX_NESTING }))
}

/// Refuses a GraphQL document whose `[`/`{`/`(` nesting (outside strings, block strings and
/// comments) exceeds [`MAX_NESTING`]. Unbalanced text passes; the parser refuses it.
pub fn check_document(text: &str) -> Result<(), AppError> {
    let b = text.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the next `"""` not escaped as `\"""`.
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' && b[i] != b'\r' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep());
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses a JSON text whose array/object nesting exceeds [`MAX_NESTING`]; call it before
/// `serde_json` reads the text. Malformed text passes; `serde_json` refuses it.
pub fn check_json(bytes: &[u8]) -> Result<(), AppError> {
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep());
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Checks a decoded request: its document, and the nesting of its variables and extensions
/// counted as in a `POST` body (`{"variables": {"v": [` puts that list at level 3), so the same
/// request passes or fails alike in a body, a query string and a WebSocket message.
pub fn check_request(request: &async_graphql::Request) -> Result<(), AppError> {
    check_document(&request.query)?;
    let values = request.variables.values().chain(request.extensions.values());
    let mut stack: Vec<(&GqlValue, usize)> = values.map(|v| (v, 3)).collect();
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &GqlValue>> = match v {
            GqlValue::List(items) => Box::new(items.iter()),
            GqlValue::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth > MAX_NESTING {
            return Err(too_deep());
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn documents_are_bounded_outside_strings_and_comments() {
        let ok = format!("{{ users(first: {}) {{ totalCount }} }}", nested("[", "1", "]", MAX_NESTING - 2));
        assert!(check_document(&ok).is_ok());
        let deep = format!("{{ users(first: {}) {{ totalCount }} }}", nested("[", "1", "]", MAX_NESTING - 1));
        assert_eq!(check_document(&deep).unwrap_err().code, ErrorCode::BadRequest);
        assert!(check_document(&format!("{{ a(s: \"{}\") }}", "[".repeat(10_000))).is_ok());
        assert!(check_document(&format!("{{ a(s: \"\\\"{}\") }}", "{".repeat(10_000))).is_ok());
        assert!(check_document(&format!("{{ a(s: \"\"\"\\\"\"\"{}\"\"\") }}", "(".repeat(10_000))).is_ok());
        assert!(check_document(&format!("# {}\n{{ a }}", "{".repeat(10_000))).is_ok());
        assert!(check_document(&nested("{a:", "1", "}", 10_000)).is_err());
        // A string cut short by a line break ends there: what follows is counted.
        assert!(check_document(&format!("{{ a(s: \"x\n{}", "[".repeat(100))).is_err());
    }

    #[test]
    fn json_is_bounded_outside_strings() {
        assert!(check_json(nested("[", "1", "]", MAX_NESTING).as_bytes()).is_ok());
        assert!(check_json(nested("[", "1", "]", MAX_NESTING + 1).as_bytes()).is_err());
        assert!(check_json(nested("{\"a\":", "1", "}", 10_000).as_bytes()).is_err());
        assert!(check_json(format!("{{\"q\": \"\\\"{}\"}}", "[".repeat(10_000)).as_bytes()).is_ok());
    }

    #[test]
    fn decoded_variables_count_from_the_envelope() {
        let vars = |n: usize| {
            let v: serde_json::Value = serde_json::from_str(&nested("[", "1", "]", n)).unwrap();
            async_graphql::Request::new("{ a }")
                .variables(async_graphql::Variables::from_json(json!({ "v": v })))
        };
        assert!(check_request(&vars(MAX_NESTING - 2)).is_ok());
        assert!(check_request(&vars(MAX_NESTING - 1)).is_err());
    }
}
