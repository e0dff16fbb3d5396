package e2e

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloadsTheFiles runs `pipit up`, adds a rollout on a port of
// its own to the file, and sends SIGHUP: the new rollout is served and
// the first one still is. A file that no longer validates, reloaded with
// `pipit reload`, exits 2 with what `pipit validate` prints, and changes
// nothing.
func TestSIGHUPReloadsTheFiles(t *testing.T) {
	webAddr, apiAddr := freePort(t), freePort(t)
	file := writeRollout(t, webAddr, versionServer(t, "web-v1"), "1h")
	d := startUp(t, file, t.TempDir())
	waitBody(t, webAddr, "web-v1")

	first, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	api := strings.NewReplacer("name: web", "name: api", webAddr, apiAddr).Replace(string(first))
	api = replaceURL(api, versionServer(t, "api-v1"))
	if err := os.WriteFile(file, append(append(first, "---\n"...), api...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitBody(t, apiAddr, "api-v1")
	waitBody(t, webAddr, "web-v1")

	if err := os.WriteFile(file, append(first, "  decision: sometimes\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	validated := pipit(t, 10*time.Second, "validate", file)
	r := pipit(t, 30*time.Second, "reload", "--state-dir", d.stateDir)
	if r.code != 2 || validated.code != 2 || r.stdout != validated.stdout {
		t.Errorf("reload of an invalid file: exit %d\nstdout %q\nwant   %q (pipit validate, exit %d)", r.code, r.stdout, validated.stdout, validated.code)
	}
	waitBody(t, apiAddr, "api-v1")
}

// replaceURL points the rollout's stable at url.
func replaceURL(doc, url string) string {
	i := strings.Index(doc, "url: \"")
	j := strings.Index(doc[i+6:], "\"")
	return doc[:i+6] + url + doc[i+6+j:]
}

// waitBody waits until addr answers with body.
func waitBody(t testing.TB, addr, body string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			b := make([]byte, 64)
			n, _ := resp.Body.Read(b)
			resp.Body.Close()
			if strings.TrimSpace(string(b[:n])) == body {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer %s", addr, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
