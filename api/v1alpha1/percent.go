package v1alpha1

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Percent is a share of traffic in thousandths of a percent: 5000 is 5%,
// 100 is 0.1%, 100000 is all traffic. An integer keeps weights exact (no
// float drift when comparing or stepping) and maps one-to-one onto the
// proxy's 100,000 hash buckets. In JSON and YAML it is written as a decimal
// number of percent, such as 5 or 2.5.
//
// +kubebuilder:validation:Type=number
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percent int32

// PercentScale is the number of Percent units in one percent.
const PercentScale = 1000

// FullWeight is 100%, all traffic.
const FullWeight Percent = 100 * PercentScale

// PercentOf returns p percent as a Percent, rounded to the nearest unit.
func PercentOf(p float64) Percent { return Percent(math.Round(p * PercentScale)) }

// Float returns the share in percent.
func (p Percent) Float() float64 { return float64(p) / PercentScale }

// String renders the share as percent with no trailing zeros: "5%", "2.5%".
func (p Percent) String() string { return p.number() + "%" }

func (p Percent) number() string {
	return strconv.FormatFloat(p.Float(), 'f', -1, 64)
}

// MarshalJSON writes the share as a decimal number of percent.
func (p Percent) MarshalJSON() ([]byte, error) { return []byte(p.number()), nil }

// UnmarshalJSON reads a decimal number of percent with at most three
// decimal places. Range checks (0 to 100) belong to validation, which can
// name the field; this only refuses what is not a number at all.
func (p *Percent) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if len(s) > 0 && s[0] == '"' {
		var q string
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		s = strings.TrimSuffix(strings.TrimSpace(q), "%")
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePercent reads "5", "2.5", "0.125" or "5%" as a Percent.
func ParsePercent(s string) (Percent, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number of percent", s)
	}
	if math.Abs(f) > 1e6 {
		return 0, fmt.Errorf("%s%% is far outside 0 to 100", s)
	}
	scaled := f * PercentScale
	if math.Abs(scaled-math.Round(scaled)) > 1e-6 {
		return 0, fmt.Errorf("%s%% is finer than the 0.001%% resolution", s)
	}
	return Percent(math.Round(scaled)), nil
}
