package route

import (
	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// ValueMatch is one compiled StringMatch with its not, for values that
// are not parts of a request, such as a feature flag's evaluation-context
// attributes: the traffic rules' syntax, the traffic rules' semantics.
type ValueMatch struct {
	m   matcher
	not bool
}

// CompileValueMatch compiles sm; opts serve its inFile list.
func CompileValueMatch(sm v1alpha1.StringMatch, opts Options) (ValueMatch, error) {
	m, err := compileMatcher(sm, opts.compiled())
	if err != nil {
		return ValueMatch{}, err
	}
	return ValueMatch{m: m, not: sm.Not}, nil
}

// Holds reports whether value matches, inverted by not. An absent value
// (present false) never matches and so always satisfies not, as an
// absent header does.
func (vm *ValueMatch) Holds(value string, present bool) bool {
	return (present && vm.m.match(value)) != vm.not
}
