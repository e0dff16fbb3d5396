package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pipit-dev/pipit/internal/runtime/kube"
)

func init() { register(newControllerCmd) }

func newControllerCmd(g *globals) *cobra.Command {
	var o kube.Options
	var kubeconfig, kubeContext string
	var qps float32
	var burst int
	cmd := &cobra.Command{
		Use:   "controller [--kubeconfig FILE] [--leader-elect] [--namespace NS]",
		Short: "Run the Kubernetes controller: reconcile Rollout resources",
		Long: `controller runs pipit in Kubernetes. It reconciles the Rollout resources (pipit.dev/v1alpha1)
of the cluster, or of one namespace: for each, it keeps a stable and a canary copy of the
Deployment named by spec.targetRef, the Services in front of them, and the traffic split in
a Gateway API HTTPRoute, an Istio VirtualService or the replica counts, with the same
engine, analysis, webhooks and notifications as 'pipit up'. The state of each rollout is
its status; a restarted controller resumes every rollout at the same step.

In the cluster it uses its service account; outside, --kubeconfig or $KUBECONFIG. With
--leader-elect several replicas run and only the elected one acts. Install the CRD, RBAC
and Deployment with: kubectl apply -k deploy/kubernetes

With --prometheus-url the built-in metrics (request-success-rate, error-rate, latency-p50/p95/p99,
request-count, request-duration) need no provider: the controller reads them, and runs the
sequential error-rate test, from the series of the rollout's router in that Prometheus
(Istio's standard metrics, or the application's http_requests_total and
http_request_duration_seconds; see docs/kubernetes.md).

It logs JSON lines to stderr at INFO and above: --log-format text and --log-level
debug|info|warn|error change that.`,
		Example: `  pipit controller --kubeconfig ~/.kube/config
  pipit controller --leader-elect --leader-election-namespace pipit-system
  pipit controller --prometheus-url http://prometheus.monitoring:9090`,
		Args: exactArgs(0),
		// Its logs go to a log collector, which reads JSON best.
		Annotations: map[string]string{defaultLogLevel: "info", defaultLogFormat: "json"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
				&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
			if err != nil {
				return BadInputf("reaching the cluster: %v", err)
			}
			// client-go's own default (5 requests/s) would queue a
			// few hundred rollouts' steps behind its rate limiter.
			cfg.QPS, cfg.Burst = qps, burst
			o.Config = cfg
			o.Log = g.log
			o.Clock = g.clock
			if o.LeaderElection && o.LeaderElectionNamespace == "" {
				o.LeaderElectionNamespace = os.Getenv("POD_NAMESPACE")
			}
			return kube.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, else $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&kubeContext, "context", "", "kubeconfig context to use")
	f.StringVarP(&o.Namespace, "namespace", "n", "", "watch only this namespace (default: all)")
	f.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader through a Lease so that several replicas can run")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default $POD_NAMESPACE)")
	f.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	f.DurationVar(&o.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it steps down")
	f.DurationVar(&o.RetryPeriod, "leader-election-retry-period", 2*time.Second, "time between election attempts")
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 turns it off)")
	f.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (empty turns them off)")
	f.StringVar(&o.PrometheusURL, "prometheus-url", "", "Prometheus the built-in metrics (request-success-rate, latency-p99, ... without a provider) are read from, such as http://prometheus.monitoring:9090")
	f.IntVar(&o.Concurrency, "concurrency", 8, "rollouts reconciled at once")
	f.Float32Var(&qps, "kube-api-qps", 50, "requests per second to the API server, sustained")
	f.IntVar(&burst, "kube-api-burst", 100, "requests to the API server in a burst")
	return cmd
}
