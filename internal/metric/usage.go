package metric

import (
	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// UsageSource measures the resources of a running version: the process
// target, which reads them from /proc.
type UsageSource interface {
	// Usage returns the version's CPU in % of one core, summed over its
	// replicas and averaged since the previous call, and its resident
	// memory in % of its stated limit. ok is false when no replica of the
	// version runs.
	Usage(version string) (cpuPct, memPct float64, ok bool)
}

// isUsage reports whether name is measured by a UsageSource.
func isUsage(name string) bool { return name == CPUUsage || name == MemoryUsage }

// measureUsage measures the named usage metrics of the status' canary and
// stable versions. Each version is read once, so that both metrics cover
// the same CPU window. A version that does not run has no data.
func measureUsage(src UsageSource, names []string, st v1alpha1.RolloutStatus) []rollout.Measurement {
	type usage struct{ cpu, mem *float64 }
	read := func(v *v1alpha1.VersionRef) usage {
		if v == nil {
			return usage{}
		}
		cpu, mem, ok := src.Usage(v.Version)
		if !ok {
			return usage{}
		}
		return usage{&cpu, &mem}
	}
	canary, stable := read(st.Canary), read(st.Stable)
	out := make([]rollout.Measurement, 0, len(names))
	for _, name := range names {
		m := rollout.Measurement{Metric: name, Canary: canary.cpu, Stable: stable.cpu}
		if name == MemoryUsage {
			m.Canary, m.Stable = canary.mem, stable.mem
		}
		out = append(out, m)
	}
	return out
}
