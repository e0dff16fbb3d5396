// Package v1alpha1 holds the Rollout types shared by both runtimes.
//
// The same types are read from a rollout.yaml by the standalone daemon and
// served as a custom resource by the Kubernetes controller, so they follow
// Kubernetes conventions: metadata/spec/status, JSON tags, metav1 durations
// and times. The package holds data only; parsing, defaults and validation
// live in internal/spec.
package v1alpha1

const (
	// Group is the API group of pipit's resources.
	Group = "pipit.dev"
	// Version is the API version of this package.
	Version = "v1alpha1"
	// APIVersion is the apiVersion string written in manifests.
	APIVersion = Group + "/" + Version
	// KindRollout is the kind of a Rollout.
	KindRollout = "Rollout"
)
