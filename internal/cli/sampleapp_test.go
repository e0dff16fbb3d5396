package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSampleAppBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"error rate above one", []string{"--error-rate", "1.5"}, "error rate"},
		{"negative latency", []string{"--latency", "-1s"}, "latency"},
		{"negative jitter", []string{"--latency-jitter", "-5ms"}, "jitter"},
		{"unparsable latency", []string{"--latency", "soon"}, "latency"},
		{"empty version", []string{"--version", ""}, "version"},
		{"listen without port", []string{"--listen", "127.0.0.1"}, "--listen"},
		{"unknown flag", []string{"--colour", "red"}, "unknown flag"},
		{"stray argument", []string{"extra"}, "arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Execute(context.Background(), append([]string{"sample-app"}, tt.args...), &stdout, &stderr)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d; stderr: %s", code, ExitBadInput, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

// sampleAppOutput is a buffer that the test reads while the command writes.
type sampleAppOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *sampleAppOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *sampleAppOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func TestSampleAppServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr sampleAppOutput
	exit := make(chan int, 1)
	go func() {
		exit <- Execute(ctx, []string{"sample-app", "--listen", "127.0.0.1:0", "--version", "v2"}, &stdout, &stderr)
	}()

	const prefix = "sample-app v2 listening on "
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if line, ok := strings.CutPrefix(stdout.String(), prefix); ok && strings.HasSuffix(line, "\n") {
			addr = strings.TrimSuffix(line, "\n")
		} else if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout %q, stderr %q", stdout.String(), stderr.String())
		}
	}

	resp, err := http.Get("http://" + addr + "/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "v2\n" {
		t.Fatalf("/version = %q, want v2", body)
	}

	cancel()
	select {
	case code := <-exit:
		if code != ExitOK {
			t.Fatalf("exit %d after interruption, want 0; stderr: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sample-app kept running after its context was cancelled")
	}
}
