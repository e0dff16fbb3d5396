// Package telemetry defines the Prometheus series of pipit's rollouts, the
// same in the standalone daemon and the Kubernetes controller, so that one
// dashboard and one set of alerting rules serve both. docs/observability.md
// lists them; the proxy's own series (pipit_proxy_*) live with the proxy.
package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/buildinfo"
	"github.com/pipit-dev/pipit/internal/notify"
)

// Names of the series, for the tests and tools that check queries against
// what pipit exports.
const (
	BuildInfo            = "pipit_build_info"
	Phase                = "pipit_rollout_phase"
	CanaryWeight         = "pipit_rollout_canary_weight_percent"
	Step                 = "pipit_rollout_step"
	AnalysisChecks       = "pipit_rollout_analysis_checks"
	MetricValue          = "pipit_rollout_metric_value"
	StepDuration         = "pipit_rollout_step_duration_seconds"
	Events               = "pipit_rollout_events_total"
	Rollbacks            = "pipit_rollout_rollbacks_total"
	NotificationsSent    = "pipit_notifications_sent_total"
	NotificationsFailed  = "pipit_notifications_failed_total"
	NotificationsDropped = "pipit_notifications_dropped_total"
	NotificationsRetried = "pipit_notifications_retries_total"
)

const (
	labelNamespace = "namespace"
	labelRollout   = "rollout"
)

// phases lists every phase, so that the phase gauge reads 1 for the
// current one and 0 for the others, as kube-state-metrics does.
var phases = []v1alpha1.Phase{
	v1alpha1.PhaseIdle, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision,
	v1alpha1.PhasePromoting, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRollingBack, v1alpha1.PhaseRolledBack,
	v1alpha1.PhaseAborted, v1alpha1.PhaseFailed,
}

// rollbackOutcomes are the end phases of a rollback, each counted from 0
// so that increase() sees the first one.
var rollbackOutcomes = []v1alpha1.Phase{v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed}

// rolloutLabels name the rollout a series is of.
var rolloutLabels = []string{labelNamespace, labelRollout}

var (
	buildInfoDesc = prometheus.NewDesc(BuildInfo, "Always 1; the labels say which pipit is running.",
		[]string{"version", "commit", "goversion"}, nil)
	notifierLabels = with("notifier")
	sentDesc       = prometheus.NewDesc(NotificationsSent, "Notifications the notifier's endpoint accepted.", notifierLabels, nil)
	failedDesc     = prometheus.NewDesc(NotificationsFailed,
		"Notifications given up on after all their attempts.", notifierLabels, nil)
	droppedDesc = prometheus.NewDesc(NotificationsDropped,
		"Notifications never attempted: pushed out of a full queue, or left at shutdown.", notifierLabels, nil)
	retriesDesc = prometheus.NewDesc(NotificationsRetried, "Delivery attempts after a notification's first.", notifierLabels, nil)
)

// Rollouts holds the series of every rollout of one runtime. It is a
// prometheus.Collector; New registers it.
type Rollouts struct {
	phase        *prometheus.GaugeVec
	weight       *prometheus.GaugeVec
	step         *prometheus.GaugeVec
	checks       *prometheus.GaugeVec
	metricValue  *prometheus.GaugeVec
	stepDuration *prometheus.HistogramVec
	events       *prometheus.CounterVec
	rollbacks    *prometheus.CounterVec
	build        buildinfo.Info

	// mu makes Set's replacement of a rollout's metric values whole for
	// a scrape, and guards the maps.
	mu        sync.Mutex
	steps     map[key]stepStart
	notifiers map[key]func() []notify.Stats
}

// key names a rollout: its namespace (empty in standalone) and name.
type key struct{ namespace, name string }

// stepStart is the step a rollout was last seen in, and since when.
type stepStart struct {
	step int32
	at   time.Time
}

// with returns a rollout's labels followed by extra, in a new slice.
func with(extra ...string) []string {
	return append(rolloutLabels[:len(rolloutLabels):len(rolloutLabels)], extra...)
}

// New returns the series of a runtime's rollouts, registered on reg with
// pipit_build_info.
func New(reg prometheus.Registerer) *Rollouts {
	r := &Rollouts{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Phase,
			Help: "1 for the rollout's current phase, 0 for the others."}, with("phase")),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: CanaryWeight,
			Help: "The canary's share of traffic decided by the engine, in percent."}, with()),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Step,
			Help: "Index of the step being run, counted from 0 (the CLI shows it plus one)."}, with()),
		checks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: AnalysisChecks,
			Help: "Analysis checks of the current canary, by outcome (passed, failed)."}, with("outcome")),
		metricValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricValue,
			Help: "Value of each analysis metric at the last check, by role (canary, stable), in the metric's unit."},
			with("metric", "role")),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: StepDuration,
			Help:    "Time a rollout spent in a step before moving on.",
			Buckets: prometheus.ExponentialBuckets(1, 3, 10)}, with()),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Events,
			Help: "Rollout transitions, by type (Normal, Warning) and reason (WeightChanged, RolledBack...)."},
			with("type", "reason")),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Rollbacks,
			Help: "Rollbacks completed, by outcome (RolledBack, Aborted, Failed)."}, with("outcome")),
		build:     buildinfo.Read(),
		steps:     map[key]stepStart{},
		notifiers: map[key]func() []notify.Stats{},
	}
	reg.MustRegister(r)
	return r
}

func (r *Rollouts) vecs() []prometheus.Collector {
	return []prometheus.Collector{r.phase, r.weight, r.step, r.checks, r.metricValue, r.stepDuration, r.events, r.rollbacks}
}

// Describe implements prometheus.Collector.
func (r *Rollouts) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.vecs() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{buildInfoDesc, sentDesc, failedDesc, droppedDesc, retriesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Rollouts) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, r.build.Version, r.build.Commit, r.build.GoVersion)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.vecs() {
		c.Collect(ch)
	}
	for k, stats := range r.notifiers {
		for _, s := range stats() {
			for d, v := range map[*prometheus.Desc]uint64{sentDesc: s.Sent, failedDesc: s.Failed, droppedDesc: s.Dropped, retriesDesc: s.Retries} {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), k.namespace, k.name, s.Name)
			}
		}
	}
}

// Set publishes a rollout's status: phase, weight, step, checks and the
// values of its last check, replacing those of the check before.
func (r *Rollouts) Set(namespace, name string, st v1alpha1.RolloutStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range phases {
		v := 0.0
		if p == st.Phase {
			v = 1
		}
		r.phase.WithLabelValues(namespace, name, string(p)).Set(v)
	}
	r.weight.WithLabelValues(namespace, name).Set(st.CanaryWeight.Float())
	r.step.WithLabelValues(namespace, name).Set(float64(st.CurrentStep))
	r.checks.WithLabelValues(namespace, name, "passed").Set(float64(st.Analysis.PassedChecks))
	r.checks.WithLabelValues(namespace, name, "failed").Set(float64(st.Analysis.FailedChecks))
	for _, o := range rollbackOutcomes {
		r.rollbacks.WithLabelValues(namespace, name, string(o))
	}
	r.metricValue.DeletePartialMatch(prometheus.Labels{labelNamespace: namespace, labelRollout: name})
	for _, res := range st.Analysis.LastResults {
		if res.Canary != nil {
			r.metricValue.WithLabelValues(namespace, name, res.Name, "canary").Set(*res.Canary)
		}
		if res.Stable != nil {
			r.metricValue.WithLabelValues(namespace, name, res.Name, "stable").Set(*res.Stable)
		}
	}
}

// Observe counts a rollout's transitions and rollbacks and times its
// steps; st is the status after the events.
func (r *Rollouts) Observe(namespace, name string, st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	for _, e := range events {
		r.events.WithLabelValues(namespace, name, e.Type, e.Reason).Inc()
		if isRollbackEnd(e) {
			r.rollbacks.WithLabelValues(namespace, name, e.Reason).Inc()
		}
	}
	if len(events) == 0 {
		return
	}
	at := events[len(events)-1].Time.Time
	k := key{namespace, name}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, seen := r.steps[k]
	if seen && prev.step != st.CurrentStep {
		r.stepDuration.WithLabelValues(namespace, name).Observe(at.Sub(prev.at).Seconds())
	}
	if !seen || prev.step != st.CurrentStep {
		r.steps[k] = stepStart{step: st.CurrentStep, at: at}
	}
}

// isRollbackEnd reports whether e ends a rollback: the engine names that
// event after the phase the rollback leads to.
func isRollbackEnd(e v1alpha1.Event) bool {
	for _, o := range rollbackOutcomes {
		if e.Reason == string(o) && e.Phase == o {
			return true
		}
	}
	return false
}

// Notifiers exports the delivery counters of a rollout's notifiers, read
// at every scrape from stats (a notify.Dispatcher's Stats), which
// replaces the rollout's earlier source.
func (r *Rollouts) Notifiers(namespace, name string, stats func() []notify.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notifiers[key{namespace, name}] = stats
}

// Forget drops a deleted rollout's series.
func (r *Rollouts) Forget(namespace, name string) {
	match := prometheus.Labels{labelNamespace: namespace, labelRollout: name}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range []*prometheus.GaugeVec{r.phase, r.weight, r.step, r.checks, r.metricValue} {
		v.DeletePartialMatch(match)
	}
	r.stepDuration.DeletePartialMatch(match)
	r.events.DeletePartialMatch(match)
	r.rollbacks.DeletePartialMatch(match)
	delete(r.steps, key{namespace, name})
	delete(r.notifiers, key{namespace, name})
}
