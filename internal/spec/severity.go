package spec

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Severity orders events by how much they matter to the people notified; a
// notifier sends the events at or above the least severity its spec names.
// The spec defines it, as the value of a notifier's severity and of a
// notification template's .Severity; the notify family says which events
// have which severity.
type Severity int8

// Severities, least first.
const (
	// SeverityDebug: routine check results, sent only to notifiers that ask
	// for debug.
	SeverityDebug Severity = iota
	// SeverityInfo: normal progress worth telling a team.
	SeverityInfo
	// SeverityWarn: something went wrong but the rollout goes on or waits.
	SeverityWarn
	// SeverityError: traffic is being or was taken off the canary.
	SeverityError
)

// String returns the name used in specs and payloads: debug, info, warn,
// error.
func (s Severity) String() string {
	switch s {
	case SeverityDebug:
		return "debug"
	case SeverityInfo:
		return "info"
	case SeverityWarn:
		return "warn"
	case SeverityError:
		return "error"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// MarshalText writes the severity by name, so JSON payloads read "warn".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity by name, so that a webhook payload
// decodes back into notify.WebhookPayload.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(v1alpha1.NotifySeverity(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads a spec's severity; empty means info.
func ParseSeverity(s v1alpha1.NotifySeverity) (Severity, error) {
	switch s {
	case v1alpha1.NotifyDebug:
		return SeverityDebug, nil
	case "", v1alpha1.NotifyInfo:
		return SeverityInfo, nil
	case v1alpha1.NotifyWarn:
		return SeverityWarn, nil
	case v1alpha1.NotifyError:
		return SeverityError, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want debug, info, warn or error)", s)
}
