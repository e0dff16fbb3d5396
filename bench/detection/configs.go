package main

import (
	_ "embed"
	"fmt"

	"github.com/pipit-dev/pipit/internal/spec"
)

// The two configurations, as rollout files: parsed, validated and resolved
// by pipit's own spec package, so the engine runs exactly what a user
// would get from these files.
var (
	//go:embed pipit-default.yaml
	pipitDefaultYAML []byte
	//go:embed flagger-default.yaml
	flaggerDefaultYAML []byte
)

// config is one analysis configuration under test.
type config struct {
	name string
	plan spec.Plan
}

// loadConfigs returns pipit's default and the Flagger-equivalent
// configuration, in that order.
func loadConfigs() ([]config, error) {
	var out []config
	for _, f := range []struct {
		file string
		data []byte
	}{{"pipit-default.yaml", pipitDefaultYAML}, {"flagger-default.yaml", flaggerDefaultYAML}} {
		c, err := loadConfig(f.file, f.data)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func loadConfig(file string, data []byte) (config, error) {
	rs, err := spec.ParseFile(file, data)
	if err != nil {
		return config{}, err
	}
	if len(rs) != 1 {
		return config{}, fmt.Errorf("%s: want one rollout, got %d", file, len(rs))
	}
	plan, err := spec.Resolve(&rs[0].Spec)
	if err != nil {
		return config{}, fmt.Errorf("%s: %w", file, err)
	}
	for _, m := range plan.Analysis.Metrics {
		if err := simulated(m); err != nil {
			return config{}, fmt.Errorf("%s: metric %s: %w", file, m.Name, err)
		}
	}
	if w, ok := holdWeight(plan); !ok || w <= 0 {
		return config{}, fmt.Errorf("%s: the plan must start with a setWeight above 0", file)
	}
	return config{name: rs[0].Name, plan: plan}, nil
}

// simulated reports an error for a metric the simulation cannot measure:
// it counts requests and errors, and draws latencies, so rates are judged
// on their value and latencies can also be compared.
func simulated(m spec.PlanMetric) error {
	if m.Provider != nil {
		return fmt.Errorf("only builtin metrics are simulated")
	}
	if m.Compare != nil {
		switch m.Name {
		case latencyP50, latencyP95, latencyP99, requestDuration:
			return nil
		}
		return fmt.Errorf("only latencies can be compared in the simulation")
	}
	switch m.Name {
	case requestSuccessRate, errorRateMetric, requestCount,
		latencyP50, latencyP95, latencyP99, requestDuration:
		return nil
	}
	return fmt.Errorf("not simulated")
}

// holdWeight is the weight of the plan's first step, where the benchmark
// measures detection.
func holdWeight(p spec.Plan) (float64, bool) {
	if len(p.Steps) == 0 || p.Steps[0].Kind != spec.StepSetWeight {
		return 0, false
	}
	return p.Steps[0].Weight.Float() / 100, true
}
