//! DataLoaders, made per request (a shared loader would share its cache across callers): a list
//! of organizations with their owners costs two queries whatever its length.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use entities::user;

use crate::domain::OrgRole;
use crate::error::AppError;
use crate::services::orgs;
use crate::services::users::UserView;
use crate::state::AppState;

/// Members `(user id, role)` of organizations, by organization id.
pub struct MembersLoader(AppState);

impl Loader<Uuid> for MembersLoader {
    type Value = Vec<(Uuid, String)>;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut out: HashMap<Uuid, Self::Value> = HashMap::new();
        for m in orgs::members_of(&self.0.db, keys).await? {
            out.entry(m.organization_id).or_default().push((m.user_id, m.role));
        }
        Ok(out)
    }
}

/// Users by id.
pub struct UsersLoader(AppState);

impl Loader<Uuid> for UsersLoader {
    type Value = UserView;
    type Error = AppError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(keys.to_vec()))
            .all(&self.0.db)
            .await?
            .into_iter()
            .map(|u| (u.id, UserView::from(u)))
            .collect())
    }
}

impl Loaders {
    /// Loads the members (and, when `owners` is selected, the owners) of a whole page of
    /// organizations in one batch each, so the per-item fields read from the cache. This keeps
    /// the query count independent of page size and of how the resolvers happen to be scheduled.
    pub async fn prime_organizations(&self, orgs: &[Uuid], owners: bool) -> Result<(), AppError> {
        let members = self.members.load_many(orgs.iter().copied()).await?;
        if owners {
            let ids: Vec<Uuid> = members
                .values()
                .flatten()
                .filter(|(_, role)| OrgRole::Owner.is(role))
                .map(|(u, _)| *u)
                .collect();
            self.users.load_many(ids).await?;
        }
        Ok(())
    }
}

/// The loaders of one request.
pub struct Loaders {
    pub members: DataLoader<MembersLoader, HashMapCache>,
    pub users: DataLoader<UsersLoader, HashMapCache>,
}

impl Loaders {
    /// Fresh loaders for one request.
    pub fn new(state: &AppState) -> Self {
        Self {
            // A cache per request: primed pages are read from it (`DataLoader::new` keeps none).
            members: DataLoader::with_cache(
                MembersLoader(state.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            users: DataLoader::with_cache(UsersLoader(state.clone()), tokio::spawn, HashMapCache::default()),
        }
    }
}
