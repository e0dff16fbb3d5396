package target

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLogFileKeepsWholeLinesAndRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	set := &logSet{dir: dir, max: 100, log: slog.Default(), files: map[string]*logFile{}}
	lf, err := set.acquire("v1/../x")
	must(t, err)
	if filepath.Dir(lf.path) != dir || filepath.Base(lf.path) != "v1_.._x.log" {
		t.Fatalf("log path %s escapes or mangles", lf.path)
	}
	w := &lineWriter{lf: lf, prefix: "[0] "}
	for i := range 10 {
		_, _ = w.Write([]byte("line " + strconv.Itoa(i)))
		_, _ = w.Write([]byte(" end\n"))
	}
	_, _ = w.Write([]byte("tail"))
	w.flush()
	set.release("v1/../x", lf)
	cur, _ := os.ReadFile(lf.path)
	old, _ := os.ReadFile(lf.path + ".1")
	if len(cur) > 100 || len(old) > 100 || len(old) == 0 {
		t.Fatalf("sizes %d and %d, want both within 100 bytes after a rotation", len(cur), len(old))
	}
	if !strings.HasSuffix(string(cur), "[0] line 9 end\n[0] tail\n") {
		t.Errorf("current log:\n%s", cur)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(old)+string(cur)), "\n") {
		if !strings.HasPrefix(l, "[0] ") {
			t.Errorf("line without prefix: %q", l)
		}
	}
}
