package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// FlagSpec is a feature flag rolled out like a version: its variants
// play the stable's and the canary's parts. Before the rollout every
// user gets DefaultVariant; the rollout's weight is then the share of
// users, by their OpenFeature targetingKey hashed into the proxy's
// buckets, who get RolloutVariant. A user keeps their variant while the
// weight grows, a promotion gives RolloutVariant to everyone and a
// rollback takes it from everyone at once.
type FlagSpec struct {
	// Key is the flag's key, as applications evaluate it.
	Key string `json:"key"`
	// Variants maps each variant's name to its value: a boolean, a
	// string, a number or an object, as OpenFeature's flag types are.
	Variants map[string]apiextensionsv1.JSON `json:"variants"`
	// DefaultVariant is the variant every user gets before the rollout.
	DefaultVariant string `json:"defaultVariant"`
	// RolloutVariant is the variant rolled out; pipit starts rolling it
	// out when it loads the file. Optional: `pipit deploy NAME
	// --version VARIANT` rolls out a variant later.
	// +optional
	RolloutVariant string `json:"rolloutVariant,omitempty"`
	// Salt seeds the hashing of targeting keys. Default: the flag's key,
	// so two flags split the same users differently.
	// +optional
	Salt string `json:"salt,omitempty"`
	// Rules send the users whose evaluation context matches them to the
	// rolled out variant or keep them on the current one, whatever the
	// weight (internal users, beta testers, segments). The first rule
	// that matches decides.
	// +optional
	Rules []FlagRule `json:"rules,omitempty"`
}

// FlagRule pins the evaluation contexts that match all its conditions
// to a variant, as a traffic rule pins requests to a version.
type FlagRule struct {
	// Name describes the rule in events and answers.
	// +optional
	Name string `json:"name,omitempty"`
	// To is canary (the variant rolled out) or stable (the current one).
	To Destination `json:"to"`
	// Attributes match the evaluation context's attributes by name, with
	// the traffic rules' operators; targetingKey is one of them. A
	// number or boolean attribute is matched as its JSON text.
	Attributes map[string]StringMatch `json:"attributes"`
}
