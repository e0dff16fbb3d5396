// Package flag evaluates the feature flags pipit rolls out, as OpenFeature's
// remote evaluation protocol (OFREP) answers: which variant a user gets
// at the rollout's current weight, and why. A flag's variants play the
// versions' parts: the stable variant is the one everybody has, the canary
// variant the one rolled out to the share of users the weight says, by
// their targetingKey hashed into the proxy's buckets (route.Hasher).
package flag

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
)

// OFREP reasons: why an evaluation gave its variant.
const (
	// ReasonTargetingMatch: a rule on the evaluation context chose.
	ReasonTargetingMatch = "TARGETING_MATCH"
	// ReasonSplit: the user's bucket at the rollout's weight chose.
	ReasonSplit = "SPLIT"
	// ReasonDefault: no rollout is under way; the default variant.
	ReasonDefault = "DEFAULT"
	// ReasonStatic: no rollout is under way; a variant promoted earlier.
	ReasonStatic = "STATIC"
	// ReasonDisabled: the rollout was rolled back; the variant rolled
	// out is turned off for everyone.
	ReasonDisabled = "DISABLED"
)

// OFREP error codes.
const (
	ErrFlagNotFound        = "FLAG_NOT_FOUND"
	ErrInvalidContext      = "INVALID_CONTEXT"
	ErrTargetingKeyMissing = "TARGETING_KEY_MISSING"
	ErrParse               = "PARSE_ERROR"
	ErrGeneral             = "GENERAL"
)

// TargetingKey is the evaluation-context attribute that identifies a user.
const TargetingKey = "targetingKey"

// Flag is a compiled v1alpha1.FlagSpec. It is immutable.
type Flag struct {
	key            string
	defaultVariant string
	variants       map[string]json.RawMessage
	hash           route.Hasher
	rules          []rule
}

// rule is one compiled v1alpha1.FlagRule.
type rule struct {
	name     string
	toCanary bool
	conds    []attrCond
}

// attrCond is one attribute's condition.
type attrCond struct {
	name string
	m    route.ValueMatch
}

// Compile checks and compiles spec; opts serve the rules' inFile lists.
func Compile(spec *v1alpha1.FlagSpec, opts route.Options) (*Flag, error) {
	f := &Flag{key: spec.Key, defaultVariant: spec.DefaultVariant, variants: map[string]json.RawMessage{}}
	for name, v := range spec.Variants {
		f.variants[name] = json.RawMessage(v.Raw)
	}
	if _, ok := f.variants[spec.DefaultVariant]; !ok {
		return nil, fmt.Errorf("flag %s: defaultVariant %q is not one of its variants", spec.Key, spec.DefaultVariant)
	}
	salt := spec.Salt
	if salt == "" {
		salt = spec.Key
	}
	f.hash = route.NewHasher(salt)
	for i, r := range spec.Rules {
		ru := rule{name: r.Name, toCanary: r.To == v1alpha1.DestinationCanary}
		for _, name := range slices.Sorted(maps.Keys(r.Attributes)) {
			m, err := route.CompileValueMatch(r.Attributes[name], opts)
			if err != nil {
				return nil, fmt.Errorf("flag %s: rule %d: attribute %s: %w", spec.Key, i, name, err)
			}
			ru.conds = append(ru.conds, attrCond{name: name, m: m})
		}
		f.rules = append(f.rules, ru)
	}
	return f, nil
}

// Key is the flag's key.
func (f *Flag) Key() string { return f.key }

// HasVariant reports whether name is one of the flag's variants.
func (f *Flag) HasVariant(name string) bool {
	_, ok := f.variants[name]
	return ok
}

// State is where a flag's rollout stands, as its target and router set
// it: the variants in the stable's and the canary's parts, the canary's
// weight and whether it may be served.
type State struct {
	Stable string
	// Canary is the variant rolled out; empty for none.
	Canary string
	Weight v1alpha1.Percent
	// Live is whether the canary variant may be served at all.
	Live bool
	// Disabled is set after a rollback: the variant that was rolled out
	// is off for everyone, and answers say so.
	Disabled bool
}

// Result is a successful evaluation, as OFREP writes it.
type Result struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	Variant  string          `json:"variant"`
	Reason   string          `json:"reason"`
	Metadata map[string]any  `json:"metadata,omitempty"`
	// Canary is whether the variant served is the canary's, to which the
	// user's outcomes count.
	Canary bool `json:"-"`
}

// Failure is a failed evaluation, as OFREP writes it, with its HTTP
// status.
type Failure struct {
	Key          string `json:"key,omitempty"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
	Status       int    `json:"-"`
}

func (e *Failure) Error() string { return e.ErrorCode + ": " + e.ErrorDetails }

// Evaluate answers for the evaluation context ctx (a JSON object's
// members) in state st. A targetingKey is needed only while the flag is
// split between two variants and no rule decided; it must be a string.
func (f *Flag) Evaluate(st State, ctx map[string]any) (Result, *Failure) {
	key, hasKey := ctx[TargetingKey]
	userKey, isString := key.(string)
	if hasKey && key != nil && !isString {
		return Result{}, f.fail(ErrInvalidContext, "targetingKey must be a string")
	}
	if st.Canary == "" || !st.Live || st.Weight <= 0 && !f.rulesToCanary() {
		return f.static(st), nil
	}
	for i := range f.rules {
		if ru := &f.rules[i]; ru.matches(ctx) {
			r := f.result(st, ru.toCanary, ReasonTargetingMatch)
			if ru.name != "" {
				r.Metadata["rule"] = ru.name
			}
			return r, nil
		}
	}
	switch {
	case st.Weight <= 0:
		return f.static(st), nil
	case st.Weight >= v1alpha1.FullWeight:
		return f.result(st, true, ReasonSplit), nil
	case userKey == "":
		return Result{}, f.fail(ErrTargetingKeyMissing, "the flag is being rolled out to a share of users: give each user's targetingKey")
	}
	return f.result(st, f.hash.InCanary(userKey, st.Weight), ReasonSplit), nil
}

// static is the answer when no split is under way: the stable variant.
func (f *Flag) static(st State) Result {
	reason := ReasonStatic
	switch {
	case st.Disabled:
		reason = ReasonDisabled
	case st.Stable == f.defaultVariant:
		reason = ReasonDefault
	}
	return f.result(st, false, reason)
}

func (f *Flag) result(st State, canary bool, reason string) Result {
	variant := st.Stable
	if canary {
		variant = st.Canary
	}
	return Result{Key: f.key, Value: f.variants[variant], Variant: variant, Reason: reason, Canary: canary,
		Metadata: map[string]any{"weight": st.Weight.String()}}
}

func (f *Flag) fail(code, details string) *Failure {
	status := http.StatusBadRequest
	if code == ErrFlagNotFound {
		status = http.StatusNotFound
	}
	return &Failure{Key: f.key, ErrorCode: code, ErrorDetails: details, Status: status}
}

// NotFound is the failure of evaluating a flag no rollout serves.
func NotFound(key string) *Failure {
	return &Failure{Key: key, ErrorCode: ErrFlagNotFound, ErrorDetails: "no rollout serves flag " + strconv.Quote(key), Status: http.StatusNotFound}
}

// rulesToCanary reports whether a rule gives the canary variant, which
// is then served even at weight 0, as a traffic rule sends requests.
func (f *Flag) rulesToCanary() bool {
	return slices.ContainsFunc(f.rules, func(r rule) bool { return r.toCanary })
}

// matches reports whether every condition holds on ctx. An attribute
// that is a string is matched as it is; a number or a boolean as its
// JSON text; an object, a list or null is absent.
func (ru *rule) matches(ctx map[string]any) bool {
	for i := range ru.conds {
		c := &ru.conds[i]
		v, present := attrText(ctx[c.name])
		if !c.m.Holds(v, present) {
			return false
		}
	}
	return true
}

func attrText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	}
	return "", false
}
