package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Limits on what the parser reads. A rollout file is a few kilobytes with
// a few hundred YAML nodes nested less than ten deep; the limits leave
// ample room for that and refuse input made to exhaust memory or time.
const (
	// MaxFileSize is the largest rollout file read, in bytes (1 MiB).
	MaxFileSize = 1 << 20
	// MaxDepth is how deeply mappings and lists may nest.
	MaxDepth = 64
	// MaxNodes is how many YAML nodes (keys, values, items) a file may
	// hold over all its documents.
	MaxNodes = 10000
)

// readFile reads the file at path, refusing a directory and a file over
// MaxFileSize before reading it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, Errors{{File: path, Reason: "is a directory, not a rollout file"}}
	}
	if info.Size() > MaxFileSize {
		return nil, Errors{tooBig(path, info.Size())}
	}
	// The size may grow after Stat, and special files report none: read
	// one byte past the limit to notice.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// ParseFile parses data, one or more YAML documents separated by ---, each
// a Rollout, and validates every rollout. It reports all problems at once
// as Errors, located by filename, line and column. It applies no defaults;
// Resolve does.
//
// Unknown fields, duplicate keys, values of the wrong kind, anchors and
// aliases are refused; so is input beyond MaxFileSize, MaxDepth or
// MaxNodes, and binary data.
func ParseFile(filename string, data []byte) ([]*v1alpha1.Rollout, error) {
	src, err := parseStream(filename, data, rolloutsOnly)
	if err != nil {
		return nil, err
	}
	return src.Rollouts(), nil
}

// reading says what a stream may hold besides valid rollouts.
type reading int

const (
	// rolloutsOnly refuses documents of other APIs (ParseFile).
	rolloutsOnly reading = iota
	// rolloutsAmongOthers keeps documents of other APIs aside but needs
	// a rollout (validate, lint).
	rolloutsAmongOthers
	// anyManifests keeps documents of other APIs aside and needs no
	// rollout (convert).
	anyManifests
)

// parseStream parses the documents of data as ParseFile does. Unless how
// is rolloutsOnly, a document whose apiVersion is not pipit's (a
// Deployment, a Service) is kept aside in Others instead of being refused.
func parseStream(filename string, data []byte, how reading) (*Source, error) {
	if err := checkBytes(filename, data); err != nil {
		return nil, Errors{err}
	}
	var (
		src    = &Source{Name: filename}
		errs   Errors
		names  = map[string]int{} // rollout name → line of its first use
		budget = limits{nodes: MaxNodes}
		dec    = yaml.NewDecoder(bytes.NewReader(data))
	)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(filename, err))
			break
		}
		if bad := budget.check(filename, &doc, 0); bad != nil {
			return nil, Errors{bad}
		}
		root := documentRoot(&doc)
		if root == nil {
			continue
		}
		if other := foreignDocument(filename, root); how != rolloutsOnly && other != nil {
			src.Others = append(src.Others, other)
			continue
		}
		if isTemplateKind(scalarField(root, "kind")) {
			t, d := decodeTemplate(filename, root)
			errs = append(errs, d.errs...)
			if t != nil {
				src.Templates = append(src.Templates, t)
			}
			continue
		}
		r, d := decodeDocument(filename, root)
		errs = append(errs, d.errs...)
		if r == nil {
			continue
		}
		namePos := d.pos["metadata.name"]
		if line, dup := names[r.Name]; dup && r.Name != "" {
			errs = append(errs, &FieldError{File: filename, Line: namePos.line, Column: namePos.column, Field: "metadata.name",
				Reason: fmt.Sprintf("a rollout named %q is already defined on line %d", r.Name, line)})
		} else {
			names[r.Name] = namePos.line
		}
		src.Documents = append(src.Documents, &Document{Rollout: r, File: filename, pos: d.pos})
	}
	if len(errs) == 0 && len(src.Documents) == 0 && len(src.Templates) == 0 && how != anyManifests {
		errs = append(errs, &FieldError{File: filename, Reason: "holds no rollout"})
	}
	if len(errs) > 0 {
		errs.sortByPosition()
		return nil, errs
	}
	return src, nil
}

// decodeDocument turns one document into a Rollout and validates it. It
// returns the rollout, possibly partial, unless the document is not a
// mapping at all, and the decoder holding the problems and positions.
func decodeDocument(filename string, root *yaml.Node) (*v1alpha1.Rollout, *decoder) {
	d := &decoder{file: filename, pos: map[string]position{"": at(root)}}
	if root.Kind == yaml.SequenceNode {
		d.report(root, "", "a rollout is a mapping, not a list; separate several rollouts with ---")
		return nil, d
	}
	var r v1alpha1.Rollout
	if !d.into(root, rolloutType, &r) {
		return nil, d
	}
	d.errs = append(d.errs, d.locate(Validate(&r))...)
	return &r, d
}

// decodeTemplate turns one document of a metric template kind into a
// template and validates it, as decodeDocument does a rollout.
func decodeTemplate(filename string, root *yaml.Node) (*TemplateDocument, *decoder) {
	d := &decoder{file: filename, pos: map[string]position{"": at(root)}}
	var t v1alpha1.RolloutMetricTemplate
	if !d.into(root, templateType, &t) {
		return nil, d
	}
	d.errs = append(d.errs, d.locate(ValidateTemplate(&t))...)
	return &TemplateDocument{Template: &t, File: filename, pos: d.pos}, d
}

// into decodes root, checked against type t, into out; it reports false
// when the document was refused.
func (d *decoder) into(root *yaml.Node, t reflect.Type, out any) bool {
	v, ok := d.value(root, t, "")
	if !ok {
		return false
	}
	raw, err := json.Marshal(v)
	if err == nil {
		if err = json.Unmarshal(raw, out); err == nil {
			return true
		}
	}
	// The walk checked every value against its type, so this is a bug
	// in pipit rather than in the file; still say where.
	d.errs = append(d.errs, &FieldError{File: d.file, Line: root.Line, Column: root.Column,
		Reason: "pipit could not decode this document: " + err.Error()})
	return false
}

// locate gives validation errors the position of their field, or of its
// nearest parent written in the file, and drops those about values the
// decoder already refused.
func (d *decoder) locate(errs Errors) Errors {
	var out Errors
	for _, e := range errs {
		if d.isRefused(e.Field) {
			continue
		}
		pos := nearest(d.pos, e.Field)
		e.File, e.Line, e.Column = d.file, pos.line, pos.column
		out = append(out, e)
	}
	return out
}

// isRefused reports whether path is, contains or lies within a value the
// decoder refused: a step whose setWeight was refused would otherwise also
// be reported as having no kind.
func (d *decoder) isRefused(path string) bool {
	for _, r := range d.refused {
		if within(path, r) || within(r, path) {
			return true
		}
	}
	return false
}

// nearest returns where field is written, or else its nearest parent.
func nearest(positions map[string]position, field string) position {
	pos, ok := positions[field]
	for !ok && field != "" {
		field = parentPath(field)
		pos, ok = positions[field]
	}
	return pos
}

// within reports whether path is parent or lies under it.
func within(path, parent string) bool {
	if parent == "" || path == parent {
		return true
	}
	rest, ok := strings.CutPrefix(path, parent)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// parentPath drops the last element of a field path: the parent of
// spec.strategy.steps[2] is spec.strategy.steps, of metadata.labels[a.b]
// metadata.labels.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// documentRoot returns the content of a document, or nil when the
// document is empty (only comments, or a bare ---).
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == tagNull && root.Value == "" {
		return nil
	}
	return root
}

// limits counts what the files' documents used so far.
type limits struct{ nodes int }

// check refuses aliases, anchors, too deep nesting and too many nodes. It
// visits alias nodes without following them, so an alias bomb costs no
// more than its text.
func (l *limits) check(filename string, n *yaml.Node, depth int) *FieldError {
	refuse := func(format string, args ...any) *FieldError {
		return &FieldError{File: filename, Line: n.Line, Column: n.Column, Reason: fmt.Sprintf(format, args...)}
	}
	l.nodes--
	switch {
	case l.nodes < 0:
		return refuse("the file holds more than %d YAML nodes; a rollout needs far fewer", MaxNodes)
	case depth > MaxDepth:
		return refuse("nesting is deeper than %d levels", MaxDepth)
	case n.Kind == yaml.AliasNode || n.Anchor != "":
		// An anchor always comes before its aliases, so this refuses
		// an alias bomb at its first anchor.
		return refuse("YAML anchors and aliases (&name, *name) are not allowed: a rollout needs none, and refusing them stops alias bombs")
	}
	for _, c := range n.Content {
		if bad := l.check(filename, c, depth+1); bad != nil {
			return bad
		}
	}
	return nil
}

// checkBytes refuses input that is too big or is not UTF-8 text, before
// the YAML parser spends any work on it.
func checkBytes(filename string, data []byte) *FieldError {
	if len(data) > MaxFileSize {
		return tooBig(filename, int64(len(data)))
	}
	bad, what := bytes.IndexByte(data, 0), "a NUL byte"
	if bad < 0 && !utf8.Valid(data) {
		bad, what = firstInvalidUTF8(data), "bytes that are not UTF-8"
	}
	if bad < 0 {
		return nil
	}
	line := 1 + bytes.Count(data[:bad], []byte{'\n'})
	column := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:bad], '\n')+1:bad])
	return &FieldError{File: filename, Line: line, Column: column,
		Reason: "binary data (" + what + "); a rollout file is UTF-8 text"}
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

func tooBig(filename string, size int64) *FieldError {
	return &FieldError{File: filename,
		Reason: fmt.Sprintf("is %d bytes; rollout files are limited to 1 MiB (%d bytes)", size, MaxFileSize)}
}

// yamlLine matches the line number the YAML parser puts in its errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a YAML parser error into a FieldError with its line.
func syntaxError(filename string, err error) *FieldError {
	msg := err.Error()
	if strings.Contains(msg, "exceeded max depth") {
		return &FieldError{File: filename, Reason: fmt.Sprintf("nesting is deeper than %d levels", MaxDepth)}
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: filename, Line: line, Reason: "invalid YAML: " + m[2]}
	}
	return &FieldError{File: filename, Reason: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}
