package hook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestValidate(t *testing.T) {
	load := func(lt v1alpha1.LoadTestHook) *v1alpha1.LoadTestHook { return &lt }
	tests := []struct {
		name string
		spec v1alpha1.WebhookSpec
		want []string // "field: reason" fragments, in order; none means valid
	}{
		{"http", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollback, URL: "https://hooks.example/x", SecretEnv: "S"}, nil},
		{"command", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookEvent, Command: []string{"true"}, Env: map[string]string{"A": "b"}}, nil},
		{"load test", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, LoadTest: load(v1alpha1.LoadTestHook{URL: "http://127.0.0.1:1/", Rate: 5, Duration: dur(time.Second)})}, nil},
		{"nothing", v1alpha1.WebhookSpec{}, []string{"name: is required", "type: must be one of confirm-rollout, pre-rollout", "exactly one of url, command and loadTest must be set, not 0"}},
		{"two kinds", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", Command: []string{"true"}}, []string{"not 2"}},
		{"unknown type", v1alpha1.WebhookSpec{Name: "a", Type: "pre-contract", URL: "http://h/"}, []string{`type: must be one of`, `not "pre-contract"`}},
		{"relative url", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "/hook?token=t0k"}, []string{"url: must be an absolute http or https URL"}},
		{"no host", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http:///x"}, []string{"url: has no host"}},
		{"empty program", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, Command: []string{""}}, []string{"command[0]: must name the program"}},
		{"env without command", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", Env: map[string]string{"A": "b"}}, []string{"env: only applies to a command hook"}},
		{"bad env", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, Command: []string{"true"}, Env: map[string]string{"A=B": "c"}}, []string{`env: "A=B" is not a valid`}},
		{"two secrets", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", SecretEnv: "S", SecretFile: "/f"}, []string{"secretEnv: cannot be set together"}},
		{"secret on command", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, Command: []string{"true"}, SecretFile: "/f"}, []string{"secretEnv: signing only applies to an HTTP hook"}},
		{"zero timeout", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", Timeout: dur(0)}, []string{"timeout: must be positive"}},
		{"negative retries", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", Retries: ptr[int32](-1)}, []string{"retries: must be from 0 to 10, not -1"}},
		{"too many retries", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, URL: "http://h/", Retries: ptr[int32](11)}, []string{"retries: must be from 0 to 10, not 11"}},
		{"load test without duration", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, LoadTest: load(v1alpha1.LoadTestHook{URL: "http://h/", Rate: 5})}, []string{"loadTest.duration: is required"}},
		{"load test without rate", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookRollout, LoadTest: load(v1alpha1.LoadTestHook{URL: "http://h/", Duration: dur(time.Second)})}, []string{"loadTest: rate must be a positive number"}},
		{"load test as a gate", v1alpha1.WebhookSpec{Name: "a", Type: v1alpha1.HookConfirmPromotion, LoadTest: load(v1alpha1.LoadTestHook{URL: "http://h/", Rate: 1, Duration: dur(time.Second)})}, []string{"loadTest: only runs as a rollout or pre-rollout hook"}},
	}
	for _, tt := range tests {
		ps := Validate(tt.spec)
		var got []string
		for _, p := range ps {
			got = append(got, p.Error())
		}
		text := strings.Join(got, "\n")
		if len(tt.want) == 0 && len(ps) > 0 {
			t.Errorf("%s: Validate = %q, want no problem", tt.name, got)
		}
		if len(tt.want) > 0 && len(ps) == 0 {
			t.Errorf("%s: Validate found no problem, want %q", tt.name, tt.want)
		}
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: Validate = %q, want %q", tt.name, got, w)
			}
		}
		if strings.Contains(text, "t0k") {
			t.Errorf("%s: problem %q echoes the URL's token", tt.name, text)
		}
	}
}

func TestRunRefusesInvalidSpec(t *testing.T) {
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "bad", Type: v1alpha1.HookRollout}, Payload{})
	if res.OK || res.Err == nil || res.Attempts != 0 || !strings.Contains(res.Err.Error(), "exactly one of") {
		t.Fatalf("Run = %+v, want the spec's problem without an attempt", res)
	}
}

func TestBackoffGrowsWithinBounds(t *testing.T) {
	for n := 1; n <= 40; n++ {
		d := min(baseBackoff<<min(n-1, 10), maxBackoff)
		for range 20 {
			if got := backoff(n); got < d/2 || got >= d {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s)", n, got, d/2, d)
			}
		}
	}
}

func TestBound(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  short\n", "short"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("a", MaxMessage), strings.Repeat("a", MaxMessage)},
		{strings.Repeat("a", MaxMessage+1), strings.Repeat("a", MaxMessage-3) + "…"},
		{strings.Repeat("€", 400), strings.Repeat("€", 340) + "…"}, // 3-byte runes are not split
	}
	for _, tt := range tests {
		if got := bound(tt.in); got != tt.want {
			t.Errorf("bound(%.20q…) = %.20q… (%d bytes), want %d bytes", tt.in, got, len(got), len(tt.want))
		}
	}
}
