// Package condition compiles and evaluates the boolean expressions a metric
// may judge its value with (successCondition, failureCondition): expr-lang
// expressions over result, canary and stable. It is pure, and apart from
// the analysis so that spec validation can compile a condition exactly as
// the analysis will, without depending on the analysis.
package condition

import (
	"errors"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// ErrNoStable is Eval's error for a condition that reads stable when the
// stable version had no data.
var ErrNoStable = errors.New("the stable version has no data to compare with")

// programs caches compiled conditions: a rollout checks the same few
// expressions at every interval. Compiling is deterministic, so the cache
// changes no result.
var programs sync.Map // string -> *vm.Program

// Compile checks that a condition is a valid boolean expression over
// result, canary and stable, for validation.
func Compile(src string) error {
	_, err := compile(src)
	return err
}

// Eval says whether a condition holds when the canary measured canary and
// the stable measured *stable, or nothing when stable is nil.
func Eval(src string, canary float64, stable *float64) (bool, error) {
	p, err := compile(src)
	if err != nil {
		return false, err
	}
	if stable == nil && usesStable(p) {
		return false, ErrNoStable
	}
	out, err := expr.Run(p, env(canary, stable))
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}

// env is what a condition sees: result and canary are the canary's value;
// stable is the stable's, or nil when it had no data.
func env(canary float64, stable *float64) map[string]any {
	e := map[string]any{"result": canary, "canary": canary, "stable": nil}
	if stable != nil {
		e["stable"] = *stable
	}
	return e
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

// usesStable reports whether a program reads the stable value.
func usesStable(p *vm.Program) bool {
	for _, c := range p.Constants {
		if s, ok := c.(string); ok && s == "stable" {
			return true
		}
	}
	return false
}
