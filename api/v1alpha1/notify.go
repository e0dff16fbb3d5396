package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotifierType names a notification provider.
// +kubebuilder:validation:Enum=slack;teams;discord;webhook
type NotifierType string

const (
	// NotifierSlack posts to a Slack incoming webhook.
	NotifierSlack NotifierType = "slack"
	// NotifierTeams posts an Adaptive Card to a Microsoft Teams
	// (Workflows) webhook.
	NotifierTeams NotifierType = "teams"
	// NotifierDiscord posts an embed to a Discord channel webhook.
	NotifierDiscord NotifierType = "discord"
	// NotifierWebhook posts the whole event as JSON to any HTTP endpoint.
	NotifierWebhook NotifierType = "webhook"
)

// NotifySeverity is how much an event matters to the people notified.
// +kubebuilder:validation:Enum=debug;info;warn;error
type NotifySeverity string

const (
	// NotifyDebug also sends each passing or inconclusive check, which
	// is usually too chatty for a channel.
	NotifyDebug NotifySeverity = "debug"
	// NotifyInfo sends every transition worth telling a team: started,
	// weight changed, waiting for a decision, promoted...
	NotifyInfo NotifySeverity = "info"
	// NotifyWarn sends what went wrong without ending the rollout: a
	// failed check, an anomaly waiting for review.
	NotifyWarn NotifySeverity = "warn"
	// NotifyError sends only what took traffic off the canary: rolling
	// back, rolled back, aborted, failed, and hook failures.
	NotifyError NotifySeverity = "error"
)

// NotifierSpec is one destination of the rollout's notifications. Exactly
// one of URL, URLEnv and URLFile gives the endpoint: webhook URLs carry
// their credentials, so keeping them out of the rollout file is usually
// better.
//
// +kubebuilder:validation:XValidation:rule="(has(self.url) ? 1 : 0) + (has(self.urlEnv) ? 1 : 0) + (has(self.urlFile) ? 1 : 0) == 1",message="set exactly one of url, urlEnv and urlFile"
type NotifierSpec struct {
	// Name identifies the notifier in logs and counters. Default: the
	// type.
	// +optional
	Name string `json:"name,omitempty"`
	// Type of the provider: slack, teams, discord or webhook.
	Type NotifierType `json:"type"`
	// URL of the webhook, written in the file.
	// +optional
	URL string `json:"url,omitempty"`
	// URLEnv names an environment variable of the daemon that holds the
	// URL.
	// +optional
	URLEnv string `json:"urlEnv,omitempty"`
	// URLFile is a file whose content (surrounding space trimmed) is the
	// URL, such as a mounted secret.
	// +optional
	URLFile string `json:"urlFile,omitempty"`
	// Severity is the least severity sent: debug, info, warn or error.
	// Default info.
	// +optional
	Severity NotifySeverity `json:"severity,omitempty"`
	// Template is a Go text/template of the message text. It sees
	// .Rollout, .Event (Time, Type, Reason, Message, Phase, Step, Weight,
	// Actor), .Severity, .Fields (canary, stable, metric, evidence…) and
	// .Default, the text pipit would send without a template. Default: a
	// line such as "checkout: Rolled back canary v2 — request-success-rate
	// 91 < min 99".
	// +optional
	Template string `json:"template,omitempty"`
	// Headers are added to every request, for endpoints behind an
	// authenticating proxy.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds each request. Default 5s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}
