//! The cluster's service-account issuer keys, read through the API server the way any OIDC
//! relying party reads them: `/.well-known/openid-configuration` for the issuer, then
//! `/openid/v1/jwks` (RBAC: the `system:service-account-issuer-discovery` ClusterRole).
//! Refreshed periodically and when a token names a key id that is not known yet.

use super::jwt::{Jwk, JwkSet};
use parking_lot::RwLock;
use serde::Deserialize;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

/// The path of the OIDC discovery document.
pub(crate) const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The path of the key set, as kube-apiserver serves it (its `jwks_uri` names an external
/// address that need not be reachable from here).
pub(crate) const JWKS_PATH: &str = "/openid/v1/jwks";

/// An unknown key id refreshes the set at most this often.
const MIN_REFRESH: Duration = Duration::from_secs(5);

/// The issuer and its keys by id.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    pub(crate) issuer: String,
    pub(crate) keys: HashMap<String, Arc<Jwk>>,
}

/// Where key sets come from: the API server, or a fixed source in tests.
pub trait FetchKeys: Send + Sync + 'static {
    fn fetch(&self) -> impl std::future::Future<Output = Result<KeySet, String>> + Send;
}

/// The issuer's keys, shared by every Certify call.
pub struct IssuerKeys<F> {
    source: F,
    current: RwLock<Option<Arc<KeySet>>>,
    /// When the last fetch started; held across a fetch so that concurrent misses share one.
    pub(crate) last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// Fetches through the API server.
#[derive(Clone)]
pub struct ApiServerKeys {
    client: kube::Client,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
}

// === impl ApiServerKeys ===

impl ApiServerKeys {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        self.client
            .request_text(req)
            .await
            .map_err(|e| format!("GET {path}: {e}"))
    }
}

impl FetchKeys for ApiServerKeys {
    async fn fetch(&self) -> Result<KeySet, String> {
        let discovery: Discovery = serde_json::from_str(&self.get(DISCOVERY_PATH).await?)
            .map_err(|e| format!("{DISCOVERY_PATH}: {e}"))?;
        let set: JwkSet = serde_json::from_str(&self.get(JWKS_PATH).await?)
            .map_err(|e| format!("{JWKS_PATH}: {e}"))?;
        Ok(KeySet::new(discovery.issuer, set))
    }
}

// === impl KeySet ===

impl KeySet {
    pub(crate) fn new(issuer: String, set: JwkSet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|k| Some((k.kid.clone()?, Arc::new(k.key()?))))
            .collect();
        Self { issuer, keys }
    }
}

// === impl IssuerKeys ===

impl<F: FetchKeys> IssuerKeys<F> {
    pub fn new(source: F) -> Self {
        Self {
            source,
            current: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The key set loaded now, if any.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().clone()
    }

    /// Fetches the key set now (the periodic refresh).
    pub async fn refresh(&self) -> Result<(), String> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<(), String> {
        let set = self.source.fetch().await?;
        tracing::debug!(issuer = %set.issuer, keys = set.keys.len(), "loaded the service-account issuer keys");
        *self.current.write() = Some(Arc::new(set));
        Ok(())
    }

    /// The key `kid` of the loaded set; a miss refreshes the set (at most once per
    /// [`MIN_REFRESH`], concurrent misses sharing one fetch) and looks again.
    pub(crate) async fn key(&self, kid: &str) -> Option<(Arc<KeySet>, Arc<Jwk>)> {
        let lookup = |set: Option<Arc<KeySet>>| {
            let set = set?;
            let key = set.keys.get(kid)?.clone();
            Some((set, key))
        };
        if let Some(found) = lookup(self.current()) {
            return Some(found);
        }
        let asked = Instant::now();
        let mut last = self.last_fetch.lock().await;
        // Someone else fetched while we waited: their set is as fresh as ours would be.
        let fresh = last.is_some_and(|t| t >= asked || t.elapsed() < MIN_REFRESH);
        if !fresh {
            *last = Some(Instant::now());
            if let Err(error) = self.fetch_locked().await {
                tracing::warn!(%error, "refreshing the service-account issuer keys");
            }
        }
        drop(last);
        lookup(self.current())
    }
}
