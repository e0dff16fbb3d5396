package spec

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem with a rollout, located as precisely as the
// source allows: file, line and column when it came from a file, always the
// field path (such as spec.strategy.steps[2].setWeight) when there is one.
type FieldError struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int // 1-based; 0 when unknown
	Field  string
	Reason string
}

// Error renders the problem as file:line:col: field: reason, leaving out
// the parts that are not known.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if e.File != "" {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found in a rollout or a file, so that a user can
// fix them all in one go instead of one per run.
type Errors []*FieldError

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when there is no problem; returning
// an empty Errors as an error would make a non-nil error out of nothing.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByPosition orders the problems as they appear in the file; problems
// without a line keep their order and come first.
func (es Errors) sortByPosition() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}
