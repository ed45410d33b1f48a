//! What a change records: its audit row and outbox event are written by
//! [`crate::services::unit_of_work::Write::record`], in the change's transaction.

use uuid::Uuid;

use crate::domain::EventType;

/// One change to record.
pub struct Change {
    pub event: EventType,
    /// `(type, id)` of what the change is about.
    pub target: Option<(&'static str, String)>,
    /// The user whose session stream the event belongs to.
    pub subject_user: Option<Uuid>,
    /// Who acted, when the request itself is anonymous (sign-up, sign-in): `(id, email)`.
    pub acting_user: Option<(Option<Uuid>, String)>,
    /// The organization the change belongs to (org admins see it in their audit stream).
    pub organization: Option<Uuid>,
    /// Event data (never secrets).
    pub data: serde_json::Value,
}
