//! Documents fetched from other servers (OIDC discovery, JWKS), remembered per URL for a while
//! on this node: cheap to fetch again, so never shared across nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// URL → (document, when fetched).
#[derive(Clone, Default)]
pub struct DocumentCache(Arc<DashMap<String, (serde_json::Value, Instant)>>);

impl DocumentCache {
    /// The document fetched from `url` less than `max_age` ago.
    pub fn get(&self, url: &str, max_age: Duration) -> Option<serde_json::Value> {
        self.0.get(url).filter(|e| e.1.elapsed() < max_age).map(|e| e.0.clone())
    }

    /// Remembers `doc` as fetched from `url` now.
    pub fn put(&self, url: &str, doc: serde_json::Value) {
        if self.0.len() > 10_000 {
            self.0.clear();
        }
        self.0.insert(url.to_owned(), (doc, Instant::now()));
    }

    /// Forgets `url` (a JWKS that lacks the key a token names).
    pub fn forget(&self, url: &str) {
        self.0.remove(url);
    }
}
