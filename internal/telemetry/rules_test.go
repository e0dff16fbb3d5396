package telemetry

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/promserver"
	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// promtool comes with Debian's prometheus package.
const promtool = "/usr/bin/promtool"

// rulesFile holds the shipped alerting rules, relative to the repository.
const rulesFile = "deploy/prometheus/pipit-alerts.yaml"

// promtoolTimeout bounds one run of promtool.
const promtoolTimeout = time.Minute

// runPromtool runs promtool with args and fails the test with its output
// when it fails.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	tools.EnsureDebian(t, "prometheus", promserver.Binary)
	ctx, cancel := context.WithTimeout(context.Background(), promtoolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func shippedRules(t *testing.T) string {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rulesFile)
}

func TestShippedRulesPassPromtoolCheck(t *testing.T) {
	runPromtool(t, "check", "rules", shippedRules(t))
}

// ruleTests are promtool unit tests of every shipped alert: each fires on
// the series pipit exports and stays quiet on the case next to it. %s is
// the rules file.
const ruleTests = `rule_files: [%s]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - {series: 'pipit_rollout_phase{namespace="shop",rollout="web",phase="RolledBack"}', values: '0 0 1 1'}
  - {series: 'pipit_rollout_phase{namespace="shop",rollout="api",phase="RolledBack"}', values: '0 0 0 0'}
  - {series: 'pipit_rollout_phase{rollout="solo",phase="Failed"}', values: '0 1 1 1'}
  - {series: 'pipit_rollout_phase{rollout="solo",phase="RolledBack"}', values: '1 0 0 0'}
  alert_rule_test:
  - eval_time: 0m
    alertname: PipitRolloutRolledBack
    exp_alerts:
    - exp_labels: {severity: warning, rollout: solo}
      exp_annotations:
        summary: Rollout solo rolled back its canary
        description: >-
          pipit took all traffic off the canary of solo and returned it to the stable version.
          ` + "`pipit history solo`" + ` says which check or person decided it.
  - {alertname: PipitRolloutRolledBack, eval_time: 1m}
  - eval_time: 3m
    alertname: PipitRolloutRolledBack
    exp_alerts:
    - exp_labels: {severity: warning, namespace: shop, rollout: web}
      exp_annotations:
        summary: Rollout web rolled back its canary
        description: >-
          pipit took all traffic off the canary of web in namespace shop and returned it to the stable version.
          ` + "`pipit history web`" + ` says which check or person decided it.
  - eval_time: 3m
    alertname: PipitRolloutFailed
    exp_alerts:
    - exp_labels: {severity: warning, rollout: solo}
      exp_annotations:
        summary: Rollout solo failed
        description: "The rollout of solo ended Failed: its progress deadline passed or a pre-rollout hook said no."
- interval: 1m
  input_series:
  # stuck: in flight at step 1, 20%%, for 90 minutes
  - {series: 'pipit_rollout_phase{rollout="stuck",phase="Progressing"}', values: '1x90'}
  - {series: 'pipit_rollout_step{rollout="stuck"}', values: '1x90'}
  - {series: 'pipit_rollout_canary_weight_percent{rollout="stuck"}', values: '20x90'}
  # moving: in flight, its weight rises by 10 every 20 minutes
  - {series: 'pipit_rollout_phase{rollout="moving",phase="Progressing"}', values: '1x90'}
  - {series: 'pipit_rollout_step{rollout="moving"}', values: '0x90'}
  - {series: 'pipit_rollout_canary_weight_percent{rollout="moving"}', values: '10x19 20x19 30x19 40x19 50x10'}
  # paused by a person: not stuck
  - {series: 'pipit_rollout_phase{rollout="held",phase="Progressing"}', values: '0x90'}
  - {series: 'pipit_rollout_step{rollout="held"}', values: '1x90'}
  - {series: 'pipit_rollout_canary_weight_percent{rollout="held"}', values: '20x90'}
  alert_rule_test:
  - {alertname: PipitRolloutStuck, eval_time: 20m}
  - eval_time: 70m
    alertname: PipitRolloutStuck
    exp_alerts:
    - exp_labels: {severity: warning, rollout: stuck}
      exp_annotations:
        summary: Rollout stuck has not moved for 30 minutes or more
        description: >-
          stuck is in flight but its step and weight have not changed for 30 minutes or more:
          a check may be inconclusive (no data), the canary may not become ready, or a hook may hang.
- interval: 1m
  input_series:
  - {series: 'pipit_rollout_phase{rollout="web",phase="AwaitingDecision"}', values: '1x120'}
  - {series: 'pipit_notifications_failed_total{rollout="web",notifier="chat"}', values: '0x10 1x110'}
  - {series: 'pipit_notifications_failed_total{rollout="web",notifier="mail"}', values: '0x120'}
  alert_rule_test:
  - {alertname: PipitRolloutAwaitingDecisionTooLong, eval_time: 50m}
  - eval_time: 70m
    alertname: PipitRolloutAwaitingDecisionTooLong
    exp_alerts:
    - exp_labels: {severity: info, rollout: web}
      exp_annotations:
        summary: Rollout web has waited for a decision for over an hour
        description: >-
          web waits for a person: ` + "`pipit approve` or `pipit reject`" + ` it, or look at ` + "`pipit get web`" + `.
  - eval_time: 15m
    alertname: PipitNotifierFailing
    exp_alerts:
    - exp_labels: {severity: warning, rollout: web, notifier: chat}
      exp_annotations:
        summary: Notifier chat of rollout web is failing
        description: >-
          Messages to chat were given up on after all their attempts in the last 15 minutes (about 1);
          the log of the daemon or the controller says why.
  - {alertname: PipitNotifierFailing, eval_time: 60m}
`

func TestShippedAlertsFireOnTheirCases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts_test.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(ruleTests, strconv.Quote(shippedRules(t)))), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "test", "rules", path)
}
