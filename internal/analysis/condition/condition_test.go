package condition

import (
	"errors"
	"testing"
)

func TestCompile(t *testing.T) {
	if err := Compile("canary <= stable * 1.1"); err != nil {
		t.Errorf("valid condition refused: %v", err)
	}
	for _, bad := range []string{"canary <=", "result + 1", "nosuchvar > 1"} {
		if err := Compile(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEval(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		src    string
		canary float64
		stable *float64
		want   bool
		err    error
	}{
		{"result > 0.05", 0.07, nil, true, nil},
		{"canary <= stable * 1.1", 105, f(100), true, nil},
		{"canary <= stable * 1.1", 120, f(100), false, nil},
		{"canary <= stable", 1, nil, false, ErrNoStable},
	}
	for _, tt := range tests {
		got, err := Eval(tt.src, tt.canary, tt.stable)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Eval(%q, %v, %v) = %v, %v; want %v, %v", tt.src, tt.canary, tt.stable, got, err, tt.want, tt.err)
		}
	}
}
