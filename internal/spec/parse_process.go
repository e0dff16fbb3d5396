package spec

import (
	"encoding/json"
	"reflect"

	yaml "go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

var processSpecType = reflect.TypeFor[v1alpha1.ProcessSpec]()

// ParseProcessFile parses data, one YAML document holding a ProcessSpec
// (what `pipit deploy --from FILE` reads), and validates it, with the same
// strictness as ParseFile and every problem located by line.
func ParseProcessFile(filename string, data []byte) (v1alpha1.ProcessSpec, error) {
	if err := checkBytes(filename, data); err != nil {
		return v1alpha1.ProcessSpec{}, Errors{err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return v1alpha1.ProcessSpec{}, Errors{syntaxError(filename, err)}
	}
	budget := limits{nodes: MaxNodes}
	if bad := budget.check(filename, &doc, 0); bad != nil {
		return v1alpha1.ProcessSpec{}, Errors{bad}
	}
	root := documentRoot(&doc)
	if root == nil {
		return v1alpha1.ProcessSpec{}, Errors{{File: filename, Reason: "holds no process description: write at least command"}}
	}
	d := &decoder{file: filename, pos: map[string]position{"": at(root)}}
	v, ok := d.value(root, processSpecType, "")
	if !ok {
		return v1alpha1.ProcessSpec{}, d.errs
	}
	var s v1alpha1.ProcessSpec
	raw, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	if err != nil {
		// The walk checked every value against its type: a bug in pipit.
		return v1alpha1.ProcessSpec{}, Errors{{File: filename, Line: root.Line, Column: root.Column,
			Reason: "pipit could not decode this process description: " + err.Error()}}
	}
	var val validator
	val.process("", &s)
	if errs := append(d.errs, d.locate(val.errs)...); len(errs) > 0 {
		errs.sortByPosition()
		return v1alpha1.ProcessSpec{}, errs
	}
	return s, nil
}
