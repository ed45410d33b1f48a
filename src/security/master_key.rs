//! Which master key opens this database. The key's fingerprint is stored beside the data it
//! sealed (`settings.master_key_fingerprint`); a node given another key, or none while the
//! database holds sealed data, refuses to start with a message naming the key it needs, and
//! never creates a key file then.

use std::path::Path;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder, QuerySelect};

use entities::{mfa_factor, setting, signing_key, webhook_endpoint};

use super::secrets::{MasterKey, write_private};

/// The `settings` row holding the fingerprint.
const FINGERPRINT: &str = "master_key_fingerprint";

/// How to supply the key, for the messages below.
const HOW: &str = "supply it with JANUA_MASTER_KEY (base64, 32 bytes) or --master-key-file <path> \
                   (JANUA_MASTER_KEY_FILE), the same key the other nodes of this database use";

/// The master key for `db`: `value` (`JANUA_MASTER_KEY`) when given, else the key in `file`.
/// Only when neither is there and the database holds nothing sealed is a new key created (and
/// written to `file`, mode 0600). The key's fingerprint must match the one stored with the data;
/// it is stored on first use.
pub async fn open_master_key(
    db: &impl ConnectionTrait,
    value: Option<&str>,
    file: &Path,
) -> anyhow::Result<MasterKey> {
    let stored = stored_fingerprint(db).await?;
    let sealed = sealed_sample(db).await?;
    let (key, source, created) = match value {
        Some(v) => (
            MasterKey::from_base64(v.trim()).map_err(|e| bad_key("JANUA_MASTER_KEY", e))?,
            "JANUA_MASTER_KEY".to_owned(),
            false,
        ),
        None if file.exists() => {
            let text = std::fs::read_to_string(file)?;
            let key =
                MasterKey::from_base64(text.trim()).map_err(|e| bad_key(&file.display().to_string(), e))?;
            (key, file.display().to_string(), false)
        }
        None if stored.is_some() || sealed.is_some() => anyhow::bail!(
            "this database holds data sealed under the master key {}, and no key was supplied \
             (JANUA_MASTER_KEY is unset and {} does not exist); {HOW}. No new key was created.",
            stored.as_deref().map_or("that sealed it".to_owned(), |f| format!("with fingerprint {f}")),
            file.display()
        ),
        None => (MasterKey::generate(), file.display().to_string(), true),
    };
    let fingerprint = key.fingerprint();
    match stored {
        Some(expected) => ensure_same(&expected, &fingerprint, &source)?,
        None => {
            if let Some(blob) = sealed {
                // A database sealed before fingerprints were stored: the key must open its data.
                anyhow::ensure!(
                    key.open(&blob).is_ok(),
                    "the master key from {source} (fingerprint {fingerprint}) does not open the data \
                     sealed in this database; {HOW}"
                );
            }
            let row = setting::ActiveModel {
                name: Set(FINGERPRINT.to_owned()),
                value: Set(fingerprint.clone()),
                updated_at: Set(Utc::now()),
            };
            // Two nodes starting at once on an empty database: the first row stays, and the
            // other node compares its key with it.
            let inserted = setting::Entity::insert(row).exec(db).await;
            match stored_fingerprint(db).await? {
                Some(expected) => ensure_same(&expected, &fingerprint, &source)?,
                None => {
                    inserted?;
                }
            }
        }
    }
    if created {
        write_private(file, &key.to_base64())?;
        tracing::warn!(
            path = %file.display(),
            %fingerprint,
            "created a new master key; back it up, it seals the signing keys"
        );
    }
    Ok(key)
}

fn bad_key(source: &str, e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("the master key from {source} is not valid: {e}")
}

fn ensure_same(expected: &str, got: &str, source: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        expected == got,
        "this database's data is sealed under the master key with fingerprint {expected}, but the key \
         from {source} has fingerprint {got}; {HOW}"
    );
    Ok(())
}

async fn stored_fingerprint(db: &impl ConnectionTrait) -> anyhow::Result<Option<String>> {
    Ok(setting::Entity::find_by_id(FINGERPRINT).one(db).await?.map(|r| r.value))
}

/// One sealed value of the database, if it holds any (signing keys, TOTP secrets, webhook secrets).
async fn sealed_sample(db: &impl ConnectionTrait) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(k) =
        signing_key::Entity::find().order_by_desc(signing_key::Column::CreatedAt).limit(1).one(db).await?
    {
        return Ok(Some(k.private_key_sealed));
    }
    if let Some(f) = mfa_factor::Entity::find().limit(1).one(db).await? {
        return Ok(Some(f.secret_sealed));
    }
    Ok(webhook_endpoint::Entity::find().limit(1).one(db).await?.map(|e| e.secret_sealed))
}
