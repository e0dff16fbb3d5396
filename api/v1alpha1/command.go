package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KindRolloutCommand is the kind of an operator's command to a Rollout.
const KindRolloutCommand = "RolloutCommand"

// RolloutCommand is one operator command to a Rollout of its namespace:
// promote, pause, abort and the rest. People create it (`pipit --kube`,
// `pipit dashboard`); the pipit controller applies it through the same
// engine as the standalone daemon, answers in its status and deletes it
// some time after. The phase and the weight of a Rollout stay the
// controller's to write: whoever may create RolloutCommands can ask, not
// decide. Its spec cannot change once created, and an admission policy
// shipped with pipit refuses one whose spec.requestedBy is not the user
// who creates it, so the history names who really asked.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=pipit,shortName=prc
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.spec.rollout`,description="The Rollout commanded"
// +kubebuilder:printcolumn:name="Verb",type=string,JSONPath=`.spec.verb`,description="What was asked"
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.requestedBy`,description="Who asked"
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`,description="Applied or Refused, once consumed"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutCommand struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RolloutCommandSpec `json:"spec"`
	// +optional
	Status RolloutCommandStatus `json:"status,omitempty"`
}

// RolloutCommandList is a list of RolloutCommands, as the API server
// returns it.
//
// +kubebuilder:object:root=true
type RolloutCommandList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the RolloutCommands.
	Items []RolloutCommand `json:"items"`
}

// CommandVerb names what an operator asks of a rollout; the values are
// the CLI's verbs.
//
// +kubebuilder:validation:Enum=promote;promote-full;pause;resume;set-weight;approve;reject;abort;retry;undo
type CommandVerb string

// RolloutCommandSpec is the request. It is immutable: a validation rule
// of the schema refuses a change, and so does the admission policy.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new RolloutCommand"
// +kubebuilder:validation:XValidation:rule="self.verb == 'set-weight' ? has(self.weight) : !has(self.weight)",message="weight is required by set-weight and taken by no other verb"
type RolloutCommandSpec struct {
	// Rollout names the Rollout of the same namespace commanded.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Rollout string `json:"rollout"`
	// Verb is what is asked.
	Verb CommandVerb `json:"verb"`
	// Weight is set-weight's argument: the canary's share of traffic.
	// +optional
	Weight *Percent `json:"weight,omitempty"`
	// Reason is the operator's own words, kept in the rollout's history.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
	// RequestedBy is the Kubernetes user who asks, as the API server
	// authenticated them; the history names them. pipit's admission policy
	// refuses any other name.
	// +kubebuilder:validation:MinLength=1
	RequestedBy string `json:"requestedBy"`
}

// CommandResultKind says what the controller made of a command.
//
// +kubebuilder:validation:Enum=Applied;Refused
type CommandResultKind string

const (
	// CommandApplied: the engine applied the command.
	CommandApplied CommandResultKind = "Applied"
	// CommandRefused: the engine refused it; the message says why.
	CommandRefused CommandResultKind = "Refused"
)

// RolloutCommandStatus is the controller's answer.
type RolloutCommandStatus struct {
	// Consumed is set once the controller took the command; it is never
	// applied again.
	// +optional
	Consumed bool `json:"consumed,omitempty"`
	// Result is what the controller made of it.
	// +optional
	Result CommandResultKind `json:"result,omitempty"`
	// Message says why a command was refused.
	// +optional
	Message string `json:"message,omitempty"`
	// ConsumedAt is when the controller took it; consumed commands are
	// deleted some time after.
	// +optional
	ConsumedAt *metav1.Time `json:"consumedAt,omitempty"`
}
