package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProcessSpec declares a version as local processes that pipit runs
// itself (standalone runtime). The canary is typically the same command
// with another binary, argument or environment.
type ProcessSpec struct {
	// Command is the program to run: a path, or a name looked up in PATH.
	Command string `json:"command"`
	// Args are the program's arguments. Each is a Go template:
	// {{ .Port }} is the loopback port pipit assigns to the replica and
	// {{ .Version }} the version's label.
	// +optional
	Args []string `json:"args,omitempty"`
	// Env is added to the environment pipit itself runs with; values are
	// templated like Args.
	// +optional
	Env map[string]string `json:"env,omitempty"`
	// WorkingDir is the directory the processes start in; default the
	// daemon's.
	// +optional
	WorkingDir string `json:"workingDir,omitempty"`
	// Replicas is how many processes serve the version; the proxy balances
	// across the ready ones. Default 1.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// Readiness decides when a replica receives traffic. Without it a
	// replica is ready once its port accepts connections.
	// +optional
	Readiness *ProbeSpec `json:"readiness,omitempty"`
	// Liveness restarts a replica that stops answering. It starts probing
	// once the replica was first ready, so a slow start is not a failure.
	// Without it only an exit restarts a replica.
	// +optional
	Liveness *ProbeSpec `json:"liveness,omitempty"`
	// StopGracePeriod is how long a stopping replica has between SIGTERM
	// and SIGKILL. Default 10s.
	// +optional
	StopGracePeriod *metav1.Duration `json:"stopGracePeriod,omitempty"`
	// MemoryLimitBytes is the stated memory limit of one replica: the
	// memory-usage metric is the replicas' resident memory in % of their
	// limits together. pipit does not enforce it.
	// +optional
	MemoryLimitBytes *int64 `json:"memoryLimitBytes,omitempty"`
}

// ProbeSpec is an HTTP GET probe of a replica on 127.0.0.1 and its port;
// any 2xx or 3xx answer succeeds.
type ProbeSpec struct {
	// Path is requested with GET. Default /health.
	// +optional
	Path string `json:"path,omitempty"`
	// InitialDelay is the wait before the first probe: after the replica
	// starts (readiness) or first becomes ready (liveness). Default 0.
	// +optional
	InitialDelay *metav1.Duration `json:"initialDelay,omitempty"`
	// Period is the time between probes. Default 10s.
	// +optional
	Period *metav1.Duration `json:"period,omitempty"`
	// Timeout of one probe. Default 1s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SuccessThreshold is how many probes in a row must succeed before a
	// failing replica counts as passing again. Default 1.
	// +optional
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many probes in a row must fail before a
	// passing replica counts as failing. Default 3.
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}
