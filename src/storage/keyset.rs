//! Keyset pagination over any entity, sorted by one column then the id: stable under inserts,
//! and as cheap on page 10,000 as on page 1 (an index on `(column, id)` serves every page).

use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::lists::{ListRequest, decode_cursor, encode_cursor};
use crate::domain::page::Page;
use crate::error::{AppError, AppResult, FieldIssue};

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

impl<E: EntityTrait> Keyset<E>
where
    E::Model: Sync,
{
    fn decode_cursor(&self, field: &str, c: &str) -> AppResult<(sea_orm::Value, Uuid)> {
        let (value, id) = decode_cursor(field, c)?;
        let value = (self.decode)(&value).ok_or_else(|| AppError::field(field, FieldIssue::InvalidFormat))?;
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
        // A page with no cursor that holds every row is its own count (a search that finds a
        // few rows of a million then costs one index scan, not two).
        let total_count = if after.is_none() && before.is_none() && !more {
            rows.len() as u64
        } else {
            counts.count(db, base.clone()).await?
        };
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
