package archtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/pipit-dev/pipit"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// families are the packages behind the contract's ports and what they
// build on: each is imported by the runtimes that wire it, and imports
// neither the engine, a runtime nor another family.
var families = []string{"target", "router", "metric", "hook", "notify", "proxy", "store"}

var listed struct {
	once sync.Once
	pkgs map[string]pkg
	err  error
}

// listPackages runs `go list` over the module once per test binary.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	listed.once.Do(func() { listed.pkgs, listed.err = goList() })
	if listed.err != nil {
		t.Fatal(listed.err)
	}
	return listed.pkgs
}

func goList() (map[string]pkg, error) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,Standard", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("go list: %v\n%s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go list: %w", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list: %w", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) < 10 {
		return nil, fmt.Errorf("go list found only %d packages", len(pkgs))
	}
	return pkgs, nil
}

// internal returns the path of a project package under internal/.
func internal(rel string) string { return module + "/internal/" + rel }

// within reports whether import path p is rel or below it.
func within(p, rel string) bool {
	base := internal(rel)
	return p == base || strings.HasPrefix(p, base+"/")
}

// familyOf names the family p belongs to, "" for none.
func familyOf(p string) string {
	for _, f := range families {
		if within(p, f) {
			return f
		}
	}
	return ""
}

// testSupport reports whether p is a package only tests import (its name
// ends in "test", like internal/router/routertest).
func testSupport(p string) bool { return strings.HasSuffix(path.Base(p), "test") }

func TestTheContractDependsOnlyOnTheAPI(t *testing.T) {
	pkgs := listPackages(t)
	for _, d := range pkgs[internal("rollout")].Deps {
		if strings.HasPrefix(d, module+"/") && d != module+"/api/v1alpha1" {
			t.Errorf("internal/rollout depends on %s; the contract may depend only on api/v1alpha1", d)
		}
	}
}

func TestTheEngineDoesNoIO(t *testing.T) {
	pkgs := listPackages(t)
	engine, ok := pkgs[internal("engine")]
	if !ok {
		t.Fatal("go list did not list internal/engine")
	}
	// api/v1alpha1 pulls net/http in through apimachinery, so these are
	// checked on the engine's own imports.
	for _, banned := range []string{"net/http", "database/sql", "os/exec", "net"} {
		if slices.Contains(engine.Imports, banned) {
			t.Errorf("internal/engine imports %s itself; the engine does no I/O", banned)
		}
	}
	for _, d := range engine.Deps {
		if f := familyOf(d); f != "" {
			t.Errorf("internal/engine depends on %s (the %s family); families plug into the runtimes, not the engine", d, f)
		}
		for _, banned := range []string{internal("runtime"), internal("loadgen"), internal("controlapi"), internal("client")} {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("internal/engine depends on %s", d)
			}
		}
		for _, banned := range []string{"github.com/tsenart/vegeta", "github.com/valyala/fasthttp", "modernc.org/sqlite", "sigs.k8s.io/controller-runtime"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("internal/engine has %s beneath it; the engine must stay pure", d)
			}
		}
	}
}

func TestSpecIsALeafOverTheAPI(t *testing.T) {
	pkgs := listPackages(t)
	for _, d := range pkgs[internal("spec")].Deps {
		if !strings.HasPrefix(d, module+"/") || d == module+"/api/v1alpha1" {
			continue
		}
		if within(d, "analysis") && !slices.Contains(pkgs[d].Deps, internal("rollout")) {
			continue // a pure analysis package, as the condition compiler
		}
		t.Errorf("internal/spec depends on %s; spec may depend only on api and the pure analysis packages", d)
	}
}

func TestFamiliesImportNeitherTheEngineNorARuntimeNorEachOther(t *testing.T) {
	pkgs := listPackages(t)
	checked := 0
	for p, info := range pkgs {
		own := familyOf(p)
		if own == "" || testSupport(p) {
			continue
		}
		checked++
		for _, imp := range info.Imports {
			switch other := familyOf(imp); {
			case within(imp, "engine"), within(imp, "runtime"), within(imp, "controlapi"), within(imp, "cli"), within(imp, "client"):
				t.Errorf("%s imports %s; a family imports neither the engine nor a runtime", p, imp)
			case other != "" && other != own:
				t.Errorf("%s (the %s family) imports %s (the %s family); families meet only in the runtimes", p, own, imp, other)
			}
		}
	}
	if checked < len(families) {
		t.Fatalf("checked only %d family packages", checked)
	}
}

// The checks above would pass on an empty graph; make sure they can fail.
func TestTheImportChecksSeeTheGraph(t *testing.T) {
	pkgs := listPackages(t)
	if !slices.Contains(pkgs[internal("runtime/standalone")].Deps, internal("proxy")) {
		t.Fatal("internal/runtime/standalone should depend on internal/proxy: go list is not read right")
	}
	if familyOf(internal("proxy/upstream")) != "proxy" || familyOf(internal("proxying")) != "" {
		t.Fatal("familyOf misreads package paths")
	}
}
