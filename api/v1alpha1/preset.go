package v1alpha1

import (
	"bytes"
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Preset is a canary plan chosen by name, as AWS CodeDeploy names its
// deployment configurations, or one of CodeDeploy's two custom forms. It
// is written as a name (preset: CodeDeployDefault.ECSCanary10Percent5Minutes)
// or as a mapping with exactly one of canary and linear
// (preset: {canary: {percent: 10, interval: 5m}}); the mapping may also
// carry the name as name. A preset expands into ordinary steps.
type Preset struct {
	// Name is a predefined configuration, such as
	// CodeDeployDefault.LambdaLinear10PercentEvery1Minute; the
	// CodeDeployDefault. prefix is optional.
	// +optional
	Name string `json:"name,omitempty"`
	// Canary shifts Percent of the traffic, soaks Interval with the
	// analysis checked, then promotes: CodeDeploy's TimeBasedCanary.
	// +optional
	Canary *PresetShift `json:"canary,omitempty"`
	// Linear shifts Percent more of the traffic every Interval, the
	// analysis checked at each weight, until all of it: CodeDeploy's
	// TimeBasedLinear.
	// +optional
	Linear *PresetShift `json:"linear,omitempty"`
}

// PresetShift is the share and the soak of a custom canary or linear
// preset.
type PresetShift struct {
	// Percent of the traffic shifted at once: the canary's share, or each
	// linear increment.
	Percent Percent `json:"percent"`
	// Interval is how long each weight soaks before the next shift.
	Interval metav1.Duration `json:"interval"`
}

// presetFields has Preset's fields without its JSON methods, so that
// they can encode and decode the mapping form without recursing.
type presetFields Preset

// MarshalJSON writes a preset that only names a configuration as the bare
// name, the way it is usually written, and any other as a mapping.
func (p Preset) MarshalJSON() ([]byte, error) {
	if p.Canary == nil && p.Linear == nil {
		return json.Marshal(p.Name)
	}
	return json.Marshal(presetFields(p))
}

// UnmarshalJSON reads a bare name or the mapping form.
func (p *Preset) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '"' {
		*p = Preset{}
		return json.Unmarshal(t, &p.Name)
	}
	var f presetFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*p = Preset(f)
	return nil
}
