//! The bounds of list and analytics parameters (README "Limits"): every date and free string a
//! client passes to a list or to analytics is checked here before it reaches a query or any
//! date arithmetic. Page sizes are bounded in [`super::page`], cursors in [`MAX_CURSOR_CHARS`].
//! A value outside its bound is a `VALIDATION_ERROR` (422) naming the field.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::error::{AppError, AppResult, FieldIssue};

/// Earliest year of a date or instant parameter (`from`, `to`).
pub const MIN_YEAR: i32 = 1970;
/// Latest year of a date or instant parameter.
pub const MAX_YEAR: i32 = 9999;
/// Longest `search` of a list, in characters (SQLite refuses `LIKE` patterns over 50,000 bytes).
pub const MAX_SEARCH_CHARS: usize = 200;
/// Longest exact-match filter string (`action`, `target_id` of the audit log), in characters.
pub const MAX_FILTER_CHARS: usize = 200;
/// Longest page cursor (`after`, `before`, REST `cursor`), in characters; the cursors Janua hands
/// out are far shorter.
pub const MAX_CURSOR_CHARS: usize = 1024;

/// Refuses `value` longer than `max` characters with `TooLong(max)` on `field`.
pub fn check_len(field: &str, value: &str, max: usize) -> AppResult<()> {
    // Counting stops at max + 1: a megabyte of text costs no more than a short one.
    if value.chars().nth(max).is_some() {
        Err(AppError::field(field, FieldIssue::TooLong(max)))
    } else {
        Ok(())
    }
}

/// Refuses a date outside [`MIN_YEAR`]`..=`[`MAX_YEAR`] with `OutOfRange` on `field`.
pub fn check_day(field: &str, d: NaiveDate) -> AppResult<NaiveDate> {
    if (MIN_YEAR..=MAX_YEAR).contains(&d.year()) {
        Ok(d)
    } else {
        Err(AppError::field(field, FieldIssue::OutOfRange))
    }
}

/// A `YYYY-MM-DD` date within the years allowed; empty → `None`.
pub fn day(field: &str, v: Option<&str>) -> AppResult<Option<NaiveDate>> {
    let Some(s) = v.filter(|s| !s.is_empty()) else { return Ok(None) };
    check_len(field, s, 64).map_err(|_| AppError::field(field, FieldIssue::InvalidFormat))?;
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| AppError::field(field, FieldIssue::InvalidFormat))?;
    check_day(field, d).map(Some)
}

/// An RFC 3339 instant or a `YYYY-MM-DD` date (its midnight, UTC) within the years allowed
/// (of its UTC date); empty → `None`.
pub fn instant(field: &str, v: Option<&str>) -> AppResult<Option<DateTime<Utc>>> {
    let Some(s) = v.filter(|s| !s.is_empty()) else { return Ok(None) };
    check_len(field, s, 64).map_err(|_| AppError::field(field, FieldIssue::InvalidFormat))?;
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => match day(field, Some(s))? {
            Some(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
            None => return Ok(None),
        },
    };
    check_day(field, t.date_naive())?;
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_lengths() {
        assert!(day("to", Some("2024-02-29")).unwrap().is_some());
        assert_eq!(day("to", Some("")).unwrap(), None);
        for far in ["-262143-01-01", "+262142-12-01", "1969-12-31", "+10000-01-01"] {
            assert_eq!(day("to", Some(far)).unwrap_err().fields["to"], FieldIssue::OutOfRange, "{far}");
        }
        assert_eq!(day("to", Some("2024-13-01")).unwrap_err().fields["to"], FieldIssue::InvalidFormat);
        assert!(instant("from", Some("2024-01-01T10:00:00+02:00")).unwrap().is_some());
        assert!(instant("from", Some("9999-12-31T23:00:00-10:00")).is_err());
        assert!(instant("from", Some("0001-01-01")).is_err());
        assert!(check_len("search", &"é".repeat(200), MAX_SEARCH_CHARS).is_ok());
        let e = check_len("search", &"%".repeat(201), MAX_SEARCH_CHARS).unwrap_err();
        assert_eq!(e.fields["search"], FieldIssue::TooLong(200));
    }
}
