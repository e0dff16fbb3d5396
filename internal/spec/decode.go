package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// YAML tags the decoder tells apart, as yaml.Node.ShortTag reports them.
const (
	tagNull  = "!!null"
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagTime  = "!!timestamp"
	tagMerge = "!!merge"
)

var (
	durationType = reflect.TypeFor[metav1.Duration]()
	percentType  = reflect.TypeFor[v1alpha1.Percent]()
	presetType   = reflect.TypeFor[v1alpha1.Preset]()
	jsonType     = reflect.TypeFor[apiextensionsv1.JSON]()
	rolloutType  = reflect.TypeFor[v1alpha1.Rollout]()
	templateType = reflect.TypeFor[v1alpha1.RolloutMetricTemplate]()
	metaType     = reflect.TypeFor[metav1.ObjectMeta]()
)

// metadataFields are the parts of metav1.ObjectMeta a person writes; the
// rest is set by Kubernetes and has no meaning in a rollout file.
var metadataFields = map[string]bool{"name": true, "namespace": true, "labels": true, "annotations": true}

// position is where a node starts in the file.
type position struct{ line, column int }

func at(n *yaml.Node) position { return position{n.Line, n.Column} }

// decoder walks a YAML node tree against the Go type it should fill,
// using the JSON field names, and builds the equivalent JSON value. It
// reports every unknown field, wrong kind and malformed value with its
// position instead of stopping at the first, and drops what it refused so
// that the rest can still be validated.
type decoder struct {
	file string
	errs Errors
	// pos maps a field path to where it is written, so that validation
	// errors, which know only paths, can be given a line.
	pos map[string]position
	// refused lists the paths of values the decoder dropped; validation
	// errors about them or their parents would only repeat the problem.
	refused []string
}

// report records a problem at n.
func (d *decoder) report(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{
		File: d.file, Line: n.Line, Column: n.Column, Field: path,
		Reason: fmt.Sprintf(format, args...),
	})
}

// fail records a problem with the value at path, which is dropped.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.report(n, path, format, args...)
	d.refused = append(d.refused, path)
}

// value converts n into the JSON form of type t. It returns nil with ok
// true when the value is absent (null where absence is allowed), and ok
// false after reporting why the value was refused.
func (d *decoder) value(n *yaml.Node, t reflect.Type, path string) (v any, ok bool) {
	if tag := n.Tag; tag != "" && !strings.HasPrefix(tag, "!!") && tag != "!" {
		d.fail(n, path, "custom YAML tags such as %s are not supported", clip(tag))
		return nil, false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.ShortTag() == tagNull {
		return d.null(n, t, path)
	}
	switch {
	case t == durationType:
		return d.duration(n, path)
	case t == percentType:
		return d.percent(n, path)
	case t == presetType && n.Kind == yaml.ScalarNode:
		// A preset is a bare name or a mapping (v1alpha1.Preset).
		return d.text(n, path)
	case t == jsonType:
		return d.anyJSON(n, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.object(n, t, path)
	case reflect.Slice:
		return d.list(n, t, path)
	case reflect.Map:
		return d.dict(n, t, path)
	case reflect.String:
		return d.text(n, path)
	case reflect.Int32, reflect.Int64:
		return d.integer(n, t, path)
	case reflect.Float64:
		return d.float(n, path)
	case reflect.Bool:
		return d.boolean(n, path)
	}
	d.fail(n, path, "pipit cannot read a field of Go type %s", t)
	return nil, false
}

// null decides what an empty value means: an empty section for structs
// (so "pause:" is an indefinite pause, as in Argo Rollouts), absence for
// lists and maps, and a mistake for single values.
func (d *decoder) null(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	switch t.Kind() {
	case reflect.Struct:
		if t != durationType {
			return map[string]any{}, true
		}
	case reflect.Slice, reflect.Map:
		return nil, true
	}
	d.fail(n, path, "has no value; want %s", want(t))
	return nil, false
}

func (d *decoder) object(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of fields, not %s", describe(n))
		return nil, false
	}
	fields := jsonFields(t)
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, vn := n.Content[i], n.Content[i+1]
		name, p, ok := d.key(k, path, seen, join)
		if !ok {
			continue
		}
		d.pos[p] = at(k)
		ft, known := fields[name]
		if reason := refusedField(t, name, known); reason != "" {
			d.report(k, p, "%s", reason)
			continue
		}
		if !known {
			msg := fmt.Sprintf("unknown field %q", clip(name))
			if guess := closest(name, allowedNames(t, fields)); guess != "" {
				msg += fmt.Sprintf(", did you mean %q?", guess)
			}
			d.report(k, p, "%s", msg)
			continue
		}
		if v, ok := d.value(vn, ft, p); ok && v != nil {
			out[name] = v
		}
	}
	return out, true
}

// key reads a mapping key and returns it with the path of its value,
// made by child. It refuses duplicates and keys that are not plain names;
// seen records the line of every key of the mapping.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int, child func(path, key string) string) (name, p string, ok bool) {
	if k.Kind != yaml.ScalarNode {
		d.report(k, path, "keys must be plain names, not %s", describe(k))
		return "", "", false
	}
	if k.ShortTag() == tagMerge {
		d.report(k, path, "merge keys (<<) are not supported; write the fields out")
		return "", "", false
	}
	p = child(path, clip(k.Value))
	if line, dup := seen[k.Value]; dup {
		// The first value stays and is validated as usual.
		d.report(k, p, "duplicate key %q; it is first set on line %d", clip(k.Value), line)
		return "", "", false
	}
	seen[k.Value] = k.Line
	return k.Value, p, true
}

func (d *decoder) list(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list, not %s", describe(n))
		return nil, false
	}
	out := make([]any, len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.pos[p] = at(item)
		v, ok := d.value(item, t.Elem(), p)
		if !ok || v == nil {
			// Keep the indexes of the items after it, so that
			// their errors name the right step.
			v = reflect.Zero(t.Elem()).Interface()
		}
		out[i] = v
	}
	return out, true
}

func (d *decoder) dict(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, not %s", describe(n))
		return nil, false
	}
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, vn := n.Content[i], n.Content[i+1]
		name, p, ok := d.key(k, path, seen, index)
		if !ok {
			continue
		}
		d.pos[p] = at(k)
		if v, ok := d.value(vn, t.Elem(), p); ok && v != nil {
			out[name] = v
		}
	}
	return out, true
}

// anyJSON reads a free-form value (a flag variant's) as the JSON value
// it stands for; what JSON cannot hold is refused.
func (d *decoder) anyJSON(n *yaml.Node, path string) (any, bool) {
	var v any
	if err := n.Decode(&v); err != nil {
		d.fail(n, path, "%v", err)
		return nil, false
	}
	if _, err := json.Marshal(v); err != nil {
		d.fail(n, path, "is not a value JSON can hold (mapping keys must be strings, numbers finite)")
		return nil, false
	}
	return v, true
}

func (d *decoder) text(n *yaml.Node, path string) (any, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case tagStr, tagInt, tagFloat, tagBool, tagTime:
			// A version such as 1.10 is meant as written, not as
			// the number 1.1.
			return n.Value, true
		}
	}
	d.fail(n, path, "want a string, not %s", describe(n))
	return nil, false
}

func (d *decoder) integer(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tagInt {
		d.fail(n, path, "want a whole number, not %s", describe(n))
		return nil, false
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		d.fail(n, path, "%s is not a whole number pipit can hold", clip(n.Value))
		return nil, false
	}
	bits := t.Bits()
	if lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1; i < lo || i > hi {
		d.fail(n, path, "%d is out of range", i)
		return nil, false
	}
	return i, true
}

func (d *decoder) float(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagInt && n.ShortTag() != tagFloat) {
		d.fail(n, path, "want a number, not %s", describe(n))
		return nil, false
	}
	var f float64
	if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(n, path, "%s is not a finite number", clip(n.Value))
		return nil, false
	}
	return f, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tagBool {
		d.fail(n, path, "want true or false, not %s", describe(n))
		return nil, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.fail(n, path, "want true or false, not %s", describe(n))
		return nil, false
	}
	return b, true
}

func (d *decoder) percent(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagInt && n.ShortTag() != tagFloat) {
		hint := ""
		if n.Kind == yaml.ScalarNode && strings.HasSuffix(n.Value, "%") {
			hint = fmt.Sprintf(" (write %s without the %%)", clip(strings.TrimSuffix(n.Value, "%")))
		}
		d.fail(n, path, "want a number of percent such as 5 or 2.5, not %s%s", describe(n), hint)
		return nil, false
	}
	p, err := v1alpha1.ParsePercent(n.Value)
	if err != nil {
		d.fail(n, path, "%v", err)
		return nil, false
	}
	return p, true
}

func (d *decoder) duration(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tagStr {
		hint := ""
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == tagInt || n.ShortTag() == tagFloat) {
			hint = " (add a unit)"
		}
		d.fail(n, path, "want a duration such as 30s or 10m, not %s%s", describe(n), hint)
		return nil, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n, path, "%s is not a duration; write it like 30s, 10m or 1h30m", strconv.Quote(clip(n.Value)))
		return nil, false
	}
	if v < 0 {
		d.fail(n, path, "must not be negative, not %s", n.Value)
		return nil, false
	}
	return n.Value, true
}

// jsonFields maps the JSON names of a struct's fields to their types,
// flattening embedded structs marked inline as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct:
			for n, ft := range jsonFields(f.Type) {
				out[n] = ft
			}
		case name == "":
			out[f.Name] = f.Type
		default:
			out[name] = f.Type
		}
	}
	return out
}

// refusedField explains why a field of t may not be written in a file, or
// returns "" when it may.
func refusedField(t reflect.Type, name string, known bool) string {
	switch {
	case t == rolloutType && name == "status":
		return "is written by pipit, not read from a rollout file; remove it"
	case t == metaType && known && !metadataFields[name]:
		return "is set by Kubernetes; a rollout file may set only metadata.name, namespace, labels and annotations"
	}
	return ""
}

// allowedNames lists the fields a user may write in a mapping of type t.
func allowedNames(t reflect.Type, fields map[string]reflect.Type) []string {
	var names []string
	for name := range fields {
		if refusedField(t, name, true) == "" {
			names = append(names, name)
		}
	}
	return names
}

// index is the path of a map entry, as in metadata.labels[app].
func index(path, key string) string { return path + "[" + key + "]" }

// join is the path of a struct field, as in spec.strategy.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
