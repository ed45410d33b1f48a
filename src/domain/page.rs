//! Keyset pagination arguments and results, shared by every list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::bounds::{MAX_CURSOR_CHARS, check_len};
use crate::error::{AppError, AppResult, FieldIssue};

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 20;
/// Largest page size; more is a validation error, never silently clamped.
pub const MAX_LIMIT: u64 = 100;

/// Which page to read: forward (`first`/`after`) or backward (`last`/`before`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
    pub backward: bool,
}

impl PageRequest {
    /// Validates Relay-style arguments (`first`/`after`, `last`/`before`): a page of 1 to
    /// [`MAX_LIMIT`] rows, cursors of at most [`MAX_CURSOR_CHARS`] characters.
    pub fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> AppResult<Self> {
        let check = |field: &str, n: i32| -> AppResult<u64> {
            match u64::try_from(n) {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(AppError::field(field, FieldIssue::OutOfRange)),
            }
        };
        let backward = last.is_some() || (before.is_some() && first.is_none());
        let limit = match (first, last) {
            (Some(_), Some(_)) => return Err(AppError::field("last", FieldIssue::InvalidFormat)),
            (Some(n), None) => check("first", n)?,
            (None, Some(n)) => check("last", n)?,
            (None, None) => DEFAULT_LIMIT,
        };
        for (field, c) in [("after", after), ("before", before)] {
            if let Some(c) = c {
                check_len(field, c, MAX_CURSOR_CHARS)?;
            }
        }
        Ok(Self {
            limit,
            after: after.map(|c| decode_cursor("after", c)).transpose()?,
            before: before.map(|c| decode_cursor("before", c)).transpose()?,
            backward,
        })
    }
}

/// A page of items, each with its cursor.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next: bool,
    pub has_previous: bool,
    pub total_count: u64,
}

/// An opaque cursor for a row id.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(field: &str, c: &str) -> AppResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| AppError::field(field, FieldIssue::InvalidFormat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert_eq!(PageRequest::parse(None, None, None, None).unwrap().limit, 20);
        assert!(PageRequest::parse(Some(101), None, None, None).is_err());
        assert!(PageRequest::parse(Some(0), None, None, None).is_err());
        assert!(PageRequest::parse(None, Some("!!"), None, None).is_err());
        let id = Uuid::now_v7();
        let p = PageRequest::parse(Some(5), Some(&encode_cursor(id)), None, None).unwrap();
        assert_eq!((p.limit, p.after, p.backward), (5, Some(id), false));
        assert!(PageRequest::parse(None, None, Some(3), None).unwrap().backward);
    }

    /// Fuzz: any string (and any mutation of a real cursor) decodes to an id or is a format
    /// error on its field, never a panic; a cursor decodes back to the id it was made from.
    #[test]
    fn fuzz_id_cursors() {
        use proptest::prelude::*;
        let real = prop::array::uniform16(any::<u8>()).prop_map(|b| encode_cursor(Uuid::from_bytes(b)));
        let input = prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=+/-]{0,40}",
            real.clone().prop_flat_map(crate::fuzz::mutated),
        ];
        crate::fuzz::run("cursor (id)", 4000, (input, real), |(c, good)| {
            match decode_cursor("after", &c) {
                Ok(id) => prop_assert_eq!(&encode_cursor(id), &c, "only the canonical form decodes"),
                Err(e) => prop_assert_eq!(e.fields.get("after"), Some(&FieldIssue::InvalidFormat)),
            }
            let _ = PageRequest::parse(None, Some(&c), None, Some(&c));
            prop_assert_eq!(encode_cursor(decode_cursor("after", &good).unwrap()), good);
            Ok(())
        });
    }
}
