package router

import (
	"context"
	"reflect"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// recordingProxy notes the calls the router makes, in order.
type recordingProxy struct {
	calls  []string
	weight v1alpha1.Percent
}

func (p *recordingProxy) SetWeight(w v1alpha1.Percent) error {
	p.calls = append(p.calls, "weight "+w.String())
	p.weight = w
	return nil
}

func (p *recordingProxy) Weight() v1alpha1.Percent { return p.weight }

func (p *recordingProxy) SetCanaryAllowed(allowed bool) {
	if allowed {
		p.calls = append(p.calls, "open")
	} else {
		p.calls = append(p.calls, "close")
	}
}

func TestProxyRouterClosesTheCanaryBeforeAndOpensItAfterTheWeight(t *testing.T) {
	p := &recordingProxy{}
	r := Proxy{P: p}
	if err := r.SetWeight(context.Background(), v1alpha1.PercentOf(10), true); err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeight(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"weight 10%", "open", "close", "weight 0%"}
	if !reflect.DeepEqual(p.calls, want) {
		t.Fatalf("calls %q, want %q", p.calls, want)
	}
	if r.Weight() != 0 {
		t.Fatalf("Weight() = %s", r.Weight())
	}
}
