//! A parsed SCIM filter and sort turned into database conditions: every list is one indexed
//! query (plus its count), never rows read and filtered in memory. Attributes that have no
//! column answer `invalidFilter` (naming the attribute) rather than a slow scan.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LikeExpr, Query, SimpleExpr};
use sea_orm::{EntityName, IdenStatic};
use uuid::Uuid;

use entities::{scim_group, scim_group_member, scim_user, scim_user_email};

use super::filter::{AttrPath, CompValue, CompareOp, Filter};
use super::{ScimType, scim_error};
use crate::error::AppResult;

/// Which resource a filter or sort is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    User,
    Group,
}

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:user";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:group";
const JANUA_GROUP: &str = "urn:janua:params:scim:schemas:extension:2.0:group";

/// How a column compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Text compared case-insensitively; `stored_lower`: the column already holds lower case.
    Text {
        case_exact: bool,
        stored_lower: bool,
    },
    Bool,
    Time,
    Id,
}

/// Where an attribute lives.
#[derive(Clone, Debug)]
enum Target {
    Column(SimpleExpr, Kind),
    /// A sub-attribute of a user's `emails` (`value`, `type`, `primary`), through `scim_user_emails`.
    Emails,
    /// `groups` of a user / `members` of a group, through `scim_group_members`.
    Links,
}

fn col<C: IdenStatic + Copy + 'static, E: EntityName + Default>(e: E, c: C) -> SimpleExpr {
    let _ = e;
    Expr::col((Alias::new(E::default().table_name()), c))
}

fn text(case_exact: bool) -> Kind {
    Kind::Text { case_exact, stored_lower: false }
}

/// Splits a path into (schema URN lower-cased or "", attribute, sub-attribute), all lower case.
fn parts(p: &AttrPath) -> (String, String, Option<String>) {
    let urn = p.urn.as_deref().unwrap_or("").to_ascii_lowercase();
    (urn, p.name.to_ascii_lowercase(), p.sub.as_deref().map(str::to_ascii_lowercase))
}

fn invalid_attr(p: &AttrPath) -> crate::error::AppError {
    let name = match &p.sub {
        Some(s) => format!("{}.{s}", p.name),
        None => p.name.clone(),
    };
    scim_error(ScimType::InvalidFilter, format!("the attribute '{name}' cannot be filtered on"))
}

fn target(r: Resource, p: &AttrPath) -> AppResult<Target> {
    use scim_group::Column as G;
    use scim_user::Column as U;
    let (urn, name, sub) = parts(p);
    let core = match r {
        Resource::User => urn.is_empty() || urn == CORE_USER,
        Resource::Group => urn.is_empty() || urn == CORE_GROUP,
    };
    let sub = sub.as_deref();
    let t = match (r, core, name.as_str(), sub) {
        (_, true, "meta", Some("created")) => Target::Column(
            match r {
                Resource::User => col(scim_user::Entity, U::CreatedAt),
                Resource::Group => col(scim_group::Entity, G::CreatedAt),
            },
            Kind::Time,
        ),
        (_, true, "meta", Some("lastmodified")) => Target::Column(
            match r {
                Resource::User => col(scim_user::Entity, U::UpdatedAt),
                Resource::Group => col(scim_group::Entity, G::UpdatedAt),
            },
            Kind::Time,
        ),
        (Resource::User, true, "id", None) => Target::Column(col(scim_user::Entity, U::UserId), Kind::Id),
        (Resource::User, true, "username", None) => Target::Column(
            col(scim_user::Entity, U::UserNameLc),
            Kind::Text { case_exact: false, stored_lower: true },
        ),
        (Resource::User, true, "externalid", None) => {
            Target::Column(col(scim_user::Entity, U::ExternalId), text(true))
        }
        (Resource::User, true, "displayname", None) => {
            Target::Column(col(scim_user::Entity, U::DisplayName), text(false))
        }
        (Resource::User, true, "name", Some("givenname")) => {
            Target::Column(col(scim_user::Entity, U::GivenName), text(false))
        }
        (Resource::User, true, "name", Some("familyname")) => {
            Target::Column(col(scim_user::Entity, U::FamilyName), text(false))
        }
        (Resource::User, true, "active", None) => {
            Target::Column(col(scim_user::Entity, U::Active), Kind::Bool)
        }
        (Resource::User, true, "locale", None) => {
            Target::Column(col(scim_user::Entity, U::Locale), text(false))
        }
        (Resource::User, true, "emails", _) => Target::Emails,
        (Resource::User, true, "groups", _) => Target::Links,
        (Resource::User, _, "employeenumber", None) if urn.is_empty() || urn == ENTERPRISE => {
            Target::Column(col(scim_user::Entity, U::EmployeeNumber), text(true))
        }
        (Resource::User, _, "department", None) if urn.is_empty() || urn == ENTERPRISE => {
            Target::Column(col(scim_user::Entity, U::Department), text(false))
        }
        (Resource::User, _, "manager", Some("value") | None) if urn.is_empty() || urn == ENTERPRISE => {
            Target::Column(col(scim_user::Entity, U::ManagerId), text(true))
        }
        (Resource::Group, true, "id", None) => Target::Column(col(scim_group::Entity, G::Id), Kind::Id),
        (Resource::Group, true, "displayname", None) => Target::Column(
            col(scim_group::Entity, G::DisplayNameLc),
            Kind::Text { case_exact: false, stored_lower: true },
        ),
        (Resource::Group, true, "externalid", None) => {
            Target::Column(col(scim_group::Entity, G::ExternalId), text(true))
        }
        (Resource::Group, true, "members", _) => Target::Links,
        (Resource::Group, _, "role", None) if urn.is_empty() || urn == JANUA_GROUP => {
            Target::Column(col(scim_group::Entity, G::Role), text(false))
        }
        _ => return Err(invalid_attr(p)),
    };
    Ok(t)
}

/// Escapes `%`, `_` and `\` for a LIKE pattern (escape character `\`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn bad_value(what: &str) -> crate::error::AppError {
    scim_error(ScimType::InvalidFilter, format!("the value does not suit {what}"))
}

/// `column op value` for one column.
fn compare(column: SimpleExpr, kind: Kind, op: CompareOp, v: &CompValue) -> AppResult<SimpleExpr> {
    use CompareOp::*;
    match kind {
        Kind::Bool => {
            let CompValue::Bool(b) = v else { return Err(bad_value("a boolean attribute")) };
            match op {
                Eq => Ok(column.eq(*b)),
                Ne => Ok(column.ne(*b)),
                _ => Err(scim_error(ScimType::InvalidFilter, "a boolean attribute compares with eq or ne")),
            }
        }
        Kind::Id => {
            let CompValue::Str(s) = v else { return Err(bad_value("an id")) };
            let Ok(id) = Uuid::parse_str(s) else {
                // A well-formed filter for an id that cannot exist: no match.
                return Ok(match op {
                    Ne => Expr::val(true).eq(true),
                    _ => Expr::val(true).eq(false),
                });
            };
            match op {
                Eq => Ok(column.eq(id)),
                Ne => Ok(column.ne(id)),
                _ => Err(scim_error(ScimType::InvalidFilter, "an id compares with eq or ne")),
            }
        }
        Kind::Time => {
            let CompValue::Str(s) = v else { return Err(bad_value("a date-time attribute")) };
            let t: DateTime<Utc> = DateTime::parse_from_rfc3339(s)
                .map_err(|_| bad_value("a date-time attribute (RFC 3339)"))?
                .with_timezone(&Utc);
            Ok(match op {
                Eq => column.eq(t),
                Ne => column.ne(t),
                Gt => column.gt(t),
                Ge => column.gte(t),
                Lt => column.lt(t),
                Le => column.lte(t),
                Co | Sw | Ew => {
                    return Err(scim_error(
                        ScimType::InvalidFilter,
                        "a date-time compares with eq ne gt ge lt le",
                    ));
                }
            })
        }
        Kind::Text { case_exact, stored_lower } => {
            let s = match v {
                CompValue::Str(s) => s.clone(),
                CompValue::Num(n) => n.to_string(),
                CompValue::Bool(_) | CompValue::Null => return Err(bad_value("a string attribute")),
            };
            let (lhs, s) = if case_exact {
                (column, s)
            } else if stored_lower {
                (column, s.to_lowercase())
            } else {
                (SimpleExpr::from(sea_orm::sea_query::Func::lower(column)), s.to_lowercase())
            };
            let like = |p: String| lhs.clone().like(LikeExpr::new(p).escape('\\'));
            Ok(match op {
                Eq => lhs.eq(s),
                Ne => lhs.clone().ne(s).or(lhs.is_null()),
                Co => like(format!("%{}%", like_escape(&s))),
                Sw => like(format!("{}%", like_escape(&s))),
                Ew => like(format!("%{}", like_escape(&s))),
                Gt => lhs.gt(s),
                Ge => lhs.gte(s),
                Lt => lhs.lt(s),
                Le => lhs.lte(s),
            })
        }
    }
}

fn always(b: bool) -> SimpleExpr {
    Expr::val(1).eq(if b { 1 } else { 0 })
}

/// The condition of `f` over the rows of `r` (`scim_users` or `scim_groups`).
pub fn condition(r: Resource, f: &Filter) -> AppResult<SimpleExpr> {
    // Left-associated chains (`a or b or c …`) are walked without recursion on the long side.
    Ok(match f {
        Filter::And(a, b) => condition(r, a)?.and(condition(r, b)?),
        Filter::Or(a, b) => condition(r, a)?.or(condition(r, b)?),
        Filter::Not(a) => condition(r, a)?.not(),
        Filter::Present(p) => match target(r, p)? {
            Target::Column(c, Kind::Text { .. }) => c.clone().is_not_null().and(c.ne("")),
            Target::Column(c, _) => c.is_not_null(),
            Target::Emails => exists_email(r, None)?,
            Target::Links => exists_link(r, None)?,
        },
        Filter::Compare(p, op, v) => match target(r, p)? {
            Target::Column(c, k) => {
                if *v == CompValue::Null {
                    return Ok(match op {
                        CompareOp::Eq => c.is_null(),
                        CompareOp::Ne => c.is_not_null(),
                        _ => return Err(bad_value("null (eq or ne only)")),
                    });
                }
                compare(c, k, *op, v)?
            }
            Target::Emails => {
                let sub = p.sub.clone().unwrap_or_else(|| "value".into());
                let inner = Filter::Compare(AttrPath { urn: None, name: sub, sub: None }, *op, v.clone());
                exists_email(r, Some(&inner))?
            }
            Target::Links => {
                let sub = p.sub.clone().unwrap_or_else(|| "value".into());
                let inner = Filter::Compare(AttrPath { urn: None, name: sub, sub: None }, *op, v.clone());
                exists_link(r, Some(&inner))?
            }
        },
        Filter::ValuePath(p, inner) => match target(r, p)? {
            Target::Emails => exists_email(r, Some(inner))?,
            Target::Links => exists_link(r, Some(inner))?,
            Target::Column(..) => {
                return Err(scim_error(ScimType::InvalidFilter, format!("'{}' is not multi-valued", p.name)));
            }
        },
    })
}

/// A condition on one `scim_user_emails` row (paths relative to an email).
fn email_condition(f: &Filter) -> AppResult<SimpleExpr> {
    use scim_user_email::Column as E;
    Ok(match f {
        Filter::And(a, b) => email_condition(a)?.and(email_condition(b)?),
        Filter::Or(a, b) => email_condition(a)?.or(email_condition(b)?),
        Filter::Not(a) => email_condition(a)?.not(),
        Filter::Present(p) | Filter::Compare(p, ..) => {
            let (c, k) = match p.name.to_ascii_lowercase().as_str() {
                "value" => (
                    col(scim_user_email::Entity, E::ValueLc),
                    Kind::Text { case_exact: false, stored_lower: true },
                ),
                "type" => (
                    col(scim_user_email::Entity, E::Kind),
                    Kind::Text { case_exact: false, stored_lower: true },
                ),
                "primary" => (col(scim_user_email::Entity, E::IsPrimary), Kind::Bool),
                _ => return Err(invalid_attr(p)),
            };
            match f {
                Filter::Compare(_, op, v) => compare(c, k, *op, v)?,
                _ if k == Kind::Bool => c.eq(true),
                _ => c.is_not_null(),
            }
        }
        Filter::ValuePath(p, _) => return Err(invalid_attr(p)),
    })
}

fn exists_email(r: Resource, inner: Option<&Filter>) -> AppResult<SimpleExpr> {
    if r != Resource::User {
        return Err(scim_error(ScimType::InvalidFilter, "groups have no emails"));
    }
    let mut q = Query::select();
    q.expr(Expr::val(1)).from(scim_user_email::Entity).and_where(
        col(scim_user_email::Entity, scim_user_email::Column::ScimUserId)
            .equals((Alias::new(scim_user::Entity.table_name()), scim_user::Column::Id)),
    );
    if let Some(f) = inner {
        q.and_where(email_condition(f)?);
    }
    Ok(Expr::exists(q.to_owned()))
}

/// A condition on one `scim_group_members` row: `value` is the other side's id (a group's for
/// a user's `groups`, a user's for a group's `members`).
fn link_condition(r: Resource, f: &Filter) -> AppResult<SimpleExpr> {
    use scim_group_member::Column as M;
    Ok(match f {
        Filter::And(a, b) => link_condition(r, a)?.and(link_condition(r, b)?),
        Filter::Or(a, b) => link_condition(r, a)?.or(link_condition(r, b)?),
        Filter::Not(a) => link_condition(r, a)?.not(),
        Filter::Present(p) | Filter::Compare(p, ..) if p.name.eq_ignore_ascii_case("value") => {
            let c = match r {
                Resource::User => col(scim_group_member::Entity, M::GroupId),
                Resource::Group => col(scim_group_member::Entity, M::UserId),
            };
            match f {
                Filter::Compare(_, op, v) => compare(c, Kind::Id, *op, v)?,
                _ => always(true),
            }
        }
        Filter::Present(p) | Filter::Compare(p, ..) | Filter::ValuePath(p, _) => return Err(invalid_attr(p)),
    })
}

fn exists_link(r: Resource, inner: Option<&Filter>) -> AppResult<SimpleExpr> {
    use scim_group_member::Column as M;
    let mut q = Query::select();
    q.expr(Expr::val(1)).from(scim_group_member::Entity);
    match r {
        Resource::User => q.and_where(
            col(scim_group_member::Entity, M::ScimUserId)
                .equals((Alias::new(scim_user::Entity.table_name()), scim_user::Column::Id)),
        ),
        Resource::Group => q.and_where(
            col(scim_group_member::Entity, M::GroupId)
                .equals((Alias::new(scim_group::Entity.table_name()), scim_group::Column::Id)),
        ),
    };
    if let Some(f) = inner {
        q.and_where(link_condition(r, f)?);
    }
    Ok(Expr::exists(q.to_owned()))
}

/// The column a `sortBy` names (RFC 7644 §3.4.2.3); the id breaks ties.
pub fn sort_column(r: Resource, sort_by: &str) -> AppResult<SimpleExpr> {
    let p = super::filter::parse_path(sort_by)
        .map_err(|e| scim_error(ScimType::InvalidValue, format!("sortBy: {}", e.message)))?;
    if p.filter.is_some() {
        return Err(scim_error(ScimType::InvalidValue, "sortBy takes an attribute, not a filter"));
    }
    match target(r, &p.attr) {
        Ok(Target::Column(c, _)) => Ok(c),
        _ => Err(scim_error(ScimType::InvalidValue, format!("sortBy: '{sort_by}' cannot be sorted on"))),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;
    use crate::services::scim::filter::parse_filter;

    fn sql(r: Resource, f: &str) -> String {
        let c = condition(r, &parse_filter(f).expect("parses")).expect("translates");
        let mut q = Query::select();
        q.expr(Expr::val(1)).and_where(c);
        q.to_string(PostgresQueryBuilder)
    }

    #[test]
    fn user_name_is_compared_lower_cased_on_its_indexed_column() {
        let s = sql(Resource::User, r#"userName eq "Alice@Example.COM""#);
        assert!(s.contains(r#""scim_users"."user_name_lc" = 'alice@example.com'"#), "{s}");
    }

    #[test]
    fn value_filters_become_exists_subqueries() {
        let s = sql(Resource::User, r#"emails[type eq "work" and value co "@x.org"]"#);
        assert!(s.contains("EXISTS"), "{s}");
        assert!(s.contains(r#""scim_user_emails"."kind" = 'work'"#), "{s}");
        assert!(s.contains(r#"LIKE '%@x.org%' ESCAPE"#), "{s}");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        let s = sql(Resource::User, r#"userName sw "a_b%""#);
        assert!(s.contains(r"E'a\\_b\\%%' ESCAPE"), "{s}");
        let q = {
            let mut q = Query::select();
            q.expr(Expr::val(1))
                .and_where(condition(Resource::User, &parse_filter(r#"userName co "x""#).unwrap()).unwrap());
            q.to_string(SqliteQueryBuilder)
        };
        assert!(q.contains("ESCAPE"), "{q}");
    }

    #[test]
    fn extension_attributes_and_groups_translate() {
        let s = sql(
            Resource::User,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D" or not (active eq false)"#,
        );
        assert!(s.contains("LOWER") && s.contains("NOT"), "{s}");
        let g = sql(Resource::Group, r#"members[value eq "0190e5a8-1d1c-7a3a-8f3e-9a9a9a9a9a9a"]"#);
        assert!(g.contains(r#""scim_group_members"."user_id""#), "{g}");
    }

    #[test]
    fn unfilterable_attributes_and_bad_values_are_invalid_filters() {
        for (r, f) in [
            (Resource::User, r#"nickName eq "x""#),
            (Resource::User, r#"active eq "yes""#),
            (Resource::User, r#"meta.created gt "yesterday""#),
            (Resource::Group, r#"emails.value eq "x""#),
            (Resource::User, r#"emails[display eq "x"]"#),
        ] {
            let e = condition(r, &parse_filter(f).expect("parses")).expect_err(f);
            assert_eq!(e.details.as_ref().unwrap()["scimType"], "invalidFilter", "{f}");
        }
    }
}
