package standalone

import (
	"context"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/store"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// A command sent to a daemon that stopped deciding (it handed over) is
// answered once the daemon deciding now consumed it, with the rollout as
// the store then has it, instead of waiting for an answer nobody sends.
func TestCommandToADaemonThatHandedOverIsAnsweredFromTheStore(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	d, _ := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1h"))
	m := d.rollout("web")
	m.cancel() // this daemon decides nothing more for web
	answered := make(chan error, 1)
	var got controlapi.RolloutView
	go func() {
		var err error
		got, err = d.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy, Actor: "test",
			Canary: &v1alpha1.VersionRef{Version: "v2", URL: stable.URL}})
		answered <- err
	}()
	// The other daemon: it consumes the command and saves what it decided.
	var pending []store.Command
	nettest.Eventually(t, "the command queued", func() bool {
		pending, _ = m.store.db.PendingCommands(context.Background(), "web")
		return len(pending) == 1
	})
	st := m.snapshot()
	st.Phase = v1alpha1.PhaseProgressing
	if err := m.store.db.SaveStatus(context.Background(), "web", m.store.spec, st, nil, pending[0].ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-answered:
		if err != nil || got.Status.Phase != v1alpha1.PhaseProgressing {
			t.Fatalf("Submit = %s, %v; want the status the other daemon saved", got.Status.Phase, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Submit still waits for an answer nobody sends")
	}
}
