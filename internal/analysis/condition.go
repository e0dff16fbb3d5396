package analysis

import (
	"fmt"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// conditionEnv is what a condition sees: result and canary are the
// canary's value; stable is the stable's, or nil when it had no data.
func conditionEnv(canary float64, stable *float64) map[string]any {
	env := map[string]any{"result": canary, "canary": canary, "stable": nil}
	if stable != nil {
		env["stable"] = *stable
	}
	return env
}

// programs caches compiled conditions: a rollout checks the same few
// expressions at every interval. Compiling is deterministic, so the cache
// changes no result.
var programs sync.Map // string -> *vm.Program

// CompileCondition checks that a condition is a valid boolean expression
// over result, canary and stable, for validation.
func CompileCondition(src string) error {
	_, err := compile(src)
	return err
}

func compile(src string) (*vm.Program, error) {
	if p, ok := programs.Load(src); ok {
		return p.(*vm.Program), nil
	}
	p, err := expr.Compile(src, expr.Env(map[string]any{"result": 0.0, "canary": 0.0, "stable": 0.0}), expr.AsBool())
	if err != nil {
		return nil, err
	}
	programs.Store(src, p)
	return p, nil
}

func evalCondition(src string, env map[string]any) (bool, error) {
	p, err := compile(src)
	if err != nil {
		return false, err
	}
	if env["stable"] == nil && usesStable(p) {
		return false, fmt.Errorf("the stable version has no data to compare with")
	}
	out, err := expr.Run(p, env)
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}

// usesStable reports whether a program reads the stable value.
func usesStable(p *vm.Program) bool {
	for _, c := range p.Constants {
		if s, ok := c.(string); ok && s == "stable" {
			return true
		}
	}
	return false
}
