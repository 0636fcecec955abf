//go:build tools

// Package prometheus pins the upstream Prometheus server that the local cluster runs as the
// viz extension's Prometheus pod. It holds no code: `go build
// github.com/prometheus/prometheus/cmd/prometheus` builds the upstream command from this
// module's pinned dependencies.
package prometheus

import _ "github.com/prometheus/prometheus/cmd/prometheus"
