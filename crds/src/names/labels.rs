//! Label keys set on and read from workloads, namespaces and control-plane objects.
