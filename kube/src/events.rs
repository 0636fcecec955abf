//! Kubernetes Events, aggregated as client-go's event correlator does: a repeat of the same
//! event — type, reason, action, object *and note* — within [`SERIES_WINDOW`] becomes a count on
//! the first one (`series`), while an event with another note is an Event of its own.
//!
//! (kube's `Recorder` leaves the note out of its key, so two refusals with different causes fold
//! into one Event that keeps the first cause.) The cache of recent events is bounded by time and
//! by [`MAX_CACHED`] entries.

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as KubeEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// How long a repeat counts on the first Event rather than starting a new one (client-go's
/// series window for `events.k8s.io/v1`).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// The most distinct recent events kept for aggregation; past it the oldest is forgotten (a
/// repeat of it then starts a new Event).
pub const MAX_CACHED: usize = 1024;

/// The API server refuses notes longer than this many bytes.
pub const MAX_NOTE_BYTES: usize = 1024;

/// One event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

/// Who records: `reportingController` and `reportingInstance`.
#[derive(Clone, Debug)]
pub struct Reporter {
    pub controller: String,
    pub instance: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    reason: String,
    action: String,
    note: String,
    regarding: (String, String, String, String),
}

/// Publishes events through the API server.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    recent: Arc<Mutex<HashMap<Key, KubeEvent>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Arc::default(),
        }
    }

    /// Creates the Event, or counts a repeat on the one recorded for the same event within
    /// [`SERIES_WINDOW`].
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let note = truncate(&event.note, MAX_NOTE_BYTES);
        let key = Key {
            warning: event.warning,
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: note.to_string(),
            regarding: (
                regarding.kind.clone().unwrap_or_default(),
                regarding.namespace.clone().unwrap_or_default(),
                regarding.name.clone().unwrap_or_default(),
                regarding.uid.clone().unwrap_or_default(),
            ),
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        // The cache is only touched between requests, never held across one: publishing runs
        // on the hot paths' spawned tasks, which must not queue behind the API server. (Two
        // first sightings at the same moment may then create two Events; a repeat after that
        // counts on the one cached last.)
        let repeat = {
            let mut recent = self.recent.lock().expect("events cache lock");
            recent.retain(|_, e| last_seen(e).is_some_and(|t| t + SERIES_WINDOW > now));
            recent.get_mut(&key).map(|previous| {
                let count = previous.series.as_ref().map_or(2, |s| s.count + 1);
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                previous.series = Some(series.clone());
                (previous.metadata.name.clone().unwrap_or_default(), series)
            })
        };
        match repeat {
            Some((name, series)) => {
                let patch = serde_json::json!({ "series": series });
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            None => {
                let created = events
                    .create(
                        &PostParams::default(),
                        &self.new_event(event, note, regarding, now),
                    )
                    .await?;
                let mut recent = self.recent.lock().expect("events cache lock");
                if recent.len() >= MAX_CACHED && !recent.contains_key(&key) {
                    let oldest = recent
                        .iter()
                        .min_by_key(|(_, e)| last_seen(e))
                        .map(|(k, _)| k.clone());
                    recent.remove(&oldest.expect("the cache is not empty"));
                }
                recent.insert(key, created);
            }
        }
        Ok(())
    }

    fn new_event(
        &self,
        event: &Event,
        note: &str,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> KubeEvent {
        let object = regarding.name.as_deref().unwrap_or("event");
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(event.reason.clone()),
            action: Some(event.action.clone()),
            note: Some(note.to_string()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..Default::default()
        }
    }
}

fn last_seen(event: &KubeEvent) -> Option<Timestamp> {
    match &event.series {
        Some(series) => Some(series.last_observed_time.0),
        None => event.event_time.as_ref().map(|t| t.0),
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(600); // 1200 bytes
        let cut = truncate(&long, MAX_NOTE_BYTES);
        assert_eq!(cut.len(), 1024);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("aé", 2), "a");
    }
}
