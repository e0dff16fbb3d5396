package convert

import (
	"fmt"
	"strconv"
	"time"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// doc is one input document being converted. It remembers which of its
// fields the conversion read, so that every field it did not read can be
// named afterwards: nothing is dropped silently.
type doc struct {
	file, kind, name string
	root             *yaml.Node
	// used holds the key nodes read, and the value nodes taken whole
	// (copied as they are, so that nothing below them is left over).
	used  map[*yaml.Node]bool
	notes *[]Note
}

// field is a place in a document: a node and its path from the root,
// such as spec.analysis.metrics[1]. A field that is not written has a nil
// node; reading it gives zero values.
type field struct {
	d    *doc
	n    *yaml.Node
	path string
}

func (d *doc) top() field { return field{d: d, n: d.root} }

// note records that the field at path was not carried over, or was
// changed on the way, and why.
func (d *doc) note(line int, path, reason string) {
	*d.notes = append(*d.notes, Note{File: d.file, Line: line, Object: d.kind + " " + d.name, Field: path, Reason: reason})
}

func (f field) ok() bool { return f.n != nil }

func (f field) line() int {
	if f.n == nil {
		return f.d.root.Line
	}
	return f.n.Line
}

func (f field) below(key string) string {
	if f.path == "" {
		return key
	}
	return f.path + "." + key
}

// get returns the value of key in the mapping f, marking it read.
func (f field) get(key string) field {
	out := field{d: f.d, path: f.below(key)}
	if f.n == nil || f.n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(f.n.Content); i += 2 {
		if f.n.Content[i].Value == key {
			f.d.used[f.n.Content[i]] = true
			out.n = f.n.Content[i+1]
			return out
		}
	}
	return out
}

// drop marks key read and, when it is written, notes why it was not
// carried over.
func (f field) drop(key, reason string) {
	if v := f.get(key); v.ok() {
		v.whole()
		f.d.note(v.line(), v.path, reason)
	}
}

// whole marks everything below f read: it is copied as it is, or its
// leaving out was already noted.
func (f field) whole() {
	if f.n != nil {
		f.d.used[f.n] = true
	}
}

// noteHere notes a change or loss at f.
func (f field) noteHere(reason string) { f.d.note(f.line(), f.path, reason) }

func (f field) str() string {
	if f.n == nil || f.n.Kind != yaml.ScalarNode {
		return ""
	}
	return f.n.Value
}

// items returns the elements of the sequence f.
func (f field) items() []field {
	if f.n == nil || f.n.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]field, len(f.n.Content))
	for i, n := range f.n.Content {
		out[i] = field{d: f.d, n: n, path: fmt.Sprintf("%s[%d]", f.path, i)}
	}
	return out
}

// keys returns the keys of the mapping f, in order, without marking them.
func (f field) keys() []string {
	if f.n == nil || f.n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(f.n.Content); i += 2 {
		out = append(out, f.n.Content[i].Value)
	}
	return out
}

// int reads an integer; a value that is not one is noted and read as 0.
func (f field) int() (int64, bool) {
	if !f.ok() {
		return 0, false
	}
	v, err := strconv.ParseInt(f.str(), 10, 64)
	if err != nil {
		f.noteHere(fmt.Sprintf("%q is not a whole number; not carried over", f.str()))
		return 0, false
	}
	return v, true
}

// float reads a number; a value that is not one is noted.
func (f field) float() (float64, bool) {
	if !f.ok() {
		return 0, false
	}
	v, err := strconv.ParseFloat(f.str(), 64)
	if err != nil {
		f.noteHere(fmt.Sprintf("%q is not a number; not carried over", f.str()))
		return 0, false
	}
	return v, true
}

// bool reads true or false.
func (f field) bool() (value, ok bool) {
	if !f.ok() {
		return false, false
	}
	v, err := strconv.ParseBool(f.str())
	if err != nil {
		f.noteHere(fmt.Sprintf("%q is not true or false; not carried over", f.str()))
		return false, false
	}
	return v, true
}

// duration reads a Go duration ("30s", "1m"), or a number of seconds
// when seconds is set (Argo's pause durations and *Seconds fields).
func (f field) duration(seconds bool) *metav1.Duration {
	if !f.ok() {
		return nil
	}
	s := f.str()
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && seconds {
		return &metav1.Duration{Duration: time.Duration(n) * time.Second}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		f.noteHere(fmt.Sprintf("%q is not a positive duration; not carried over", s))
		return nil
	}
	return &metav1.Duration{Duration: d}
}

// decode decodes f into out and marks it read whole.
func (f field) decode(out any) bool {
	if !f.ok() {
		return false
	}
	if err := f.n.Decode(out); err != nil {
		f.noteHere(fmt.Sprintf("cannot be read: %v; not carried over", err))
		return false
	}
	f.whole()
	return true
}

// leftovers notes every field of the document that the conversion did not
// read, so that none is lost without a word.
func (d *doc) leftovers() {
	d.walk(field{d: d, n: d.root})
}

func (d *doc) walk(f field) {
	if f.n == nil || d.used[f.n] {
		return
	}
	switch f.n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(f.n.Content); i += 2 {
			k, v := f.n.Content[i], f.n.Content[i+1]
			child := field{d: d, n: v, path: f.below(k.Value)}
			if !d.used[k] {
				d.note(k.Line, child.path, "pipit convert does not know this field; not carried over")
				continue
			}
			d.walk(child)
		}
	case yaml.SequenceNode:
		for _, it := range f.items() {
			d.walk(it)
		}
	}
}
