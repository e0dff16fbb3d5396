package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/cli"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// dashboardUser is who the dashboard's kubeconfig impersonates.
const dashboardUser = "dana"

// lockedBuffer is a bytes.Buffer that the command writes while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dashboardAddr matches the address pipit dashboard says it serves on.
var dashboardAddr = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/ui/`)

// startDashboard runs `pipit dashboard` with kubeconfig until the test
// ends, and returns its address.
func startDashboard(t *testing.T, kubeconfig string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Execute(ctx, []string{"dashboard", "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0"}, &out, &out)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != cli.ExitOK {
			t.Errorf("pipit dashboard exited %d after Ctrl-C: %s", code, out.String())
		}
	})
	deadline := time.Now().Add(kubefixture.CallTimeout)
	for time.Now().Before(deadline) {
		if m := dashboardAddr.FindStringSubmatch(out.String()); m != nil {
			if !strings.Contains(out.String(), "acting as "+dashboardUser) {
				t.Errorf("pipit dashboard says %q, want it to name %s", out.String(), dashboardUser)
			}
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pipit dashboard did not say where it serves: %s", out.String())
	return ""
}

// impersonatingKubeconfig copies the cluster's kubeconfig, acting as user
// in namespace ns.
func impersonatingKubeconfig(e *kubefixture.Env, user string) string {
	e.T.Helper()
	cfg, err := clientcmd.LoadFromFile(e.Cluster.Kubeconfig)
	if err != nil {
		e.T.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	for _, c := range cfg.Contexts {
		c.Namespace = e.Namespace
	}
	path := filepath.Join(e.T.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		e.T.Fatal(err)
	}
	// The user may do anything in the test's namespace, nothing elsewhere.
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: e.Namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
	if err := e.Client.Create(e.Ctx(), rb); err != nil {
		e.T.Fatal(err)
	}
	return path
}

// call sends one request to the dashboard and decodes its JSON answer
// into out, if given; it returns the status code.
func call(t *testing.T, c *http.Client, method, url, csrf string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(kubefixture.CallContext(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if csrf != "" {
		req.Header.Set(controlapi.CSRFHeader, csrf)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// recentChecks are two checks of a latency and an error rate, as the
// controller keeps them in the Rollout's status.
var recentChecks = []v1alpha1.AnalysisCheck{
	{At: metav1.NewMicroTime(time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)), Results: []v1alpha1.MetricResult{
		{Name: "latency", Canary: ptr.To(120.0), Stable: ptr.To(100.0), Verdict: v1alpha1.VerdictSuccessful},
		{Name: "error-rate", Verdict: v1alpha1.VerdictNoData},
	}},
	{At: metav1.NewMicroTime(time.Date(2026, 12, 7, 1, 1, 0, 0, time.UTC)), Results: []v1alpha1.MetricResult{
		{Name: "latency", Canary: ptr.To(300.0), Stable: ptr.To(110.0), Verdict: v1alpha1.VerdictFailed},
		{Name: "error-rate", Canary: ptr.To(0.5), Stable: ptr.To(0.4), Verdict: v1alpha1.VerdictSuccessful},
	}},
}

// TestDashboardOfACluster: pipit dashboard serves the dashboard of the
// namespace's Rollouts without a login, as the kubeconfig's user; a
// promote through it is a RolloutCommand in that user's name; an action
// without the session's CSRF token, or a request naming another host, is
// refused. The metric charts' samples are the checks the controller keeps
// in the Rollout's status.
func TestDashboardOfACluster(t *testing.T) {
	e := kubefixture.New(t)
	st := progressing()
	st.RecentChecks = recentChecks
	createRollout(e, e.Namespace, "web", st)
	ctl := &kubefixture.FakeController{Client: e.Client, Key: e.Key("web"), Every: controllerEvery,
		Decide: func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string {
			st.Message = fmt.Sprintf("%s by %s", cmd.Spec.Verb, cmd.Spec.RequestedBy)
			return ""
		}}
	ctl.Run(t)
	base := "http://" + startDashboard(t, impersonatingKubeconfig(e, dashboardUser))
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: kubefixture.CallTimeout}

	if code := call(t, c, "GET", base+"/ui/", "", nil, nil); code != http.StatusOK {
		t.Fatalf("GET /ui/: %d", code)
	}
	var who controlapi.SessionInfo
	if code := call(t, c, "GET", base+"/ui/session", "", nil, &who); code != http.StatusOK || who.Name != dashboardUser || who.CSRF == "" {
		t.Fatalf("GET /ui/session: %d %+v, want a session of %s without a login", code, who, dashboardUser)
	}
	var list controlapi.RolloutList
	if code := call(t, c, "GET", base+"/v1/rollouts", "", nil, &list); code != http.StatusOK || len(list.Rollouts) != 1 || list.Rollouts[0].Name != "web" {
		t.Fatalf("GET /v1/rollouts: %d %+v, want web", code, list)
	}
	var samples controlapi.SampleList
	if code := call(t, c, "GET", base+"/v1/rollouts/web/samples?metric=latency", "", nil, &samples); code != http.StatusOK ||
		len(samples.Samples) != 2 || *samples.Samples[0].Canary != 120 || *samples.Samples[1].Stable != 110 {
		t.Errorf("GET the samples of latency: %d %+v, want the 2 checks the controller kept", code, samples)
	}
	promote := controlapi.CommandRequest{Kind: "promote", Reason: "looks good", Actor: "mallory"}
	if code := call(t, c, "POST", base+"/v1/rollouts/web/commands", "", promote, nil); code != http.StatusForbidden {
		t.Errorf("promote without the CSRF token: %d, want 403", code)
	}
	var after controlapi.RolloutView
	if code := call(t, c, "POST", base+"/v1/rollouts/web/commands", who.CSRF, promote, &after); code != http.StatusOK {
		t.Fatalf("promote: %d", code)
	}
	if want := "promote by " + dashboardUser; after.Status.Message != want {
		t.Errorf("rollout after the promote says %q, want %q", after.Status.Message, want)
	}
	cmds := ctl.Commands()
	if len(cmds) != 1 || cmds[0].Spec != (v1alpha1.RolloutCommandSpec{Rollout: "web", Verb: "promote", Reason: "looks good", RequestedBy: dashboardUser}) {
		t.Errorf("RolloutCommands %+v, want one promote requested by %s", cmds, dashboardUser)
	}

	rebound, err := http.NewRequestWithContext(e.Ctx(), "GET", base+"/ui/session", nil)
	if err != nil {
		t.Fatal(err)
	}
	rebound.Host = "attacker.example"
	resp, err := c.Do(rebound)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request for host attacker.example: %d, want 421", resp.StatusCode)
	}
}
