// Package routertest runs pipit's Kubernetes routers against a real API
// server with the Gateway API (standard channel) and Istio CRDs: what the
// routers write must pass those schemas, and survive their defaulting and
// pruning without being rewritten on every Apply. It holds tests only.
package routertest
