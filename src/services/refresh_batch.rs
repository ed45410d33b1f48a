//! Group commit of refresh-token rotations (issue 19, item 4).
//!
//! Rotations that arrive while one is being written wait in a queue and are then written
//! together, in one write transaction with one statement per table for the whole group: the
//! sessions touched (`UPDATE … RETURNING`, which also tells which are still live), the tokens
//! rotated (a conditional `UPDATE … RETURNING`: only a token not yet rotated is rotated, so a
//! concurrent refresh of the same token — in this group, in another group or on another node —
//! rotates it once), their successors (one multi-row `INSERT`), and the audit rows and outbox
//! events (one multi-row `INSERT` each). A group of one costs what a rotation did alone; a group
//! of 64 costs about as much, which is what makes SQLite's single writer fast enough.
//!
//! Each request keeps its own checks before it queues (token found, session live, not expired,
//! not replayed past the grace period) and signs its own access token after; only the write is
//! shared. The group runs in a task of its own, so a request that goes away (its client closed
//! the connection) cannot abort the others' transaction. If the transaction fails, every
//! rotation of the group gets that error and nothing of any of them is written.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use entities::{refresh_token, session};

use crate::domain::EventType;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::sha256_hex;
use crate::services::audit::Change;
use crate::services::sessions;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// The most rotations written in one transaction (bounded by SQLite's bind parameters: a
/// successor row binds 6, an audit row 13).
const MAX_GROUP: usize = 256;

pub use crate::context::Rotation;

/// What became of one rotation: `Ok(true)` when this refresh rotated the token, `Ok(false)`
/// when it was already rotated and answers with the same successor.
pub type Outcome = AppResult<bool>;

/// Queues `rotation` for the next group and waits until that group committed (or failed).
pub async fn rotate(state: &AppState, rotation: Rotation) -> Outcome {
    let task_state = state.clone();
    state
        .refresh_batch
        .submit(rotation, MAX_GROUP, move |group: Vec<Rotation>| {
            // The task holds the state only while there is work (no cycle through `Inner`).
            let state = task_state.clone();
            async move {
                match write_group(&state, &group).await {
                    Ok(outcomes) => outcomes,
                    Err(e) => vec![Err(e); group.len()],
                }
            }
        })
        .await
        .unwrap_or_else(|| Err(AppError::internal("the refresh group task ended without an answer")))
}

/// Writes one group in one transaction; the outcome of each rotation, in order.
async fn write_group(state: &AppState, rotations: &[Rotation]) -> AppResult<Vec<Outcome>> {
    let started = std::time::Instant::now();
    let now = Utc::now();
    let mut w = Write::begin_worker(state, "refresh").await?;
    let begun = started.elapsed();
    // Sessions still live (not revoked meanwhile), touched.
    let session_ids: HashSet<Uuid> = rotations.iter().map(|r| r.session_id).collect();
    let live: HashSet<Uuid> = session::Entity::update_many()
        .col_expr(session::Column::LastActiveAt, Expr::value(now))
        .filter(session::Column::Id.is_in(session_ids))
        .filter(session::Column::RevokedAt.is_null())
        .exec_with_returning(w.tx())
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    // Tokens of live sessions not rotated yet: rotated here, once each.
    let to_rotate: HashSet<Uuid> = rotations
        .iter()
        .filter(|r| !r.already_rotated && live.contains(&r.session_id))
        .map(|r| r.token_id)
        .collect();
    let mut rotated: HashSet<Uuid> = if to_rotate.is_empty() {
        HashSet::new()
    } else {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
            .filter(refresh_token::Column::Id.is_in(to_rotate))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .exec_with_returning(w.tx())
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect()
    };
    // Each rotation's fate: the first of a token's refreshes that rotated it stores the
    // successor; the others (a concurrent refresh of the same token) answer with it.
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(rotations.len());
    let mut successors = Vec::new();
    // Replays: (index of the rotation, hash of its successor).
    let mut check: Vec<(usize, String)> = Vec::new();
    for (i, r) in rotations.iter().enumerate() {
        if !live.contains(&r.session_id) {
            outcomes.push(Err(ErrorCode::SessionRevoked.into()));
        } else if rotated.remove(&r.token_id) {
            successors.push(sessions::refresh_token_row(r.session_id, r.session_expires_at, &r.successor));
            outcomes.push(Ok(true));
        } else {
            check.push((i, sha256_hex(&r.successor)));
            outcomes.push(Ok(false));
        }
    }
    if !successors.is_empty() {
        refresh_token::Entity::insert_many(successors).exec_without_returning(w.tx()).await?;
    }
    // A token rotated before (or by another group) must have the derived successor in its
    // session; one rotated to a successor that was not derived (before this scheme) opens no
    // new branch.
    if !check.is_empty() {
        let found: HashMap<String, Uuid> = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.is_in(check.iter().map(|(_, h)| h.clone())))
            .all(w.tx())
            .await?
            .into_iter()
            .map(|t| (t.token_hash, t.session_id))
            .collect();
        for (i, hash) in &check {
            if found.get(hash) != Some(&rotations[*i].session_id) {
                outcomes[*i] = Err(ErrorCode::InvalidToken.into());
            }
        }
    }
    for (r, outcome) in rotations.iter().zip(&outcomes) {
        let Ok(rotated_here) = outcome else { continue };
        w.record_for(
            &r.ctx,
            Change {
                event: EventType::SessionRefreshed,
                target: Some(("session", r.session_id.to_string())),
                subject_user: Some(r.user_id),
                acting_user: Some((Some(r.user_id), r.email.clone())),
                organization: None,
                data: serde_json::json!({
                    "session_id": r.session_id,
                    "user_id": r.user_id,
                    "replayed": !rotated_here,
                }),
            },
        );
    }
    let written = started.elapsed();
    w.commit().await?;
    tracing::debug!(
        rotations = rotations.len(),
        begin_us = begun.as_micros() as u64,
        written_us = written.as_micros() as u64,
        committed_us = started.elapsed().as_micros() as u64,
        "refresh group written"
    );
    Ok(outcomes)
}
