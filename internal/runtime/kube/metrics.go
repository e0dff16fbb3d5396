package kube

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// phases lists every phase, so that the phase gauge reads 1 for the
// current one and 0 for the others, as kube-state-metrics does.
var phases = []v1alpha1.Phase{
	v1alpha1.PhaseIdle, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision,
	v1alpha1.PhasePromoting, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRollingBack, v1alpha1.PhaseRolledBack,
	v1alpha1.PhaseAborted, v1alpha1.PhaseFailed,
}

// controllerMetrics are the controller's own metrics, served on its
// /metrics endpoint beside controller-runtime's.
type controllerMetrics struct {
	phase        *prometheus.GaugeVec
	weight       *prometheus.GaugeVec
	step         *prometheus.GaugeVec
	checks       *prometheus.GaugeVec
	metricValue  *prometheus.GaugeVec
	stepDuration *prometheus.HistogramVec
	events       *prometheus.CounterVec

	mu    sync.Mutex
	steps map[string]stepStart // by namespace/name
}

type stepStart struct {
	step int32
	at   time.Time
}

func newControllerMetrics(reg prometheus.Registerer) *controllerMetrics {
	labels := []string{"namespace", "rollout"}
	m := &controllerMetrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pipit_rollout_phase",
			Help: "1 for the rollout's current phase, 0 for the others."}, append(labels, "phase")),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pipit_rollout_canary_weight_percent",
			Help: "Share of traffic sent to the canary, in percent."}, labels),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pipit_rollout_step",
			Help: "Index of the step being run."}, labels),
		checks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pipit_rollout_analysis_checks",
			Help: "Analysis checks of the current canary, by result."}, append(labels, "result")),
		metricValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pipit_rollout_metric_value",
			Help: "Last measured value of an analysis metric, by version."}, append(labels, "metric", "version")),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pipit_rollout_step_duration_seconds",
			Help:    "Time a rollout spent in a step before moving on.",
			Buckets: prometheus.ExponentialBuckets(1, 3, 10)}, labels),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pipit_rollout_events_total",
			Help: "Rollout transitions, by reason."}, append(labels, "reason")),
		steps: map[string]stepStart{},
	}
	reg.MustRegister(m.phase, m.weight, m.step, m.checks, m.metricValue, m.stepDuration, m.events)
	return m
}

// set publishes a rollout's status.
func (m *controllerMetrics) set(ns, name string, st v1alpha1.RolloutStatus) {
	for _, p := range phases {
		v := 0.0
		if p == st.Phase {
			v = 1
		}
		m.phase.WithLabelValues(ns, name, string(p)).Set(v)
	}
	m.weight.WithLabelValues(ns, name).Set(st.CanaryWeight.Float())
	m.step.WithLabelValues(ns, name).Set(float64(st.CurrentStep))
	m.checks.WithLabelValues(ns, name, "passed").Set(float64(st.Analysis.PassedChecks))
	m.checks.WithLabelValues(ns, name, "failed").Set(float64(st.Analysis.FailedChecks))
	for _, r := range st.Analysis.LastResults {
		if r.Canary != nil {
			m.metricValue.WithLabelValues(ns, name, r.Name, "canary").Set(*r.Canary)
		}
		if r.Stable != nil {
			m.metricValue.WithLabelValues(ns, name, r.Name, "stable").Set(*r.Stable)
		}
	}
}

// observe counts a rollout's transitions and times its steps.
func (m *controllerMetrics) observe(ns, name string, st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	for _, e := range events {
		m.events.WithLabelValues(ns, name, e.Reason).Inc()
	}
	if len(events) == 0 {
		return
	}
	at := events[len(events)-1].Time.Time
	key := ns + "/" + name
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, seen := m.steps[key]
	if seen && prev.step != st.CurrentStep {
		m.stepDuration.WithLabelValues(ns, name).Observe(at.Sub(prev.at).Seconds())
	}
	if !seen || prev.step != st.CurrentStep {
		m.steps[key] = stepStart{step: st.CurrentStep, at: at}
	}
}

// forget drops a deleted rollout's series.
func (m *controllerMetrics) forget(ns, name string) {
	match := prometheus.Labels{"namespace": ns, "rollout": name}
	for _, v := range []*prometheus.GaugeVec{m.phase, m.weight, m.step, m.checks, m.metricValue} {
		v.DeletePartialMatch(match)
	}
	m.stepDuration.DeletePartialMatch(match)
	m.events.DeletePartialMatch(match)
	m.mu.Lock()
	delete(m.steps, ns+"/"+name)
	m.mu.Unlock()
}
