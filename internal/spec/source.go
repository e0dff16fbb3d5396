package spec

import (
	"fmt"
	"io"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Stdin is the name that stands for standard input among file names, as
// in `kustomize build | pipit lint -`.
const Stdin = "-"

// stdinName names standard input in messages and positions.
const stdinName = "<stdin>"

// Source is what one file, or standard input, holds: its rollouts, and the
// documents of other kinds a manifest stream carries beside them.
type Source struct {
	// Name is the file's name, or <stdin>.
	Name string
	// Documents are the rollouts, in the order they are written.
	Documents []*Document
	// Templates are the metric templates, of both kinds, in the order
	// they are written.
	Templates []*TemplateDocument
	// Others are the documents that are not pipit's, such as the
	// Deployment a Kubernetes rollout's targetRef names.
	Others []*Other
}

// Rollouts returns the source's rollouts.
func (s *Source) Rollouts() []*v1alpha1.Rollout {
	out := make([]*v1alpha1.Rollout, len(s.Documents))
	for i, d := range s.Documents {
		out[i] = d.Rollout
	}
	return out
}

// Document is one valid rollout with where each of its fields is written,
// so that checks beyond validation (pipit lint) can point at the field.
type Document struct {
	Rollout *v1alpha1.Rollout
	File    string
	pos     map[string]position
}

// Position returns the line and column where field (a path such as
// spec.strategy.steps[2].setWeight) is written, or else where its nearest
// written parent is: a default left out of the file is pointed at by the
// section it belongs to.
func (d *Document) Position(field string) (line, column int) {
	p := nearest(d.pos, field)
	return p.line, p.column
}

// TemplateDocument is one valid metric template, of either kind (see
// ValidateTemplate), with where each of its fields is written.
type TemplateDocument struct {
	Template *v1alpha1.RolloutMetricTemplate
	File     string
	pos      map[string]position
}

// Other is a document of another API than pipit's in a manifest stream.
type Other struct {
	File       string
	Line       int
	APIVersion string
	Kind       string
	Name       string
	// Root is the document's mapping, for checks that look inside it.
	Root *yaml.Node
}

// String names the document for a note such as "skipping …".
func (o *Other) String() string {
	return fmt.Sprintf("%s:%d: %s %s (%s)", o.File, o.Line, o.Kind, o.Name, o.APIVersion)
}

// ReadSource reads the rollout file name, or standard input from stdin
// when name is Stdin, refusing one over MaxFileSize before reading it, and
// parses it as ParseFile does, but keeps the documents of other APIs
// aside in Others instead of refusing them. It is the one reader of
// `pipit validate` and `pipit lint`.
func ReadSource(name string, stdin io.Reader) (*Source, error) {
	return readSource(name, stdin, rolloutsAmongOthers)
}

// ReadManifests reads name as ReadSource does, but a source without any
// rollout is not an error: it is the reader of `pipit convert`, whose
// input is other projects' manifests.
func ReadManifests(name string, stdin io.Reader) (*Source, error) {
	return readSource(name, stdin, anyManifests)
}

func readSource(name string, stdin io.Reader, how reading) (*Source, error) {
	if name != Stdin {
		data, err := readFile(name)
		if err != nil {
			return nil, err
		}
		return parseStream(name, data, how)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	return parseStream(stdinName, data, how)
}

// foreignDocument returns root as an Other when its apiVersion is set and
// is not pipit's group, and nil otherwise: a document with a misspelled
// kind or apiVersion of pipit's own is still a rollout with a mistake.
func foreignDocument(filename string, root *yaml.Node) *Other {
	if root.Kind != yaml.MappingNode {
		return nil
	}
	o := &Other{File: filename, Line: root.Line, Root: root}
	o.APIVersion = scalarField(root, "apiVersion")
	if o.APIVersion == "" || strings.HasPrefix(o.APIVersion, v1alpha1.Group+"/") {
		return nil
	}
	o.Kind = scalarField(root, "kind")
	if meta := Field(root, "metadata"); meta != nil {
		o.Name = scalarField(meta, "name")
	}
	return o
}

// Field returns the value of key in the mapping n, or nil.
func Field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarField(n *yaml.Node, key string) string {
	if v := Field(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// ParseSource parses data as ParseFile does, but keeps the metric
// templates written beside the rollouts: the reader of pipit up's files.
func ParseSource(filename string, data []byte) (*Source, error) {
	return parseStream(filename, data, rolloutsOnly)
}

// ExpandSources resolves the templateRefs of the rollouts of srcs from
// the templates of srcs, all files together as pipit up -f reads them,
// and replaces each document's rollout by its expanded copy (see
// ExpandTemplates). It reports every problem located in its file: a
// template defined twice, a missing one, an argument.
func ExpandSources(srcs []*Source) Errors {
	set := NewTemplateSet("in the files given")
	var errs Errors
	first := map[templateKey]string{}
	for _, src := range srcs {
		for _, td := range src.Templates {
			t := td.Template
			k := keyOf(t.Kind, t.Namespace, t.Name)
			if prev, dup := first[k]; dup {
				errs = append(errs, locateIn(td.File, td.pos, Errors{{Field: "metadata.name",
					Reason: fmt.Sprintf("%s is already defined in %s", k, prev)}})...)
				continue
			}
			first[k] = fmt.Sprintf("%s:%d", td.File, nearest(td.pos, "metadata.name").line)
			set.Add(t.Kind, t.Namespace, t.Name, &t.Spec)
		}
	}
	for _, src := range srcs {
		for _, doc := range src.Documents {
			r, es := ExpandTemplates(doc.Rollout, set)
			errs = append(errs, locateIn(doc.File, doc.pos, es)...)
			doc.Rollout = r
		}
	}
	errs.sortByPosition()
	return errs
}

// locateIn gives problems found in a document of file the position of
// their field, or of its nearest parent written.
func locateIn(file string, pos map[string]position, errs Errors) Errors {
	for _, e := range errs {
		p := nearest(pos, e.Field)
		e.File, e.Line, e.Column = file, p.line, p.column
	}
	return errs
}
