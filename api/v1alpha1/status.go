package v1alpha1

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is where a rollout stands.
type Phase string

const (
	// PhaseIdle: stable serves everything and no canary is being rolled out.
	PhaseIdle Phase = "Idle"
	// PhaseProgressing: the canary is going through the steps.
	PhaseProgressing Phase = "Progressing"
	// PhasePaused: an operator paused the rollout; time does not run.
	PhasePaused Phase = "Paused"
	// PhaseAwaitingDecision: a person must promote (or abort) to go on.
	PhaseAwaitingDecision Phase = "AwaitingDecision"
	// PhasePromoting: all steps passed; the canary is becoming the stable.
	PhasePromoting Phase = "Promoting"
	// PhaseSucceeded: the canary was promoted and is now the stable.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseRollingBack: traffic is being taken off the canary.
	PhaseRollingBack Phase = "RollingBack"
	// PhaseRolledBack: analysis or health failed; stable serves everything.
	PhaseRolledBack Phase = "RolledBack"
	// PhaseAborted: an operator aborted; stable serves everything.
	PhaseAborted Phase = "Aborted"
	// PhaseFailed: the progress deadline passed or an error stopped the
	// rollout; stable serves everything.
	PhaseFailed Phase = "Failed"
)

// Terminal reports whether the phase is an end state of a rollout.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseSucceeded, PhaseRolledBack, PhaseAborted, PhaseFailed:
		return true
	}
	return false
}

// RolloutStatus is what pipit observed and decided. It is the whole state of
// a rollout: the engine needs nothing else to go on after a restart.
type RolloutStatus struct {
	// ObservedGeneration is the spec generation this status was made from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase of the rollout.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Message says in a sentence why the rollout is in this phase.
	// +optional
	Message string `json:"message,omitempty"`

	// Stable is the version that serves users outside the canary share.
	// +optional
	Stable *VersionRef `json:"stable,omitempty"`
	// Canary is the version being rolled out, if any.
	// +optional
	Canary *VersionRef `json:"canary,omitempty"`
	// Targets describe each Deployment of a coordinated rollout
	// (spec.targetRefs), in the spec's order, as the controller last saw
	// them; empty for other rollouts.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	Targets []TargetStatus `json:"targets,omitempty"`

	// CurrentStep is the index of the step being run, counted from 0
	// (people read steps counted from 1: index 2 is "step 3/6"); once
	// every step is done it is the number of steps.
	// +optional
	CurrentStep int32 `json:"currentStep"`
	// StepLabel is the current step as people count steps, from 1: "3/6"
	// is index 2 of six steps, "6/6 done" once every step is done; empty
	// while no rollout ran. kubectl get shows it as the Step column.
	// +optional
	StepLabel string `json:"stepLabel,omitempty"`
	// CanaryWeight is the share of traffic the canary should receive now.
	// +optional
	CanaryWeight Percent `json:"canaryWeight"`
	// Previewing is set while the canary is under test with no share of
	// the weight: a blue-green rollout's new version on its preview
	// address (and the requests the traffic rules send it), or, in
	// Kubernetes, an experiment's treatment on the requests of its group,
	// which the traffic rules send it. It is checked and watched as a
	// canary with traffic is.
	// +optional
	Previewing bool `json:"previewing,omitempty"`

	// StartedAt is when the current rollout started.
	// +optional
	StartedAt *metav1.MicroTime `json:"startedAt,omitempty"`
	// StepStartedAt is when the current step started. While paused by an
	// operator it is moved forward on resume by the time spent paused, so a
	// pause keeps the remaining soak time.
	// +optional
	StepStartedAt *metav1.MicroTime `json:"stepStartedAt,omitempty"`
	// PausedAt is when an operator paused the rollout.
	// +optional
	PausedAt *metav1.MicroTime `json:"pausedAt,omitempty"`
	// WaitingSince is when the rollout began waiting for the canary to
	// become healthy, or for a promotion or rollback to take effect; the
	// progress deadline is counted from it.
	// +optional
	WaitingSince *metav1.MicroTime `json:"waitingSince,omitempty"`

	// Gate is set while the rollout waits for a person (phase
	// AwaitingDecision): what it waits for and since when.
	// +optional
	Gate *Gate `json:"gate,omitempty"`
	// Rollback is set once the rollout decided to take traffic off the
	// canary: why, and which end phase it leads to.
	// +optional
	Rollback *Rollback `json:"rollback,omitempty"`
	// HookWait is set while the rollout waits on gate hooks.
	// +optional
	HookWait *HookWait `json:"hookWait,omitempty"`
	// HooksPassed lists the occasions whose gate hooks said yes in this
	// rollout.
	// +optional
	HooksPassed []string `json:"hooksPassed,omitempty"`
	// HookRuns counts runs of gate hooks, to number the next one.
	// +optional
	HookRuns int64 `json:"hookRuns,omitempty"`

	// Previous is the stable version before the last promotion, kept for
	// `pipit undo` until PromotedAt + undoWindow.
	// +optional
	Previous *VersionRef `json:"previous,omitempty"`
	// PromotedAt is when the last promotion completed.
	// +optional
	PromotedAt *metav1.MicroTime `json:"promotedAt,omitempty"`
	// Contracted is set once the contract hooks ran after the undo window.
	// +optional
	Contracted bool `json:"contracted,omitempty"`
	// Watch is the watch after the last promotion (spec.postPromotion):
	// the baselines recorded before the switch, then the checks of the new
	// stable until the watch ends.
	// +optional
	Watch *PostPromotionWatch `json:"watch,omitempty"`

	// Analysis is the state of the checks.
	// +optional
	Analysis AnalysisStatus `json:"analysis,omitempty"`

	// Experiment is the state of an experiment (spec.strategy.experiment)
	// while it runs, then its outcome: the winner with its numbers.
	// +optional
	Experiment *ExperimentStatus `json:"experiment,omitempty"`

	// ConsumedCommands names the RolloutCommands (by UID) the controller
	// applied or refused most recently, newest last. It is written with
	// the decision they led to, so a command is never applied twice, even
	// when the controller stops before it answered in the command.
	// +kubebuilder:validation:MaxItems=50
	// +optional
	ConsumedCommands []string `json:"consumedCommands,omitempty"`
	// History holds the latest transitions, oldest first (Kubernetes
	// runtime; the standalone runtime keeps all of them in its database).
	// +kubebuilder:validation:MaxItems=100
	// +optional
	History []Event `json:"history,omitempty"`
	// RecentChecks holds the values of the latest analysis checks, oldest
	// first, for the dashboard's metric charts (Kubernetes runtime; the
	// standalone runtime keeps every check's in its database, as samples).
	// The controller keeps the last 60, written with the decision of the
	// check, and leaves out the results' messages (the last check's are
	// in analysis.lastResults): about 100 bytes a metric a check, so some
	// 30 KB for five metrics, well within an object's 1.5 MB.
	// +kubebuilder:validation:MaxItems=60
	// +optional
	RecentChecks []AnalysisCheck `json:"recentChecks,omitempty"`

	// Conditions in the Kubernetes style, for tools that wait on them.
	// Keyed by type, so server-side apply merges them one by one.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GateKind says what a waiting rollout needs a person for.
type GateKind string

const (
	// GatePause: an indefinite pause step; promote goes past it.
	GatePause GateKind = "Pause"
	// GateStage: manual decision mode; promote starts the next stage.
	GateStage GateKind = "Stage"
	// GatePromotion: manual decision mode; promote makes the canary stable.
	GatePromotion GateKind = "Promotion"
	// GateAnomaly: hybrid decision mode found an anomaly; promote goes on
	// as if it had not happened, abort rolls back.
	GateAnomaly GateKind = "Anomaly"
	// GateApproval: an approval step; approve goes on, reject rolls back.
	GateApproval GateKind = "Approval"
)

// Gate is a wait for a person's decision.
type Gate struct {
	// Kind of decision awaited.
	Kind GateKind `json:"kind"`
	// Since is when the wait began.
	Since metav1.MicroTime `json:"since"`
	// Reason is shown to the person who decides.
	Reason string `json:"reason"`
	// Expires is when an approval's timeout passes, if it has one.
	// +optional
	Expires *metav1.MicroTime `json:"expires,omitempty"`
	// Expired is set once the timeout passed and the policy was to wait.
	// +optional
	Expired bool `json:"expired,omitempty"`
}

// HookWait is a wait on gate hooks (confirm-*, pre-rollout).
type HookWait struct {
	// Type of the hooks waited on.
	Type HookType `json:"type"`
	// Key identifies the occasion, such as "confirm-traffic-increase@3",
	// so a hook passed for one step is asked again at the next.
	Key string `json:"key"`
	// Run numbers the current run of the hooks; results of older runs are
	// ignored.
	Run int64 `json:"run"`
	// Since is when the wait began; NextRunAt when the hooks are run again.
	Since     metav1.MicroTime `json:"since"`
	NextRunAt metav1.MicroTime `json:"nextRunAt"`
	// Failures counts failed runs (pre-rollout hooks).
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// Message is the hooks' last answer.
	// +optional
	Message string `json:"message,omitempty"`
}

// Rollback records why traffic was taken off the canary.
type Rollback struct {
	// Outcome is the end phase the rollback leads to: RolledBack,
	// Aborted or Failed.
	Outcome Phase `json:"outcome"`
	// Reason is the sentence shown in status and history.
	Reason string `json:"reason"`
	// Metric names the metric that decided it, if one did.
	// +optional
	Metric string `json:"metric,omitempty"`
	// At is when the decision was taken.
	At metav1.MicroTime `json:"at"`
}

// TargetStatus is what one Deployment of a coordinated rollout runs:
// the revision (pod-template hash) and images of its serving copy and of
// its canary copy, and how many of their pods are ready.
type TargetStatus struct {
	// Name of the Deployment.
	Name string `json:"name"`
	// StableRevision is the template hash the serving copy runs, and
	// StableVersion its images.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// +optional
	StableVersion string `json:"stableVersion,omitempty"`
	// StableReady counts the serving copy's ready pods.
	// +optional
	StableReady int32 `json:"stableReady,omitempty"`
	// CanaryRevision is the template hash the canary copy runs while it
	// has replicas, and CanaryVersion its images.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// +optional
	CanaryVersion string `json:"canaryVersion,omitempty"`
	// CanaryReady counts the canary copy's ready pods.
	// +optional
	CanaryReady int32 `json:"canaryReady,omitempty"`
}

// VersionRef identifies one version of the service.
type VersionRef struct {
	// Version is the human label of the version.
	Version string `json:"version"`
	// URL is where the version is reached (standalone).
	// +optional
	URL string `json:"url,omitempty"`
	// URLs are the machines the version is reached at, when it is served
	// by several (standalone); the status keeps them so that a restarted
	// daemon reaches the same machines.
	// +optional
	URLs []string `json:"urls,omitempty"`
	// Process is how pipit runs the version when it runs it itself
	// (standalone). The status keeps the whole description so that a
	// restarted daemon can start the version again.
	// +optional
	Process *ProcessSpec `json:"process,omitempty"`
	// Template is the hash of the version's pod template (Kubernetes
	// runtime); Version is then the containers' images, for people.
	// +optional
	Template string `json:"template,omitempty"`
}

// ID identifies the version: its pod-template hash when it has one
// (Kubernetes, where two templates may carry the same images), else its
// label.
func (v VersionRef) ID() string {
	if v.Template != "" {
		return v.Template
	}
	return v.Version
}

// AnalysisStatus is the running state of the checks.
type AnalysisStatus struct {
	// LastCheckAt is when the last check ran.
	// +optional
	LastCheckAt *metav1.MicroTime `json:"lastCheckAt,omitempty"`
	// NextCheckAt is when the next check is due.
	// +optional
	NextCheckAt *metav1.MicroTime `json:"nextCheckAt,omitempty"`
	// FailedChecks counts failed checks in this rollout.
	// +optional
	FailedChecks int32 `json:"failedChecks"`
	// PassedChecks counts passing checks in this rollout.
	// +optional
	PassedChecks int32 `json:"passedChecks"`
	// StepPassedChecks counts passing checks at the current step.
	// +optional
	StepPassedChecks int32 `json:"stepPassedChecks"`
	// WeightPassedChecks counts passing checks since the weight last
	// changed; promotion needs one when the analysis has metrics.
	// +optional
	WeightPassedChecks int32 `json:"weightPassedChecks"`
	// LastResults are the metrics of the last check.
	// +optional
	LastResults []MetricResult `json:"lastResults,omitempty"`
	// Metrics are each metric's counters in this rollout, which its limits
	// are checked against.
	// +optional
	Metrics []MetricStatus `json:"metrics,omitempty"`
}

// AnalysisCheck is the results of one analysis check.
type AnalysisCheck struct {
	// At is when the check ran.
	At metav1.MicroTime `json:"at"`
	// Results are each metric's values and verdict.
	// +optional
	Results []MetricResult `json:"results,omitempty"`
}

// MetricStatus counts one metric's measurements in the current rollout.
type MetricStatus struct {
	Name         string `json:"name"`
	Successful   int32  `json:"successful"`
	Failed       int32  `json:"failed"`
	Inconclusive int32  `json:"inconclusive"`
	Errors       int32  `json:"errors"`
	// ConsecutiveErrors counts measurement errors since the last
	// measurement that could be taken.
	ConsecutiveErrors int32 `json:"consecutiveErrors"`
	// NoDataSince is when the metric last started to have no data, while
	// it still has none.
	// +optional
	NoDataSince *metav1.MicroTime `json:"noDataSince,omitempty"`
}

// Verdict is the outcome of one metric at one check.
type Verdict string

const (
	// VerdictSuccessful: the value is within its bounds.
	VerdictSuccessful Verdict = "Successful"
	// VerdictFailed: the value is out of its bounds.
	VerdictFailed Verdict = "Failed"
	// VerdictInconclusive: the measurement neither passed nor failed (a
	// canary score between marginal and pass, or neither condition held).
	VerdictInconclusive Verdict = "Inconclusive"
	// VerdictNoData: there was nothing to measure (no requests).
	VerdictNoData Verdict = "NoData"
	// VerdictError: the measurement itself failed.
	VerdictError Verdict = "Error"
)

// MetricResult is one metric's value and verdict at one check.
type MetricResult struct {
	// Name of the metric.
	Name string `json:"name"`
	// Canary is the canary's value; absent when there was no data.
	// +optional
	Canary *float64 `json:"canary,omitempty"`
	// Stable is the stable's value over the same window, for comparison.
	// +optional
	Stable *float64 `json:"stable,omitempty"`
	// Verdict of the check.
	Verdict Verdict `json:"verdict"`
	// Message explains the verdict ("error-rate 7.2% > max 1%").
	// +optional
	Message string `json:"message,omitempty"`
	// DryRun results are reported but do not decide.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// Event is one transition of a rollout, as shown by `pipit history`.
type Event struct {
	// Time of the transition.
	Time metav1.MicroTime `json:"time"`
	// Type is Normal or Warning, as Kubernetes events.
	Type string `json:"type"`
	// Reason is a CamelCase word for machines: WeightChanged, RolledBack…
	Reason string `json:"reason"`
	// Message is the sentence for people.
	Message string `json:"message"`
	// Phase after the transition.
	Phase Phase `json:"phase"`
	// Step index after the transition, counted from 0 as currentStep.
	Step int32 `json:"step"`
	// Weight of the canary after the transition.
	Weight Percent `json:"weight"`
	// Actor is who caused it: "pipit" for the engine, else the operator.
	// +optional
	Actor string `json:"actor,omitempty"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// PostPromotionWatch is the state of the watch after a promotion.
type PostPromotionWatch struct {
	// Baselines are the previous stable version's values, from the last
	// check before the switch.
	// +optional
	Baselines []Baseline `json:"baselines,omitempty"`
	// Until is when the watch ends; unset until the promotion completes.
	// +optional
	Until *metav1.MicroTime `json:"until,omitempty"`
	// NextCheckAt is when the new stable is measured next.
	// +optional
	NextCheckAt *metav1.MicroTime `json:"nextCheckAt,omitempty"`
	// Outcome is empty while the watch runs, then Passed, Failed (the
	// promotion was undone, or stands when the undo window had closed) or
	// Undone (by a person during the watch).
	// +optional
	Outcome WatchOutcome `json:"outcome,omitempty"`
	// Checks counts the checks of the new stable so far.
	// +optional
	Checks int32 `json:"checks,omitempty"`
	// LastResults are the verdicts of the last check, with the new
	// stable's values in Canary (the version under watch).
	// +optional
	LastResults []MetricResult `json:"lastResults,omitempty"`
}

// Baseline is one metric's value for the version a promotion replaces.
type Baseline struct {
	// Metric is the watched metric's name.
	Metric string `json:"metric"`
	// Value is the previous stable version's value.
	Value float64 `json:"value"`
}

// WatchOutcome is how a watch after a promotion ended.
type WatchOutcome string

// Outcomes of a watch after a promotion.
const (
	WatchPassed WatchOutcome = "Passed"
	WatchFailed WatchOutcome = "Failed"
	WatchUndone WatchOutcome = "Undone"
)

// ExperimentStatus is an experiment's numbers and, once it ended, its
// winner.
type ExperimentStatus struct {
	// Goal is the primary goal whose conversion rate decides.
	Goal string `json:"goal"`
	// PromoteIf is the rule the verdict followed: better or notWorse.
	PromoteIf PromoteRule `json:"promoteIf"`
	// StartedAt is when the treatment got its share of the users; the
	// maximum duration is counted from it.
	// +optional
	StartedAt *metav1.MicroTime `json:"startedAt,omitempty"`
	// Control is the stable version's users, Treatment the new one's, at
	// the last check.
	Control   ExperimentVariant `json:"control"`
	Treatment ExperimentVariant `json:"treatment"`
	// Difference is the treatment's conversion rate minus the control's,
	// in percentage points; Interval its confidence interval (lower,
	// upper) by the two-proportion z-test, at Confidence.
	// +optional
	Difference *float64 `json:"difference,omitempty"`
	// +optional
	Interval []float64 `json:"interval,omitempty"`
	// +optional
	Confidence float64 `json:"confidence,omitempty"`
	// PValue is the p-value of the difference: the always-valid one of the
	// sequential test, or the fixed z-test's when that decided.
	// +optional
	PValue *float64 `json:"pValue,omitempty"`
	// SampleRatioPValue is the p-value of the sample-ratio-mismatch check
	// of the visitors against the planned split.
	// +optional
	SampleRatioPValue *float64 `json:"sampleRatioPValue,omitempty"`
	// SampleRatioFrom is the counts at the experiment's first check: the
	// sample-ratio check counts the visitors since, so that the users first
	// seen before the split (all on the control, while the treatment became
	// healthy) do not weigh on it.
	// +optional
	SampleRatioFrom *ExperimentLook `json:"sampleRatioFrom,omitempty"`
	// Winner is empty while the experiment runs, then control, treatment
	// or none.
	// +optional
	Winner ExperimentWinner `json:"winner,omitempty"`
	// Reason says in a sentence why the experiment ended as it did.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Looks are the cumulative counts at each check that looked at the
	// goal, oldest first: the sequential test is replayed over them, so
	// that its evidence survives a restart. At most MaxExperimentLooks;
	// past them the last one is replaced.
	// +optional
	Looks []ExperimentLook `json:"looks,omitempty"`
}

// Summary writes the winner, when there is one, both conversion rates, the
// difference, its interval and the p-value, for the history, notifications
// and people: "winner treatment (v2) — conversion on checkout: control
// 10.00% (90/900), treatment 15.00% (135/900), difference +5.00 points
// (95% interval +1.95 to +8.05), p = 0.0406".
func (x *ExperimentStatus) Summary() string {
	var b strings.Builder
	switch x.Winner {
	case WinnerControl:
		b.WriteString("winner control (" + x.Control.Version + ") — ")
	case WinnerTreatment:
		b.WriteString("winner treatment (" + x.Treatment.Version + ") — ")
	case WinnerNone:
		b.WriteString("no winner — ")
	}
	fmt.Fprintf(&b, "conversion on %s: control %s, treatment %s", x.Goal, x.Control.text(), x.Treatment.text())
	if x.Difference != nil {
		fmt.Fprintf(&b, ", difference %+.2f points", *x.Difference)
	}
	if len(x.Interval) == 2 {
		fmt.Fprintf(&b, " (%g%% interval %+.2f to %+.2f)", 100*x.Confidence, x.Interval[0], x.Interval[1])
	}
	if x.PValue != nil {
		fmt.Fprintf(&b, ", p = %.3g", *x.PValue)
	}
	return b.String()
}

// MaxExperimentLooks bounds ExperimentStatus.Looks, and with it the size
// of the status.
const MaxExperimentLooks = 500

// ExperimentVariant is one variant's users.
type ExperimentVariant struct {
	// Version is the version the variant runs.
	// +optional
	Version string `json:"version,omitempty"`
	// Visitors is the number of distinct users routed to it, Converted
	// those of them who reached the goal.
	Visitors  int64 `json:"visitors"`
	Converted int64 `json:"converted"`
	// Rate is Converted/Visitors in percent; unset without visitors.
	// +optional
	Rate *float64 `json:"rate,omitempty"`
}

// text writes a variant's rate and counts: "12.50% (25/200)".
func (v ExperimentVariant) text() string {
	if v.Rate == nil {
		return fmt.Sprintf("no visitors (%d/%d)", v.Converted, v.Visitors)
	}
	return fmt.Sprintf("%.2f%% (%d/%d)", *v.Rate, v.Converted, v.Visitors)
}

// ExperimentLook is the cumulative counts of both variants at one check.
type ExperimentLook struct {
	ControlVisitors    int64 `json:"controlVisitors"`
	ControlConverted   int64 `json:"controlConverted"`
	TreatmentVisitors  int64 `json:"treatmentVisitors"`
	TreatmentConverted int64 `json:"treatmentConverted"`
}

// ExperimentWinner names the variant an experiment declared the winner.
type ExperimentWinner string

// Winners of an experiment.
const (
	// WinnerControl: the stable version stays; the treatment converted
	// worse (or, under notWorse, worse by more than the margin).
	WinnerControl ExperimentWinner = "control"
	// WinnerTreatment: the new version is promoted.
	WinnerTreatment ExperimentWinner = "treatment"
	// WinnerNone: no winner (a broken split, or no verdict within the
	// maximum duration); the stable version stays.
	WinnerNone ExperimentWinner = "none"
)
