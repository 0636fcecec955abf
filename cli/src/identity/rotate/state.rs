//! A rotation's state as it is kept on the trust-roots ConfigMap (annotation
//! `oxlink.io/anchor-rotation`), and the decisions that need no cluster: which step comes next,
//! what the bundle becomes, whether a rollout is done, whether a proxy's certificate is new.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The steps of a rotation, in order. The annotation names the next one to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Step {
    AddAnchor,
    RestartForBundle,
    SwitchIssuer,
    RestartForIssuer,
    Verify,
    RemoveOldAnchors,
    RestartForRemoval,
    Complete,
}

// === impl Step ===

impl Step {
    /// Every step that does something, in order.
    pub(crate) const ALL: [Step; 7] = [
        Step::AddAnchor,
        Step::RestartForBundle,
        Step::SwitchIssuer,
        Step::RestartForIssuer,
        Step::Verify,
        Step::RemoveOldAnchors,
        Step::RestartForRemoval,
    ];

    /// 1-based position among [`Step::ALL`] (`Complete` is past the last).
    pub(crate) fn number(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(Self::ALL.len() + 1, |i| i + 1)
    }

    pub(crate) fn next(self) -> Step {
        Self::ALL
            .get(self.number())
            .copied()
            .unwrap_or(Step::Complete)
    }

    /// Whether this step restarts the meshed workloads.
    pub(crate) fn restarts(self) -> bool {
        matches!(
            self,
            Step::RestartForBundle | Step::RestartForIssuer | Step::RestartForRemoval
        )
    }

    /// Whether this step restarts the control plane before the workloads.
    pub(crate) fn restarts_control_plane(self) -> bool {
        matches!(
            self,
            Step::RestartForBundle | Step::SwitchIssuer | Step::RestartForRemoval
        )
    }

    /// What the step does, in the words the plan and the progress use.
    pub(crate) fn describe(self, external_issuer: bool) -> &'static str {
        match self {
            Step::AddAnchor => {
                "add the new trust anchor to the bundle (linkerd-identity-trust-roots)"
            }
            Step::RestartForBundle => {
                "restart the control plane, then the meshed workloads, so every proxy trusts both anchors"
            }
            Step::SwitchIssuer if external_issuer => {
                "wait for the external issuer (linkerd-identity-issuer) to be signed by the new anchor, then restart the control plane"
            }
            Step::SwitchIssuer => {
                "switch the issuer (linkerd-identity-issuer) to one signed by the new anchor, then restart the control plane"
            }
            Step::RestartForIssuer => {
                "restart the meshed workloads, so every proxy gets a certificate from the new issuer"
            }
            Step::Verify => "check that every proxy holds a certificate from the new issuer",
            Step::RemoveOldAnchors => "remove the old trust anchors from the bundle",
            Step::RestartForRemoval => {
                "restart the control plane, then the meshed workloads, so no proxy trusts the old anchors"
            }
            Step::Complete => "done",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(s.as_str().unwrap_or_default())
    }
}

/// What the annotation holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotation {
    /// The next step to run.
    pub(crate) step: Step,
    /// SHA-256 (hex) of the new anchor's DER.
    pub(crate) new_anchor: String,
    pub(crate) new_anchor_subject: String,
    /// RFC 3339.
    pub(crate) started_at: String,
    /// The issuer Secret is written by something else (cert-manager): wait for it.
    #[serde(default)]
    pub(crate) external_issuer: bool,
    /// The `restartedAt` value of the restart step in progress: a workload that carries it
    /// was already asked to restart, and is only waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restart_token: Option<String>,
    /// Unix seconds after which every certificate identity issued came from the new issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issuer_switched_at: Option<i64>,
    /// Workloads restarted so far (the control plane's included).
    #[serde(default)]
    pub(crate) restarts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completed_at: Option<String>,
}

// === impl Rotation ===

impl Rotation {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("the rotation state cannot be read: {e}"))
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn in_progress(&self) -> bool {
        self.step != Step::Complete
    }

    /// One line for `oxlink check` and the progress output.
    pub(crate) fn summary(&self) -> String {
        if self.in_progress() {
            format!(
                "a trust anchor rotation to {:?} (started {}) is at step {}/{}: {}",
                self.new_anchor_subject,
                self.started_at,
                self.step.number(),
                Step::ALL.len(),
                self.step.describe(self.external_issuer)
            )
        } else {
            format!(
                "the last trust anchor rotation, to {:?}, completed at {}",
                self.new_anchor_subject,
                self.completed_at.as_deref().unwrap_or("an unknown time")
            )
        }
    }
}

/// Hex SHA-256 of a DER certificate: how the state names an anchor.
pub(crate) fn anchor_id(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits `workloads` into batches of `size` (at least one per batch).
pub(crate) fn batches<T: Clone>(workloads: &[T], size: usize) -> Vec<Vec<T>> {
    workloads.chunks(size.max(1)).map(<[T]>::to_vec).collect()
}

/// The rollout numbers `kubectl rollout status` looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RolloutStatus {
    pub(crate) generation: i64,
    pub(crate) observed_generation: i64,
    pub(crate) desired: i32,
    /// Pods (of every revision) that exist.
    pub(crate) current: i32,
    pub(crate) updated: i32,
    pub(crate) available: i32,
    /// StatefulSets: whether the current revision is the update revision.
    pub(crate) revision_done: bool,
}

impl RolloutStatus {
    /// Whether the rollout finished: the controller saw the change, every pod is of the new
    /// template and available, and no pod of an old one is left.
    pub(crate) fn complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated >= self.desired
            && self.current <= self.desired
            && self.available >= self.desired
            && self.revision_done
    }
}

/// Whether a proxy whose certificate expires at `expiry` (unix seconds, from its
/// `identity_cert_expiration_timestamp_seconds`) got it from the new issuer: identity issues
/// leaves for `lifetime` (plus the clock-skew allowance) from the moment of issue, capped at the
/// issuer's own expiry; so a leaf issued after `switched_at` expires at `switched_at + lifetime`
/// or later, or exactly when the new issuer does.
pub(crate) fn issued_after(
    expiry: f64,
    switched_at: i64,
    lifetime: Duration,
    new_issuer_expiry: i64,
) -> bool {
    let expiry = expiry.round() as i64;
    expiry >= switched_at + lifetime.as_secs() as i64 || expiry == new_issuer_expiry
}

/// The value of an unlabelled gauge (or the first series of it) in a Prometheus text.
pub(crate) fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
