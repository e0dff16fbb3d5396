package cli

import (
	"bytes"
	"fmt"
	"text/tabwriter"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// targetsTable lists the Deployments of a coordinated rollout
// (status.targets): what each one's serving and canary copies run, and
// how many of their pods are ready; empty for other rollouts.
func targetsTable(targets []v1alpha1.TargetStatus, indent string) string {
	if len(targets) == 0 {
		return ""
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%sDEPLOYMENT\tSTABLE\tREADY\tCANARY\tREADY\n", indent)
	for _, t := range targets {
		canary, ready := "-", "-"
		if t.CanaryRevision != "" {
			canary, ready = revision(t.CanaryVersion, t.CanaryRevision), fmt.Sprint(t.CanaryReady)
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%d\t%s\t%s\n", indent, t.Name, revision(t.StableVersion, t.StableRevision), t.StableReady, canary, ready)
	}
	tw.Flush()
	return b.String()
}

// revision names what a copy runs: its images and pod-template hash.
func revision(images, hash string) string {
	switch {
	case hash == "":
		return "-"
	case images == "":
		return hash
	}
	return images + " (" + hash + ")"
}
