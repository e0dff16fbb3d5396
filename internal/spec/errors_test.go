package spec

import "testing"

func TestFieldErrorRendering(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{File: "r.yaml", Line: 3, Column: 5, Field: "spec.decision", Reason: "bad"}, "r.yaml:3:5: spec.decision: bad"},
		{FieldError{File: "r.yaml", Line: 3, Reason: "invalid YAML"}, "r.yaml:3: invalid YAML"},
		{FieldError{File: "r.yaml", Reason: "holds no rollout"}, "r.yaml: holds no rollout"},
		{FieldError{Field: "metadata.name", Reason: "is required"}, "metadata.name: is required"},
		{FieldError{Line: 2, Column: 1, Field: "kind", Reason: "is required"}, "2:1: kind: is required"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	if err := Errors(nil).Err(); err != nil {
		t.Errorf("empty Errors.Err() = %v, want nil", err)
	}
	es := Errors{
		{File: "a.yaml", Line: 9, Column: 1, Reason: "second"},
		{File: "a.yaml", Reason: "first"},
		{File: "a.yaml", Line: 2, Column: 7, Reason: "third"},
		{File: "a.yaml", Line: 9, Column: 3, Reason: "fourth"},
	}
	es.sortByPosition()
	want := "a.yaml: first\na.yaml:2:7: third\na.yaml:9:1: second\na.yaml:9:3: fourth"
	if got := es.Err().Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}
