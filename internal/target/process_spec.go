package target

import (
	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// procSpec is a process spec resolved by spec.ResolveProcess (which also
// validates it), with its probes ready to run.
type procSpec struct {
	spec.ProcessPlan
	readiness *probe // nil: ready once the port accepts connections
	liveness  *probe // nil: none
}

func resolveProcessSpec(s v1alpha1.ProcessSpec) (procSpec, error) {
	pp, err := spec.ResolveProcess(s)
	if err != nil {
		return procSpec{}, err
	}
	return procSpec{ProcessPlan: pp, readiness: (*probe)(pp.Readiness), liveness: (*probe)(pp.Liveness)}, nil
}
