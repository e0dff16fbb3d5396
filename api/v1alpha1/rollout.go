package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rollout declares how a new version of one service replaces the current
// one: which share of traffic it gets at each step, what is checked before
// going on, and who decides.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=pipit,shortName=prl
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,description="Where the rollout stands"
// +kubebuilder:printcolumn:name="Weight",type=number,JSONPath=`.status.canaryWeight`,description="Share of traffic on the canary, in percent"
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.stepLabel`,description="The step being run, counted from 1 (status.currentStep is its index from 0)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutSpec   `json:"spec"`
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts, as the API server returns it.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Rollouts.
	Items []Rollout `json:"items"`
}

// RolloutSpec is what the user asks for. A rollout names what it rolls
// out in one of four ways: Service (the standalone runtime's proxy and
// upstreams), TargetRef (a workload in the Kubernetes runtime),
// TargetRefs (several workloads rolled out together, Kubernetes runtime)
// or Flag (a feature flag served over OFREP by the standalone runtime).
//
// +kubebuilder:validation:XValidation:rule="(has(self.service) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) + (has(self.flag) ? 1 : 0) == 1",message="set one of service (standalone), targetRef (Kubernetes), targetRefs (several Deployments, Kubernetes) and flag (standalone), not two"
// +kubebuilder:validation:XValidation:rule="!has(self.kubernetes) || has(self.targetRef)",message="kubernetes needs targetRef"
type RolloutSpec struct {
	// Service says where the built-in proxy listens and which upstreams
	// serve the stable and the canary version (standalone runtime).
	// +optional
	Service *ServiceSpec `json:"service,omitempty"`

	// TargetRef names the workload rolled out (Kubernetes runtime).
	// +optional
	TargetRef *TargetRef `json:"targetRef,omitempty"`

	// TargetRefs names several Deployments rolled out together
	// (Kubernetes runtime): they move through the steps together, are
	// promoted together and roll back together; each has its own
	// copies, Services and router, set in its entry instead of in
	// spec.kubernetes. The list of names cannot change once created: the
	// installed version holds one template of each.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.name == a.name))",message="each Deployment may be named once"
	// +kubebuilder:validation:XValidation:rule="self.map(t, t.name) == oldSelf.map(t, t.name)",message="the Deployments of targetRefs and their order cannot change: delete the Rollout (pipit hands them back) and create it with the new list"
	// +optional
	TargetRefs []DeploymentRef `json:"targetRefs,omitempty"`

	// Flag is a feature flag rolled out to a growing share of users
	// instead of a service: the standalone runtime serves it over
	// OpenFeature's remote evaluation protocol (pipit up --ofrep).
	// +optional
	Flag *FlagSpec `json:"flag,omitempty"`

	// Kubernetes says how the Kubernetes runtime names its copies and
	// Services and splits traffic. Optional: every field has a default.
	// +optional
	Kubernetes *KubernetesSpec `json:"kubernetes,omitempty"`

	// Strategy lists the steps of the canary.
	Strategy Strategy `json:"strategy"`

	// Analysis lists the checks run while the canary receives traffic.
	// +optional
	Analysis *AnalysisSpec `json:"analysis,omitempty"`

	// Decision says who moves the rollout on: automatic (default), manual
	// or hybrid.
	// +optional
	Decision DecisionMode `json:"decision,omitempty"`

	// ProgressDeadline bounds how long the rollout may wait for a canary to
	// become healthy, or for a promotion or rollback to take effect, before
	// it fails and sends all traffic to stable. Default 10m.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="progressDeadline must be positive"
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`

	// UndoWindow is how long after a promotion `pipit undo` can switch
	// traffic back to the previous stable at once, without re-running the
	// steps; process targets keep the previous version running meanwhile.
	// Contract hooks run when it closes. Default 15m; 0 turns undo off.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="undoWindow must not be negative"
	// +optional
	UndoWindow *metav1.Duration `json:"undoWindow,omitempty"`

	// PostPromotion watches the new stable version after a promotion,
	// while the previous version is still warm, and undoes the promotion
	// at once when it turns bad.
	// +optional
	PostPromotion *PostPromotionSpec `json:"postPromotion,omitempty"`

	// Webhooks are gates and callbacks around the rollout (Flagger's hook
	// types, plus contract).
	// +optional
	Webhooks []WebhookSpec `json:"webhooks,omitempty"`

	// Notifications are sent to chat and webhook endpoints for the events
	// that matter.
	// +optional
	Notifications []NotifierSpec `json:"notifications,omitempty"`
}

// DecisionMode names who decides that the rollout moves on.
// +kubebuilder:validation:Enum=automatic;manual;hybrid
type DecisionMode string

const (
	// DecisionAutomatic advances while the canary is healthy and rolls back
	// when it is not.
	DecisionAutomatic DecisionMode = "automatic"
	// DecisionManual waits for a person's promote at the end of every
	// stage; failures still roll back on their own.
	DecisionManual DecisionMode = "manual"
	// DecisionHybrid advances on its own while healthy; on an anomaly it
	// waits for a person (promote to go on, abort to roll back) instead of
	// rolling back.
	DecisionHybrid DecisionMode = "hybrid"
)

// ServiceSpec describes the service being rolled out in standalone mode.
type ServiceSpec struct {
	// Listen is the address of the built-in proxy, such as ":8080".
	Listen string `json:"listen"`
	// Stable is the version serving users now.
	Stable Upstream `json:"stable"`
	// Canary is the new version. When set in the file, pipit starts
	// rolling it out as soon as it loads the file; it can also be given
	// later with `pipit deploy NAME --canary URL` (or, for processes,
	// `pipit deploy NAME --version V --command CMD ...`).
	// +optional
	Canary *Upstream `json:"canary,omitempty"`
	// HealthCheck says how both upstreams are probed.
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// Traffic says who gets the canary: users by a hashed key, segments and
	// overrides by rules, sticky sessions and mirroring.
	// +optional
	Traffic *TrafficSpec `json:"traffic,omitempty"`
	// Host and PathPrefix route requests to this rollout when several
	// rollouts share one listen address: an exact host beats any host, and
	// the longest path prefix wins.
	// +optional
	Host string `json:"host,omitempty"`
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`
	// TLS terminates HTTPS (HTTP/2 and HTTP/1.1) with certificate files,
	// reloaded when they change. Rollouts sharing a listen address share it.
	// +optional
	TLS *ServiceTLS `json:"tls,omitempty"`
	// VersionHeader says whether responses carry the X-Pipit-Version
	// header naming the version that answered. Default true; false
	// announces nothing, as nginx and HAProxy do. Rollouts sharing a
	// listen address agree on it.
	// +optional
	VersionHeader *bool `json:"versionHeader,omitempty"`
	// TrustedProxies are the peers, IP addresses or CIDR prefixes (IPv4
	// or IPv6), whose forwarding headers (X-Forwarded-For, Forwarded,
	// X-Forwarded-Host and -Proto) are believed; from any other peer they
	// are replaced. Default none. Rollouts sharing a listen address agree
	// on it.
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// Limits bound the connections the listener serves. Rollouts sharing
	// a listen address agree on them.
	// +optional
	Limits *ListenerLimits `json:"limits,omitempty"`
}

// ListenerLimits bound the connections of one listen address; a field
// left out takes the proxy's default.
type ListenerLimits struct {
	// MaxConnections is how many connections are served at once; past
	// it the listener stops accepting until one closes. Default 10000.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// MaxConnectionsPerClient is how many connections one client address
	// may hold at once. Default 256.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConnectionsPerClient *int32 `json:"maxConnectionsPerClient,omitempty"`
}

// ServiceTLS names a certificate and its key, PEM files.
type ServiceTLS struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// Upstream is one version of the service: already running and reached
// over HTTP at URL, or at each of URLs (a fleet of machines), or run by
// pipit itself as local processes. Exactly one of URL, URLs and Process
// is set, and the stable and the canary of a rollout are of the same
// kind (reached by URL, or run by pipit).
//
// +kubebuilder:validation:XValidation:rule="(has(self.url) ? 1 : 0) + (has(self.urls) ? 1 : 0) + (has(self.process) ? 1 : 0) == 1",message="set one of url, urls and process: a version is reached at a URL, at the URLs of its machines, or run by pipit"
// +kubebuilder:validation:XValidation:rule="!has(self.process) || has(self.version)",message="version is required with process"
type Upstream struct {
	// URL is the base URL requests are sent to, such as
	// http://127.0.0.1:9001.
	// +optional
	URL string `json:"url,omitempty"`
	// URLs are the base URLs of the machines serving the version (a
	// fleet of VMs): requests are spread round-robin over the machines
	// in rotation, the health check probes each and takes one that
	// fails out of rotation until it passes again.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b == a))",message="each URL may be listed once"
	// +optional
	URLs []string `json:"urls,omitempty"`
	// Process declares the version as processes pipit starts, probes,
	// restarts and drains (standalone runtime); the proxy balances across
	// the ready ones.
	// +optional
	Process *ProcessSpec `json:"process,omitempty"`
	// Version is a label for people (v1.4.2, a commit); defaults to the
	// URL (the first of URLs), and is required with Process.
	// +optional
	Version string `json:"version,omitempty"`
}

// HealthCheck configures active health checks of the upstreams.
type HealthCheck struct {
	// Path is requested with GET; any 2xx or 3xx answer is healthy.
	// Default /health.
	// +optional
	Path string `json:"path,omitempty"`
	// Interval between probes. Default 1s.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one probe. Default 1s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// FailureThreshold is how many probes in a row must fail before the
	// upstream counts as down. Default 2.
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// Strategy is the release plan in one of five forms: an explicit list of
// canary steps, Flagger's shorthand (interval with stepWeight and
// maxWeight, or stepWeights), a named preset, blue-green, or an
// experiment. The shorthand, presets, blue-green and experiments expand
// into steps; the forms cannot be mixed. (CEL cannot see preset, which
// has no schema, so pipit's validation alone keeps it apart from the
// others.)
//
// +kubebuilder:validation:XValidation:rule="!has(self.experiment) || !(has(self.blueGreen) || (has(self.steps) && size(self.steps) > 0) || has(self.stepWeight) || has(self.maxWeight) || has(self.stepWeights))",message="experiment cannot be mixed with steps, the shorthand (stepWeight, maxWeight, stepWeights) or blueGreen"
// +kubebuilder:validation:XValidation:rule="!has(self.blueGreen) || !((has(self.steps) && size(self.steps) > 0) || has(self.stepWeight) || has(self.maxWeight) || has(self.stepWeights))",message="blueGreen cannot be mixed with steps or the shorthand (stepWeight, maxWeight, stepWeights)"
// +kubebuilder:validation:XValidation:rule="!(has(self.steps) && size(self.steps) > 0 && (has(self.stepWeight) || has(self.maxWeight) || has(self.stepWeights)))",message="use steps or the shorthand (stepWeight, maxWeight, stepWeights), not both"
// +kubebuilder:validation:XValidation:rule="!has(self.stepWeights) || !(has(self.stepWeight) || has(self.maxWeight))",message="use stepWeights, or stepWeight with maxWeight, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.maxWeight) || has(self.stepWeight)",message="maxWeight needs stepWeight"
// +kubebuilder:validation:XValidation:rule="!has(self.stepWeight) || self.stepWeight > 0.0",message="stepWeight must be more than 0"
// +kubebuilder:validation:XValidation:rule="!has(self.stepWeight) || !has(self.maxWeight) || self.stepWeight <= self.maxWeight",message="stepWeight is above maxWeight"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",message="weights must not go down: each setWeight is at least the one before"
type Strategy struct {
	// Steps run in order; after the last one the canary is promoted.
	// +kubebuilder:validation:MaxItems=1000
	// +optional
	Steps []Step `json:"steps,omitempty"`

	// Interval is the time between checks in the shorthand form; each
	// shorthand weight lasts until one check at that weight passed.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// StepWeight is the increment of the shorthand form: stepWeight,
	// 2×stepWeight, … up to maxWeight.
	// +optional
	StepWeight *Percent `json:"stepWeight,omitempty"`
	// MaxWeight is the last weight of the shorthand form before promotion.
	// Default 50 when stepWeight is set.
	// +optional
	MaxWeight *Percent `json:"maxWeight,omitempty"`
	// StepWeights lists the shorthand weights explicitly, ascending.
	// (CEL checks the order; pipit's validation also refuses a weight
	// given twice, which CEL cannot check within its cost budget.)
	// +kubebuilder:validation:XValidation:rule="self.isSorted()",message="stepWeights must go up"
	// +kubebuilder:validation:XValidation:rule="self.all(w, w > 0.0)",message="each of stepWeights must be more than 0"
	// +optional
	StepWeights []Percent `json:"stepWeights,omitempty"`

	// Preset names a CodeDeploy deployment configuration, such as
	// CodeDeployDefault.ECSCanary10Percent5Minutes, or gives CodeDeploy's
	// custom canary or linear form; it expands into steps. A CRD schema
	// cannot say "a string or a mapping", so the API server keeps the
	// value as written and pipit's own validation checks it.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Preset *Preset `json:"preset,omitempty"`

	// BlueGreen starts the new version beside the old one with no user
	// traffic, checks it on a preview address, then switches all traffic
	// to it at once.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`

	// Experiment is an A/B test: the new version (treatment) gets a fixed
	// share of the users, by their sticky user key, beside the stable
	// version (control) until a test of the primary goal names a winner;
	// the new version is promoted only if it wins (or, with promoteIf:
	// notWorse, does not lose by more than a margin).
	// +optional
	Experiment *ExperimentStrategy `json:"experiment,omitempty"`
}

// ExperimentStrategy is an A/B test of the new version against the
// stable one on a conversion goal. The rollout's analysis metrics are its
// guardrails: one failing rolls the treatment back at once, as it does a
// canary.
type ExperimentStrategy struct {
	// Split is the treatment's share of the users, held from the start to
	// the end. Default 50.
	// +optional
	Split *Percent `json:"split,omitempty"`
	// Goal names the primary goal, one of spec.analysis.goals, whose
	// conversion rate decides. Default the first goal.
	// +optional
	Goal string `json:"goal,omitempty"`
	// PromoteIf is the rule that promotes the treatment: better (default;
	// its conversion rate is significantly higher) or notWorse (its rate
	// is, with the confidence asked, no more than margin below the
	// control's).
	// +optional
	PromoteIf PromoteRule `json:"promoteIf,omitempty"`
	// Margin is how far, in percentage points of conversion rate, the
	// treatment may fall below the control under promoteIf: notWorse.
	// Only with notWorse; default 0.
	// +optional
	Margin *Percent `json:"margin,omitempty"`
	// MinSample is how many visitors each variant needs before the goal
	// is looked at. Default 100.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinSample *int64 `json:"minSample,omitempty"`
	// MaxDuration bounds the experiment: with no verdict by then, better
	// rolls back (no winner) and notWorse decides by the fixed z-test.
	// Default 24h.
	// +optional
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`
	// Confidence is the confidence level of the tests. Default 0.95.
	// +optional
	Confidence *float64 `json:"confidence,omitempty"`
}

// PromoteRule says when an experiment promotes its treatment.
// +kubebuilder:validation:Enum=better;notWorse
type PromoteRule string

const (
	// PromoteIfBetter promotes a treatment that converts significantly
	// better than the control.
	PromoteIfBetter PromoteRule = "better"
	// PromoteIfNotWorse promotes a treatment that converts no more than a
	// margin worse than the control.
	PromoteIfNotWorse PromoteRule = "notWorse"
)

// BlueGreenStrategy is a blue-green release: the new version runs beside
// the stable one and gets no share of user traffic while it is checked
// (the analysis' metrics, hooks and load test run against the preview);
// then all traffic moves to it in one switch, and the old version stays
// ready for spec.undoWindow, so an undo switches straight back.
type BlueGreenStrategy struct {
	// PreviewListen is the address on which the standalone daemon serves
	// the new version alone, for checks before the switch, such as
	// 127.0.0.1:8081. Standalone only.
	// +optional
	PreviewListen string `json:"previewListen,omitempty"`
	// PreviewService is the Service pipit points at the new version's
	// pods, for checks before the switch (Argo Rollouts' previewService).
	// pipit creates it when it does not exist. Kubernetes only.
	// +optional
	PreviewService string `json:"previewService,omitempty"`
	// Checks is how many passing checks of the preview the analysis needs
	// before the switch. Default 1.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Checks *int32 `json:"checks,omitempty"`
	// AutoPromotionAfter switches to a preview that waits for a person
	// (decision: manual) on its own this long after it began to wait, as
	// Argo's autoPromotionSeconds; in automatic mode the preview is kept
	// this long after its checks passed before the switch.
	// +optional
	AutoPromotionAfter *metav1.Duration `json:"autoPromotionAfter,omitempty"`
}

// Step is one step of the strategy; exactly one field is set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) + (has(self.approval) ? 1 : 0) == 1",message="a step needs exactly one of setWeight, pause, analysis and approval"
type Step struct {
	// SetWeight sends this share of traffic to the canary.
	// +optional
	SetWeight *Percent `json:"setWeight,omitempty"`
	// Pause waits: for a duration, or for a person when no duration is set.
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`
	// Analysis waits until checks at the current weight have passed.
	// +optional
	Analysis *AnalysisStep `json:"analysis,omitempty"`
	// Approval waits for `pipit approve` (go on) or `pipit reject` (roll
	// back), with an optional timeout.
	// +optional
	Approval *ApprovalStep `json:"approval,omitempty"`
}

// ApprovalStep waits for a person's approval.
type ApprovalStep struct {
	// Message is shown to the approver.
	// +optional
	Message string `json:"message,omitempty"`
	// Timeout bounds the wait; without it the rollout waits for ever.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// OnTimeout is what happens when the timeout passes: rollback
	// (default) or wait (keep waiting; the expiry is recorded and notified).
	// +optional
	OnTimeout ApprovalTimeoutPolicy `json:"onTimeout,omitempty"`
}

// ApprovalTimeoutPolicy says what an expired approval does.
// +kubebuilder:validation:Enum=rollback;wait
type ApprovalTimeoutPolicy string

const (
	// ApprovalRollback rolls the canary back when the approval expires.
	ApprovalRollback ApprovalTimeoutPolicy = "rollback"
	// ApprovalWait keeps waiting after the approval expired.
	ApprovalWait ApprovalTimeoutPolicy = "wait"
)

// PauseStep waits at the current weight.
type PauseStep struct {
	// Duration of the pause (soak time). Without it the rollout waits for
	// `pipit promote`.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="pause.duration must be positive; leave it out to wait for pipit promote"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// AnalysisStep holds the rollout until enough checks passed at this step.
type AnalysisStep struct {
	// Checks is how many passing checks this step needs. Default 1.
	// +optional
	Checks int32 `json:"checks,omitempty"`
}

// PostPromotionSpec is the watch after a promotion (CodeDeploy's alarms
// during bake time): for Duration after the promotion completes, each
// check measures the new stable version alone; a metric that fails its
// bound, or is worse than the previous version's baseline recorded before
// the switch, undoes the promotion.
type PostPromotionSpec struct {
	// Duration of the watch, from the completed promotion. It may not
	// exceed undoWindow: the undo needs the previous version warm.
	Duration metav1.Duration `json:"duration"`
	// Metrics watched, written as spec.analysis.metrics (the same built-in
	// metrics and providers). Default: the analysis metrics.
	// +optional
	Metrics []MetricSpec `json:"metrics,omitempty"`
}
