//! Keyset pagination over any entity, sorted by one column then the id: stable under inserts,
//! and as cheap on page 10,000 as on page 1 (an index on `(column, id)` serves every page).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::bounds::{MAX_CURSOR_CHARS, MAX_SEARCH_CHARS, check_len};
use super::page::{DEFAULT_LIMIT, MAX_LIMIT, Page};
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

/// Row counts of large lists, remembered briefly. Counting a million rows costs more than
/// reading a page of them, so `total_count` is exact below [`CountCache::EXACT_BELOW`] rows and
/// may lag by up to [`CountCache::TTL`] above it; page contents are always exact.
#[derive(Clone, Default)]
pub struct CountCache(std::sync::Arc<dashmap::DashMap<String, (u64, std::time::Instant)>>);

impl CountCache {
    /// Lists smaller than this are always counted exactly.
    pub const EXACT_BELOW: u64 = 10_000;
    /// How long a large count is reused.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(5);

    async fn count<E: EntityTrait>(&self, db: &impl ConnectionTrait, q: Select<E>) -> AppResult<u64>
    where
        E::Model: Sync,
    {
        use sea_orm::QueryTrait;
        let key = q.build(db.get_database_backend()).to_string();
        if let Some(hit) = self.0.get(&key)
            && hit.1.elapsed() < Self::TTL
        {
            return Ok(hit.0);
        }
        let n = q.count(db).await?;
        if n >= Self::EXACT_BELOW {
            if self.0.len() > 10_000 {
                self.0.clear();
            }
            self.0.insert(key, (n, std::time::Instant::now()));
        }
        Ok(n)
    }
}

/// How one list sorts: the sort column, the id column, and how to read and write cursor values.
pub struct Keyset<E: EntityTrait> {
    pub column: E::Column,
    pub id: E::Column,
    pub desc: bool,
    /// The sort value of a row, as stored in its cursor.
    pub value_of: fn(&E::Model) -> Value,
    pub id_of: fn(&E::Model) -> Uuid,
    /// A cursor's sort value back as a database value (`None`: malformed cursor).
    pub decode: fn(&Value) -> Option<sea_orm::Value>,
}

/// The cursor of a row with sort value `value` (as lists hand them out).
pub fn encode_cursor(value: Value, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(json!([value, id]).to_string())
}

impl<E: EntityTrait> Keyset<E>
where
    E::Model: Sync,
{
    fn decode_cursor(&self, field: &str, c: &str) -> AppResult<(sea_orm::Value, Uuid)> {
        let bad = || AppError::field(field, FieldIssue::InvalidFormat);
        let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let id = v[1].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(bad)?;
        let value = (self.decode)(&v[0]).ok_or_else(bad)?;
        Ok((value, id))
    }

    /// Rows strictly after the cursor in list order (before it when `reverse`).
    fn beyond(&self, value: &sea_orm::Value, id: Uuid, reverse: bool) -> Condition {
        // A row-value comparison `(column, id) < (v, id0)`: SQLite and PostgreSQL both turn it
        // into a range on the `(column, id)` index, so a deep page does not scan what precedes it.
        let row = Expr::tuple([Expr::col(self.column), Expr::col(self.id)]);
        let cursor = Expr::tuple([Expr::val(value.clone()), Expr::val(id)]);
        if self.desc != reverse { row.lt(cursor).into_condition() } else { row.gt(cursor).into_condition() }
    }

    /// Reads one page of `base` (already filtered), with `total_count` over all pages.
    pub async fn page(
        &self,
        db: &impl ConnectionTrait,
        counts: &CountCache,
        base: Select<E>,
        req: &ListRequest,
    ) -> AppResult<Page<E::Model>> {
        let after = req.after.as_deref().map(|c| self.decode_cursor("after", c)).transpose()?;
        let before = req.before.as_deref().map(|c| self.decode_cursor("before", c)).transpose()?;
        let total_count = counts.count(db, base.clone()).await?;
        let mut q = base.clone();
        if let Some((v, id)) = &after {
            q = q.filter(self.beyond(v, *id, false));
        }
        if let Some((v, id)) = &before {
            q = q.filter(self.beyond(v, *id, true));
        }
        let ascending = self.desc == req.backward;
        let order = if ascending { Order::Asc } else { Order::Desc };
        let mut rows = q
            .order_by(self.column, order.clone())
            .order_by(self.id, order)
            .limit(req.limit + 1)
            .all(db)
            .await?;
        let more = rows.len() as u64 > req.limit;
        rows.truncate(req.limit as usize);
        if req.backward {
            rows.reverse();
        }
        // Is there anything on the other side of the cursor we came from?
        let other_side = |c: &Option<(sea_orm::Value, Uuid)>, reverse: bool| {
            let cond = c.as_ref().map(|(v, id)| {
                Condition::any()
                    .add(self.beyond(v, *id, reverse))
                    .add(Expr::col(self.id).eq(*id).into_condition())
            });
            let base = base.clone();
            async move {
                match cond {
                    Some(cond) => Ok::<bool, AppError>(base.filter(cond).limit(1).count(db).await? > 0),
                    None => Ok(false),
                }
            }
        };
        let (has_next, has_previous) = if req.backward {
            (other_side(&before, false).await?, more)
        } else {
            (more, other_side(&after, true).await?)
        };
        Ok(Page {
            items: rows
                .into_iter()
                .map(|m| (encode_cursor((self.value_of)(&m), (self.id_of)(&m)), m))
                .collect(),
            has_next,
            has_previous,
            total_count,
        })
    }
}

/// Decodes an RFC 3339 timestamp cursor value.
pub fn decode_time(v: &Value) -> Option<sea_orm::Value> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc).into())
}

/// Decodes a string cursor value.
pub fn decode_string(v: &Value) -> Option<sea_orm::Value> {
    v.as_str().map(|s| s.to_owned().into())
}

/// Decodes a UUID cursor value.
pub fn decode_uuid(v: &Value) -> Option<sea_orm::Value> {
    v.as_str().and_then(|s| Uuid::parse_str(s).ok()).map(Into::into)
}

/// A timestamp as a cursor value (full precision, so equal values compare equal).
pub fn time_value(t: &chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// A `search` (at most [`MAX_SEARCH_CHARS`] characters, trimmed, lower-cased) as a
/// `LIKE … ESCAPE '\'` pattern that matches it anywhere; `None` when it is blank.
pub fn like_pattern(search: &str) -> AppResult<Option<String>> {
    check_len("search", search, MAX_SEARCH_CHARS)?;
    let s = search.trim();
    Ok((!s.is_empty()).then(|| format!("%{}%", like_escape(&s.to_lowercase()))))
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
    }
}
