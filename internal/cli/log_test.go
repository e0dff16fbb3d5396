package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// loggerCases are the logging flags, the command's defaults, and which of
// a DEBUG, an INFO and a WARN line get written, in which format.
var loggerCases = []struct {
	name     string
	g        globals
	defaults map[string]string
	written  []string
	json     bool
}{
	{"a verb's default", globals{}, nil, []string{"warn"}, false},
	{"verbose", globals{verbose: true}, nil, []string{"debug", "info", "warn"}, false},
	{"pipit up's default", globals{}, map[string]string{defaultLogLevel: "info"}, []string{"info", "warn"}, false},
	{"--log-level wins over -v", globals{verbose: true, logLevel: "warn"}, nil, []string{"warn"}, false},
	{"--log-level wins over the default", globals{logLevel: "error"}, map[string]string{defaultLogLevel: "info"}, nil, false},
	{"json", globals{logFormat: "json", logLevel: "info"}, nil, []string{"info", "warn"}, true},
	{"the controller's default", globals{}, map[string]string{defaultLogLevel: "info", defaultLogFormat: "json"},
		[]string{"info", "warn"}, true},
	{"--log-format text for the controller", globals{logFormat: "text"},
		map[string]string{defaultLogLevel: "info", defaultLogFormat: "json"}, []string{"info", "warn"}, false},
}

func TestLogger(t *testing.T) {
	for _, tt := range loggerCases {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := &cobra.Command{Annotations: tt.defaults}
			cmd.SetErr(&stderr)
			log, err := tt.g.logger(cmd)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug")
			log.Info("info")
			log.Warn("warn")
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if stderr.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.written) {
				t.Fatalf("logged:\n%s\nwant %v", stderr.String(), tt.written)
			}
			for i, line := range lines {
				var rec struct{ Msg string }
				isJSON := json.Unmarshal([]byte(line), &rec) == nil
				if isJSON != tt.json || (tt.json && rec.Msg != tt.written[i]) || (!tt.json && !strings.Contains(line, "msg="+tt.written[i])) {
					t.Errorf("line %d %q: want %q, json %v", i, line, tt.written[i], tt.json)
				}
			}
		})
	}
}

func TestLogFlagsBadInput(t *testing.T) {
	for _, tt := range []struct{ args []string }{
		{[]string{"version", "--log-format", "xml"}},
		{[]string{"version", "--log-level", "loud"}},
	} {
		if code, _, errOut := run(t, tt.args...); code != ExitBadInput || !strings.Contains(errOut, tt.args[1]) {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := run(t, args...)
		if code != ExitOK || out != versionLine()+"\n" || !strings.HasPrefix(out, "pipit ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
