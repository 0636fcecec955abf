//! The Kubernetes side of identity: trust roots from their ConfigMap, and the issuer from its
//! Secret, watched so that a rotated issuer serves the next Certify without a restart.

use crate::{certify::IssuerState, events::Events};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use oxlink_admin::Latch;
use oxlink_crds::names::control_plane::{
    IDENTITY_ISSUER_SECRET, ISSUER_CRT_KEY, ISSUER_KEY_KEY, ISSUER_SCHEME_KUBERNETES, TLS_CRT_KEY,
    TLS_KEY_KEY, TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY,
};
use oxlink_tls::{
    BundleError, IssuancePolicy, Issuer, IssuerCredentials, IssuerError, TrustBundle,
};
use std::time::{Duration, SystemTime};

/// Why the issuer Secret or the trust roots could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {name} has no key {key}")]
    MissingKey { name: String, key: &'static str },
    #[error("ConfigMap {TRUST_ROOTS_CONFIGMAP}: {0}")]
    TrustRoots(String),
    #[error("trust roots: {0}")]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Issuer(#[from] IssuerError),
}

/// Reads the trust anchors from `linkerd-identity-trust-roots` (key `ca-bundle.crt`).
pub async fn load_trust_roots(client: kube::Client, ns: &str) -> Result<TrustBundle, SecretError> {
    let cm = Api::<ConfigMap>::namespaced(client, ns)
        .get(TRUST_ROOTS_CONFIGMAP)
        .await
        .map_err(|e| SecretError::TrustRoots(e.to_string()))?;
    let pem = cm
        .data
        .as_ref()
        .and_then(|d| d.get(TRUST_ROOTS_KEY))
        .ok_or_else(|| SecretError::TrustRoots(format!("no key {TRUST_ROOTS_KEY}")))?;
    Ok(TrustBundle::from_pem(pem.as_bytes())?)
}

/// Loads the issuer's credentials from a Secret of either scheme: `kubernetes.io/tls` (`tls.crt`, `tls.key`;
/// its `ca.crt` is not trusted here, the ConfigMap is) or `linkerd.io/tls` (`crt.pem`,
/// `key.pem`). The scheme follows the Secret's type, then its keys.
pub fn issuer_from_secret(
    secret: &Secret,
    anchors: &TrustBundle,
    now: SystemTime,
) -> Result<IssuerCredentials, SecretError> {
    let data = secret.data.as_ref();
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let kubernetes = secret.type_.as_deref() == Some(ISSUER_SCHEME_KUBERNETES)
        || (has(TLS_CRT_KEY) && !has(ISSUER_CRT_KEY));
    let (crt_key, key_key) = if kubernetes {
        (TLS_CRT_KEY, TLS_KEY_KEY)
    } else {
        (ISSUER_CRT_KEY, ISSUER_KEY_KEY)
    };
    let get = |key: &'static str| {
        data.and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
            .ok_or_else(|| SecretError::MissingKey {
                name: secret.metadata.name.clone().unwrap_or_default(),
                key,
            })
    };
    Ok(IssuerCredentials::from_pem(
        get(crt_key)?,
        get(key_key)?,
        anchors,
        now,
    )?)
}

/// Keeps [`IssuerState`] in step with the issuer Secret.
pub struct IssuerWatch {
    state: IssuerState,
    anchors: TrustBundle,
    /// How the leaves of every issuer loaded from the Secret are dated.
    policy: IssuancePolicy,
    events: Events,
    /// The certificate and key bytes last seen, so that a resync of the same Secret is quiet.
    last_seen: Option<(Vec<u8>, Vec<u8>)>,
    /// A Secret refused only because its issuer is not valid yet, and when it becomes valid:
    /// the same bytes are loaded then, without waiting for the Secret to change.
    pending: Option<(Secret, SystemTime)>,
}

impl IssuerWatch {
    pub fn new(
        state: IssuerState,
        anchors: TrustBundle,
        policy: IssuancePolicy,
        events: Events,
    ) -> Self {
        Self {
            state,
            anchors,
            policy,
            events,
            last_seen: None,
            pending: None,
        }
    }

    /// Applies one version of the Secret: a valid issuer replaces the current one (Normal
    /// `IssuerUpdated`); an invalid one is refused and the current one kept (Warning
    /// `IssuerUpdateSkipped`). One that is not valid yet is tried again when it becomes valid
    /// (see [`IssuerWatch::retry_at`]).
    pub fn apply(&mut self, secret: &Secret) {
        self.apply_at(secret, SystemTime::now())
    }

    /// When a refused, not-yet-valid issuer should be tried again.
    pub fn retry_at(&self) -> Option<SystemTime> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// Tries the pending Secret again, if it is due at `now`.
    pub fn retry(&mut self, now: SystemTime) {
        if let Some((secret, _)) = self.pending.clone() {
            self.apply_at(&secret, now);
        }
    }

    /// [`IssuerWatch::apply`] with the time it is checked at.
    pub fn apply_at(&mut self, secret: &Secret, now: SystemTime) {
        let fingerprint = secret
            .data
            .as_ref()
            .map(|d| {
                let bytes = |k| d.get(k).map(|b| b.0.clone()).unwrap_or_default();
                let crt = [bytes(ISSUER_CRT_KEY), bytes(TLS_CRT_KEY)].concat();
                let key = [bytes(ISSUER_KEY_KEY), bytes(TLS_KEY_KEY)].concat();
                (crt, key)
            })
            .unwrap_or_default();
        let due = self.pending.as_ref().is_some_and(|(_, at)| now >= *at);
        if self.last_seen.as_ref() == Some(&fingerprint) && !due {
            return;
        }
        self.last_seen = Some(fingerprint);
        self.pending = None;
        match issuer_from_secret(secret, &self.anchors, now) {
            Ok(credentials) => {
                let note = format!("Updated identity issuer {}", credentials.subject());
                let first = self.state.current().is_none();
                tracing::info!(subject = credentials.subject(), not_after = ?credentials.not_after(), "loaded the issuer");
                self.state.set(Issuer::new(credentials, self.policy));
                if !first {
                    self.events.issuer_updated(note);
                }
            }
            Err(error) => {
                if let SecretError::Issuer(IssuerError::NotYetValid(at)) = &error {
                    self.pending = Some((secret.clone(), *at));
                }
                tracing::warn!(%error, "refused the issuer Secret; keeping the current issuer");
                self.events
                    .issuer_update_skipped(format!("Skipped identity issuer update: {error}"));
            }
        }
    }

    /// Watches the Secret in `ns` until the stream ends (never, in practice). `ready` learns
    /// when the first list has been applied.
    pub async fn run(mut self, client: kube::Client, ns: &str, synced: Latch) {
        let api = Api::<Secret>::namespaced(client, ns);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={IDENTITY_ISSUER_SECRET}"));
        let mut stream = watcher(api, config).default_backoff().boxed();
        loop {
            let retry = self.retry_at().map(|at| {
                // A second late, so that the issuer is valid by then on a coarse clock.
                at.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_secs(1)
            });
            let event = tokio::select! {
                event = stream.next() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => {
                    self.retry(SystemTime::now());
                    continue;
                }
            };
            match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => self.apply(&s),
                Ok(watcher::Event::Delete(_)) => {
                    tracing::warn!("the issuer Secret was deleted; keeping the current issuer");
                    self.last_seen = None;
                    self.pending = None;
                }
                Ok(watcher::Event::Init) => {}
                Ok(watcher::Event::InitDone) => synced.release(),
                Err(error) => tracing::warn!(%error, "watching the issuer Secret"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
