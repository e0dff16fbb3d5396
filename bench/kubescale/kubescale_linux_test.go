package kubescale

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// defaultCommand is how the benchmark is run, cited in the report.
const defaultCommand = "go test -run '^$' -bench Scale500 -benchtime 1x -timeout 2h ./bench/kubescale"

var (
	flagRollouts    = flag.Int("kubescale.rollouts", 500, "rollouts progressing at once")
	flagPause       = flag.Duration("kubescale.pause", 5*time.Second, "length of each of the three pauses")
	flagBound       = flag.Duration("kubescale.bound", 45*time.Minute, "how long to wait for every rollout to succeed after the image change")
	flagConcurrency = flag.Int("kubescale.concurrency", 0, "the controller's --concurrency (0: its default)")
	flagDoc         = flag.String("kubescale.doc", "", "markdown file whose '"+Heading+"' section receives the report")
	flagCommand     = flag.String("kubescale.command", defaultCommand, "the command cited in the report")
	flagLog         = flag.String("kubescale.log", "", "where to keep the controller's log (default: a temporary directory)")
	flagLogLevel    = flag.String("kubescale.log-level", "warn", "the controller's --log-level")
	flagQPS         = flag.Float64("kubescale.qps", 0, "the controller's --kube-api-qps (0: its default; -1: no client-side limit)")
	flagBurst       = flag.Int("kubescale.burst", 0, "the controller's --kube-api-burst (0: its default)")
)

const (
	oldImage = "registry.example/app:v1"
	newImage = "registry.example/app:v2"
	// installBound bounds the first install of every rollout, settleBound
	// the wait for the cluster to go quiet after it.
	installBound = 30 * time.Minute
	settleBound  = 5 * time.Minute
	// clientWorkers create and update the objects in parallel.
	clientWorkers = 16
	// sampleEvery is how often /proc is read; scrapeEvery how often the
	// controller's /metrics is (a scrape of 500 rollouts' series costs
	// the controller CPU of its own).
	sampleEvery = 2 * time.Second
	scrapeEvery = 10 * time.Second
	logEvery    = 30 * time.Second
)

// rolloutSpec is every rollout's spec but its target, its Deployment of
// the same name (see kubefixture.RolloutYAML); PAUSE is each pause's
// length.
const rolloutSpec = `
  progressDeadline: 30m
  kubernetes:
    router:
      gatewayAPI:
        parentRefs: [{name: gw}]
  strategy:
    steps:
      - setWeight: 10
      - pause: {duration: PAUSE}
      - setWeight: 30
      - pause: {duration: PAUSE}
      - setWeight: 60
      - pause: {duration: PAUSE}
`

// BenchmarkScale500 starts many Rollouts progressing at once (500 unless
// -kubescale.rollouts says otherwise) and reports the controller's CPU,
// memory, API requests and step delays. It runs once whatever b.N is:
// one run takes minutes.
func BenchmarkScale500(b *testing.B) {
	r := runScale(b)
	fmt.Println()
	fmt.Println(r.markdown())
	b.ReportMetric(r.Window.Seconds(), "s-to-all-succeeded")
	b.ReportMetric(cores(r.CPU, r.Window), "controller-cores")
	b.ReportMetric(float64(r.PeakRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(perSecond(r.Requests, r.Window), "API-req/s")
	b.ReportMetric(summarise(r.Delays.decision).p99.Seconds(), "step-delay-p99-s")
	if *flagDoc != "" {
		if err := updateDoc(*flagDoc, r.markdown()); err != nil {
			b.Fatalf("writing %s: %v", *flagDoc, err)
		}
		fmt.Fprintf(os.Stderr, "kubescale: wrote the %q section of %s\n", Heading, *flagDoc)
	}
	if r.TimedOut {
		b.Errorf("%d of %d rollouts succeeded within %s", r.Succeeded, r.Rollouts, r.Bound)
	}
}

// scale is one run: the cluster, the namespace, the controller, the watch.
type scale struct {
	b     *testing.B
	c     *kubecluster.Cluster
	ns    string
	kc    client.Client
	w     *watcher
	ctrl  *controllerProc
	names []string
	// imageChanged is when each Deployment's image update returned.
	imageChanged []time.Time
	rep          *report
}

func runScale(b *testing.B) *report {
	n := *flagRollouts
	s := &scale{b: b, rep: &report{
		When: time.Now(), Machine: machine(), LoadBefore: loadavg(), Command: *flagCommand, Benchmark: defaultCommand,
		Rollouts: n, Pause: *flagPause, Bound: *flagBound, Concurrency: "8 (the default)", LogLevel: *flagLogLevel,
		Controller: "`pipit controller` with its default API client rate limit",
	}}
	if *flagConcurrency > 0 {
		s.rep.Concurrency = fmt.Sprint(*flagConcurrency)
	}
	if f := s.rateFlags(); len(f) > 0 {
		s.rep.Controller = "`pipit controller " + strings.Join(f, " ") + "`"
	}
	// The benchmark's own watch logs through controller-runtime.
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	for i := range n {
		s.names = append(s.names, fmt.Sprintf("app-%03d", i))
	}
	s.c = kubefixture.Cluster(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	bin := buildPipit(b)
	s.ns = s.c.Namespace(b)
	s.kc = kubefixture.Client(b, s.c)
	var err error
	if s.w, err = watch(ctx, s.c.RESTConfig(), s.ns, newImage, n); err != nil {
		b.Fatalf("watching the namespace: %v", err)
	}
	s.startController(bin)

	created := time.Now()
	cpu0 := s.proc().CPU
	s.progress("creating %d Deployments and Rollouts in %s", n, s.ns)
	if err := parallel(n, clientWorkers, s.create); err != nil {
		b.Fatalf("creating the objects: %v", err)
	}
	s.waitInstalled(ctx)
	s.rep.Install = time.Since(created)
	s.waitSettled(ctx)
	s.rep.InstallCPU = s.proc().CPU - cpu0

	s.measure(ctx)
	s.ctrl.stop()
	s.rep.LoadAfter = loadavg()
	logText, err := os.ReadFile(s.ctrl.logPath)
	if err != nil {
		b.Fatalf("reading the controller's log: %v", err)
	}
	s.rep.Logs = summariseLog(string(logText), s.ns)
	s.collectDelays(ctx)
	return s.rep
}

// startController runs the real binary against the namespace.
func (s *scale) startController(bin string) {
	logPath := *flagLog
	if logPath == "" {
		logPath = filepath.Join(s.b.TempDir(), "controller.log")
	}
	args := []string{"controller", "--kubeconfig", s.c.Kubeconfig, "--namespace", s.ns,
		"--health-probe-bind-address", "", "--log-level", *flagLogLevel}
	args = append(args, s.rateFlags()...)
	if *flagConcurrency > 0 {
		args = append(args, "--concurrency", fmt.Sprint(*flagConcurrency))
	}
	ctrl, err := startController(bin, args, logPath)
	if ctrl != nil {
		s.b.Cleanup(ctrl.stop)
	}
	if err != nil {
		s.b.Fatalf("starting pipit controller: %v", err)
	}
	s.ctrl = ctrl
	s.progress("pipit controller running, pid %d, log %s", ctrl.pid, logPath)
}

// create makes the i-th Deployment and its Rollout. The Deployment is not
// kubefixture.Deployment: that one's extra label and named port would go
// into every copy and Service the controller makes, and the runs measured
// before would no longer compare.
func (s *scale) create(i int) error {
	name := s.names[i]
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: oldImage, Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.kc.Create(ctx, d); err != nil {
		return fmt.Errorf("deployment %s: %w", name, err)
	}
	r, err := kubefixture.ParseRollout(kubefixture.RolloutYAML(name, strings.ReplaceAll(rolloutSpec, "PAUSE", s.rep.Pause.String())))
	if err != nil {
		return err
	}
	r.Namespace = s.ns
	if err := s.kc.Create(ctx, r); err != nil {
		return fmt.Errorf("rollout %s: %w", name, err)
	}
	return nil
}

// waitInstalled waits until every rollout installed its first version.
func (s *scale) waitInstalled(ctx context.Context) {
	err := s.waitFor(ctx, installBound, "installed", func() (int, error) {
		list, err := s.w.rollouts(ctx)
		installed := 0
		for _, r := range list {
			if r.Status.Stable != nil && r.Status.Phase == v1alpha1.PhaseIdle {
				installed++
			}
		}
		return installed, err
	})
	if err != nil {
		s.b.Fatal(err)
	}
}

// waitSettled waits, for settleBound at most, until only the stable
// copies' pods are left (the user's Deployments are parked at zero) and
// the controller's queue is empty, so that the measurement starts from a
// quiet cluster.
func (s *scale) waitSettled(ctx context.Context) {
	err := s.waitFor(ctx, settleBound, "pods settled (one per stable copy)", func() (int, error) {
		var pods metav1.PartialObjectMetadataList
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := s.kc.List(ctx, &pods, client.InNamespace(s.ns)); err != nil {
			return 0, err
		}
		if len(pods.Items) != len(s.names) {
			return 0, nil
		}
		m, err := s.ctrl.scrape(ctx)
		if err != nil || m.sum("workqueue_depth", map[string]string{"name": "rollout"}) > 0 {
			return 0, err
		}
		return len(s.names), nil
	})
	if err != nil {
		s.progress("going on without a quiet cluster: %v", err)
	}
}

// waitFor polls count until it reaches len(s.names), logging progress.
func (s *scale) waitFor(ctx context.Context, bound time.Duration, what string, count func() (int, error)) error {
	start := time.Now()
	lastLog := start
	for {
		if err := s.ctrl.running(); err != nil {
			return err
		}
		n, err := count()
		if err == nil && n == len(s.names) {
			s.progress("%d %s after %s", n, what, time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(start) > bound {
			return fmt.Errorf("after %s: %d of %d %s (last error: %v)", bound, n, len(s.names), what, err)
		}
		if time.Since(lastLog) >= logEvery {
			s.progress("%s: %d of %d %s", time.Since(start).Round(time.Second), n, len(s.names), what)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sampleEvery):
		}
	}
}

// snapshot is what the window's measurements start and end from.
type snapshot struct {
	at     time.Time
	proc   procStats
	ctrl   metrics
	server metrics // nil when the API server's metrics could not be read
}

func (s *scale) snapshot(ctx context.Context) snapshot {
	sn := snapshot{at: time.Now(), proc: s.proc()}
	var err error
	if sn.ctrl, err = s.ctrl.scrape(ctx); err != nil {
		s.b.Fatalf("scraping the controller: %v", err)
	}
	raw, err := s.c.Clientset().CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err == nil {
		sn.server, err = parseMetrics(string(raw))
	}
	if err != nil {
		s.progress("no API server metrics: %v", err)
	}
	return sn
}

// measure changes every image at once and follows the rollouts until all
// succeeded or the bound passed.
func (s *scale) measure(ctx context.Context) {
	rep := s.rep
	before := s.snapshot(ctx)
	s.progress("changing %d images", len(s.names))
	changed := make([]time.Time, len(s.names))
	err := parallel(len(s.names), clientWorkers, func(i int) error {
		if err := s.setImage(s.names[i]); err != nil {
			return err
		}
		changed[i] = time.Now()
		return nil
	})
	if err != nil {
		s.b.Fatalf("changing the images: %v", err)
	}
	rep.Updates = time.Since(before.at)
	s.imageChanged = changed

	bound := time.NewTimer(rep.Bound)
	defer bound.Stop()
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	lastScrape, lastTotal := before.at, before.ctrl.sum("rest_client_requests_total", nil)
	lastLog := before.at
	end := time.Time{}
	for end.IsZero() {
		select {
		case <-s.w.allDone:
			_, end = s.w.succeeded()
		case <-bound.C:
			rep.TimedOut = true
			end = before.at.Add(rep.Bound)
		case <-sample.C:
			if err := s.ctrl.running(); err != nil {
				s.b.Fatal(err)
			}
			rep.WindowRSS = max(rep.WindowRSS, s.proc().RSS)
			if time.Since(lastScrape) >= scrapeEvery {
				m, err := s.ctrl.scrape(ctx)
				if err != nil {
					s.b.Fatalf("scraping the controller: %v", err)
				}
				now, total := time.Now(), m.sum("rest_client_requests_total", nil)
				rep.PeakRequestRate = max(rep.PeakRequestRate, (total-lastTotal)/now.Sub(lastScrape).Seconds())
				rep.MaxQueueDepth = max(rep.MaxQueueDepth, m.sum("workqueue_depth", map[string]string{"name": "rollout"}))
				lastScrape, lastTotal = now, total
			}
			if time.Since(lastLog) >= logEvery {
				done, _ := s.w.succeeded()
				s.progress("%s after the image change: %d of %d Succeeded; work queue at most %.0f deep so far",
					time.Since(before.at).Round(time.Second), done, len(s.names), rep.MaxQueueDepth)
				lastLog = time.Now()
			}
		}
	}
	after := s.snapshot(ctx)
	rep.Window = end.Sub(before.at)
	rep.Succeeded, _ = s.w.succeeded()
	rep.CPU = after.proc.CPU - before.proc.CPU
	rep.PeakRSS = after.proc.HWM
	rep.WindowRSS = max(rep.WindowRSS, after.proc.RSS)
	s.progress("%d of %d Succeeded %s after the image change", rep.Succeeded, len(s.names), round(rep.Window))

	b, a := before.ctrl, after.ctrl
	rep.Requests = a.sum("rest_client_requests_total", nil) - b.sum("rest_client_requests_total", nil)
	rep.RequestsByMethod = deltaBy(b, a, "rest_client_requests_total", "method", nil)
	rep.RequestsByCode = deltaBy(b, a, "rest_client_requests_total", "code", nil)
	rollout := map[string]string{"controller": "rollout"}
	rep.Reconciles = deltaBy(b, a, "controller_runtime_reconcile_total", "result", rollout)
	rep.ReconcileErrors = a.sum("controller_runtime_reconcile_errors_total", rollout) - b.sum("controller_runtime_reconcile_errors_total", rollout)
	rep.QueueWait = meanSeconds(b, a, "workqueue_queue_duration_seconds")
	rep.WorkTime = meanSeconds(b, a, "workqueue_work_duration_seconds")
	if before.server != nil && after.server != nil {
		rep.Server = serverLoad(before.server, after.server, 10)
	}
}

// meanSeconds is the mean of a work queue histogram's observations
// between two scrapes.
func meanSeconds(before, after metrics, histogram string) time.Duration {
	q := map[string]string{"name": "rollout"}
	n := after.sum(histogram+"_count", q) - before.sum(histogram+"_count", q)
	if n <= 0 {
		return 0
	}
	sum := after.sum(histogram+"_sum", q) - before.sum(histogram+"_sum", q)
	return time.Duration(sum / n * float64(time.Second))
}

// setImage changes a Deployment's image to newImage as kubectl set image
// does.
func (s *scale) setImage(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return kubefixture.SetImage(ctx, s.kc, types.NamespacedName{Namespace: s.ns, Name: name}, newImage)
}

// collectDelays reads every rollout's history and the phases they ended in.
func (s *scale) collectDelays(ctx context.Context) {
	list, err := s.w.rollouts(ctx)
	if err != nil {
		s.b.Fatalf("listing the rollouts: %v", err)
	}
	s.rep.Phases = map[v1alpha1.Phase]int{}
	changed := map[string]time.Time{}
	for i, name := range s.names {
		changed[name] = s.imageChanged[i]
	}
	for _, r := range list {
		s.rep.Phases[r.Status.Phase]++
		s.rep.Delays.add(timeline{
			imageChanged: changed[r.Name],
			history:      r.Status.History,
			routeSeen:    s.w.routeTimes(r.Name),
		}, s.rep.Pause)
	}
}

func (s *scale) proc() procStats {
	st, err := readProc(s.ctrl.pid)
	if err != nil {
		s.b.Fatalf("reading /proc of the controller: %v", err)
	}
	return st
}

func (s *scale) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubescale %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// rateFlags are the controller's client rate limit flags the run sets.
func (s *scale) rateFlags() []string {
	var args []string
	if *flagQPS != 0 {
		args = append(args, "--kube-api-qps", fmt.Sprint(*flagQPS))
	}
	if *flagBurst != 0 {
		args = append(args, "--kube-api-burst", fmt.Sprint(*flagBurst))
	}
	return args
}

// buildPipit builds the binary under test.
func buildPipit(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "pipit")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/pipit")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("building pipit: %v", err)
	}
	return bin
}

// parallel runs do(0..n-1) on workers goroutines and returns the first
// error.
func parallel(n, workers int, do func(i int) error) error {
	next := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// machine describes the CPUs: how many this process may use (nproc) and
// their model.
func machine() string {
	model := "unknown model"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s)", runtime.NumCPU(), model)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
