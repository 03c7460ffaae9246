"""deploy/: Kubernetes manifests, CRDs, Prometheus rules, dashboard and image, checked
without a cluster."""
