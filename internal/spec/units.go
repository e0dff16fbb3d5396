package spec

import (
	"strings"
	"unicode"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// symbol is how people read the unit after a value.
func (u unit) symbol() string {
	switch u {
	case unitPercent, unitUsage:
		return "%"
	case unitMillis:
		return "ms"
	case unitCount:
		return "requests"
	}
	return ""
}

// MetricUnit is the unit of a metric's values as people read it after a
// value: the metric's own unit when written, else a built-in metric's
// ("%", "ms", "requests"); "" when nothing says, as for a query of the
// user's without one.
func MetricUnit(m v1alpha1.MetricSpec) string {
	if m.Unit != "" {
		return m.Unit
	}
	if !isBuiltin(m) {
		return ""
	}
	u, builtin := metricUnit(m.Name)
	if !builtin {
		return ""
	}
	return u.symbol()
}

// WithUnit writes a number with its unit after it, as people write them:
// "99.5%" and "7.49ms" (percent and time units stick to the number),
// "120 requests" and "3.2 req/s" (the others come after a space), the
// number alone when there is no unit.
func WithUnit(number, unit string) string {
	switch unit {
	case "":
		return number
	case "%", "ns", "us", "µs", "ms", "s", "m", "h":
		return number + unit
	}
	return number + " " + unit
}

// maxUnitLength bounds a metric's unit, shown after every value.
const maxUnitLength = 16

// unitField checks a metric's unit: short, printable, for metrics with
// a provider; a built-in metric has its own.
func (v *validator) unitField(p string, m *v1alpha1.MetricSpec) {
	switch u := m.Unit; {
	case u == "":
	case isBuiltin(*m):
		v.add(p, "is for metrics with a provider or a templateRef; the built-in metrics know their own (docs/spec.md, Built-in metrics)")
	case len(u) > maxUnitLength:
		v.add(p, "must be at most %d bytes, such as ms or req/s, not %q", maxUnitLength, clip(u))
	case strings.TrimSpace(u) != u || strings.IndexFunc(u, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		v.add(p, "must be printable without spaces around it, such as ms or req/s, not %q", clip(u))
	}
}
