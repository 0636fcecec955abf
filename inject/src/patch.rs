//! JSON Patch (RFC 6902): the difference between the object we received and the one we want,
//! as the `add`, `remove` and `replace` operations an admission response carries.
//!
//! Arrays into which elements were only inserted (containers, volumes) get one `add` per new
//! element, so the patch never rewrites the pod's own containers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation of a JSON Patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error("path {0:?} does not exist")]
    Missing(String),
    #[error("path {0:?} is not a valid JSON pointer")]
    Pointer(String),
}

/// The operations that turn `from` into `to`, with paths under `prefix` (a JSON pointer, empty
/// for the root).
pub fn diff(from: &Value, to: &Value, prefix: &str) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    diff_into(from, to, prefix.to_string(), &mut ops);
    ops
}

fn diff_into(from: &Value, to: &Value, path: String, ops: &mut Vec<PatchOp>) {
    match (from, to) {
        _ if from == to => {}
        (Value::Object(a), Value::Object(b)) => {
            for (key, old) in a {
                let child = format!("{path}/{}", escape(key));
                match b.get(key) {
                    Some(new) => diff_into(old, new, child, ops),
                    None => ops.push(PatchOp::Remove { path: child }),
                }
            }
            for (key, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                ops.push(PatchOp::Add {
                    path: format!("{path}/{}", escape(key)),
                    value: new.clone(),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => match insertions(a, b) {
            Some(added) => {
                for (index, value) in added {
                    ops.push(PatchOp::Add {
                        path: format!("{path}/{index}"),
                        value: value.clone(),
                    });
                }
            }
            None => ops.push(PatchOp::Replace {
                path,
                value: to.clone(),
            }),
        },
        _ => ops.push(PatchOp::Replace {
            path,
            value: to.clone(),
        }),
    }
}

/// When `to` is `from` with elements inserted (the rest in the same order), the inserted
/// elements with their indexes in `to`, in ascending order.
fn insertions<'a>(from: &[Value], to: &'a [Value]) -> Option<Vec<(usize, &'a Value)>> {
    if to.len() < from.len() {
        return None;
    }
    let mut added = Vec::new();
    let mut kept = from.iter().peekable();
    for (index, value) in to.iter().enumerate() {
        if kept.peek() == Some(&value) {
            kept.next();
        } else {
            added.push((index, value));
        }
    }
    kept.peek().is_none().then_some(added)
}

/// Escapes a key for a JSON pointer.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Applies `ops` to `doc` in order (used by the CLI and by tests).
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> Result<(), PatchError> {
    for op in ops {
        match op {
            PatchOp::Add { path, value } => add(doc, path, value.clone())?,
            PatchOp::Remove { path } => {
                let (parent, last) = parent_of(doc, path)?;
                match parent {
                    Value::Object(map) => {
                        map.remove(&last)
                            .ok_or_else(|| PatchError::Missing(path.clone()))?;
                    }
                    Value::Array(items) => {
                        let i = array_index(&last, items.len(), path)?;
                        if i >= items.len() {
                            return Err(PatchError::Missing(path.clone()));
                        }
                        items.remove(i);
                    }
                    _ => return Err(PatchError::Missing(path.clone())),
                }
            }
            PatchOp::Replace { path, value } => {
                let target = if path.is_empty() {
                    Some(&mut *doc)
                } else {
                    doc.pointer_mut(path)
                };
                *target.ok_or_else(|| PatchError::Missing(path.clone()))? = value.clone();
            }
        }
    }
    Ok(())
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_of(doc, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let i = if last == "-" {
                items.len()
            } else {
                array_index(&last, items.len() + 1, path)?
            };
            if i > items.len() {
                return Err(PatchError::Missing(path.to_string()));
            }
            items.insert(i, value);
        }
        _ => return Err(PatchError::Missing(path.to_string())),
    }
    Ok(())
}

fn parent_of<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), PatchError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| PatchError::Pointer(path.to_string()))?;
    let target = if parent.is_empty() {
        Some(doc)
    } else {
        doc.pointer_mut(parent)
    };
    let target = target.ok_or_else(|| PatchError::Missing(parent.to_string()))?;
    Ok((target, unescape(last)))
}

fn array_index(token: &str, bound: usize, path: &str) -> Result<usize, PatchError> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < bound)
        .ok_or_else(|| PatchError::Missing(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn roundtrip(from: Value, to: Value) -> Vec<PatchOp> {
        let ops = diff(&from, &to, "");
        let mut patched = from.clone();
        apply(&mut patched, &ops).unwrap();
        assert_eq!(patched, to, "ops: {ops:#?}");
        ops
    }

    #[test]
    fn inserted_array_elements_are_single_adds() {
        let ops = roundtrip(
            json!({"spec": {"containers": [{"name": "app"}]}}),
            json!({"spec": {"containers": [{"name": "proxy"}, {"name": "app"}, {"name": "debug"}]}}),
        );
        assert_eq!(
            ops,
            vec![
                PatchOp::Add {
                    path: "/spec/containers/0".into(),
                    value: json!({"name": "proxy"})
                },
                PatchOp::Add {
                    path: "/spec/containers/2".into(),
                    value: json!({"name": "debug"})
                },
            ]
        );
    }

    #[test]
    fn keys_are_escaped_and_objects_created() {
        let ops = roundtrip(
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"name": "x", "annotations": {"linkerd.io/inject": "enabled"}}}),
        );
        assert_eq!(ops.len(), 1);
        let ops = roundtrip(
            json!({"metadata": {"annotations": {"a~b": "1"}}}),
            json!({"metadata": {"annotations": {"a~b": "1", "linkerd.io/x": "2"}}}),
        );
        assert_eq!(
            ops,
            vec![PatchOp::Add {
                path: "/metadata/annotations/linkerd.io~1x".into(),
                value: json!("2")
            }]
        );
    }

    #[test]
    fn removals_and_reorders_fall_back_to_replace() {
        roundtrip(json!({"a": [1, 2, 3]}), json!({"a": [3, 2, 1]}));
        roundtrip(json!({"a": [1, 2, 3]}), json!({"a": [1, 3]}));
        roundtrip(json!({"a": 1, "b": 2}), json!({"b": "x"}));
        roundtrip(json!([1]), json!({"x": 1}));
    }

    #[test]
    fn the_serialized_form_is_rfc_6902() {
        let ops = vec![
            PatchOp::Add {
                path: "/a".into(),
                value: json!(1),
            },
            PatchOp::Remove { path: "/b".into() },
        ];
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}])
        );
    }

    #[test]
    fn applying_to_missing_paths_is_an_error() {
        let mut doc = json!({"a": {}});
        let missing = PatchOp::Add {
            path: "/x/y".into(),
            value: json!(1),
        };
        assert!(apply(&mut doc, &[missing]).is_err());
        assert!(
            apply(
                &mut doc,
                &[PatchOp::Remove {
                    path: "/a/b".into()
                }]
            )
            .is_err()
        );
    }
}
