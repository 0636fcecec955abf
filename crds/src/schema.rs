//! Schema pieces the derive cannot express: nodes that Kubernetes handles specially.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A port number or an IANA service name (`x-kubernetes-int-or-string`), checked with CEL.
pub(crate) fn port_or_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A port number (1-65535) or the name of a container port.",
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? (self >= 1 && self <= 65535) \
                     : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",
            "message": "must be a port number between 1 and 65535 or a port name \
                        (at most 15 lowercase alphanumerics or '-')",
        }],
    })
}

/// A weight written as an integer or a quantity string (`100`, `"500m"`).
pub(crate) fn weight(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A relative weight: an integer or a quantity such as \"500m\".",
        "x-kubernetes-int-or-string": true,
    })
}

/// One nested match condition, kept as written (schemas cannot recurse).
pub(crate) fn nested_match(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of nested match conditions, kept as written (schemas cannot recurse).
pub(crate) fn nested_matches(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// A condition's status: `True`, `False` or `Unknown`.
pub(crate) fn condition_status(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["True", "False", "Unknown"],
    })
}
