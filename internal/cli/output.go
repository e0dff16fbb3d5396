package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

// outputFormat is the -o flag every verb that reads shares: the form for
// people (table or text, the default), or the same facts as a JSON or
// YAML document for scripts. A value other than these three is refused
// when the flags are parsed, so no verb checks it again.
type outputFormat struct {
	value string
	// human names the form for people: "table" for verbs that list,
	// "text" for those that report.
	human string
}

// addOutputFlag adds -o, --output to cmd, defaulting to human, with the
// completion of its three values.
func addOutputFlag(cmd *cobra.Command, human string) *outputFormat {
	o := &outputFormat{value: human, human: human}
	cmd.Flags().VarP(o, "output", "o", "output format: "+human+", json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output",
		cobra.FixedCompletions([]string{human, "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// String is the format chosen, for pflag.
func (o *outputFormat) String() string { return o.value }

// Type names the flag's kind in the help, for pflag.
func (o *outputFormat) Type() string { return "format" }

// Set takes the format given on the command line.
func (o *outputFormat) Set(s string) error {
	if s != o.human && s != "json" && s != "yaml" {
		return fmt.Errorf("want %s, json or yaml", o.human)
	}
	o.value = s
	return nil
}

// isDocument reports whether the output is a JSON or YAML document.
func (o *outputFormat) isDocument() bool { return o.value != o.human }

// print writes doc as the format asks, or human's text for people.
func (o *outputFormat) print(w io.Writer, doc any, human func() string) error {
	var s string
	if o.isDocument() {
		var err error
		if s, err = o.document(doc); err != nil {
			return err
		}
	} else {
		s = human()
	}
	_, err := io.WriteString(w, s)
	return err
}

// document writes doc as JSON or YAML. A nil slice is an empty list, not
// null, so that scripts can iterate over it.
func (o *outputFormat) document(doc any) (string, error) {
	if v := reflect.ValueOf(doc); v.Kind() == reflect.Slice && v.IsNil() {
		doc = []any{}
	}
	var b bytes.Buffer
	var err error
	if o.value == "yaml" {
		err = printYAML(&b, doc)
	} else {
		err = printJSON(&b, doc)
	}
	return b.String(), err
}

// watchDocument is one look of get --watch as a document: YAML
// documents are separated by ---, JSON ones follow each other as jq reads
// them.
func (o *outputFormat) watchDocument(v controlapi.RolloutView) (string, error) {
	s, err := o.document(v)
	if o.value == "yaml" {
		s = "---\n" + s
	}
	return s, err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printYAML writes v as YAML with the field names and order of its JSON
// form, so the two outputs describe the same document.
func printYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle drops the flow style that JSON input gives every node, so
// the encoder writes ordinary block YAML and quotes only where needed.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
