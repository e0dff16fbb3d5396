package v1alpha1

// TargetRef names the workload a Rollout rolls out in the Kubernetes
// runtime. The user keeps editing that workload (kubectl set image,
// GitOps); pipit notices each new pod template and rolls it out through
// copies of its own.
type TargetRef struct {
	// APIVersion of the workload. Default apps/v1.
	// +kubebuilder:validation:Enum=apps/v1
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the workload. Default Deployment, the only kind today.
	// +kubebuilder:validation:Enum=Deployment
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the workload, in the Rollout's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// DeploymentRef is one Deployment of a coordinated rollout
// (spec.targetRefs): the workload, and how its versions are run and
// routed, as spec.targetRef and spec.kubernetes say it for one.
type DeploymentRef struct {
	TargetRef      `json:",inline"`
	KubernetesSpec `json:",inline"`
}

// KubernetesSpec says how the Kubernetes runtime runs and routes the two
// versions. Every field has a default, so a Rollout with only a targetRef
// works: copies named <target>-stable and <target>-canary, Services
// <target>, <target>-stable and <target>-canary on port 80, and canary
// replicas proportional to the weight when no router is set.
type KubernetesSpec struct {
	// StableWorkload and CanaryWorkload name pipit's copies of the target.
	// Defaults <target>-stable and <target>-canary.
	// +optional
	StableWorkload string `json:"stableWorkload,omitempty"`
	// +optional
	CanaryWorkload string `json:"canaryWorkload,omitempty"`
	// Service describes the Services pipit manages.
	// +optional
	Service *KubernetesService `json:"service,omitempty"`
	// Router says how traffic is split between the versions. Without one,
	// the canary's share of replicas follows the weight.
	// +optional
	Router *KubernetesRouter `json:"router,omitempty"`
	// Traffic holds the rules that send chosen requests to one version
	// (header and cookie overrides, segments), sticky sessions and
	// mirroring, as far as the router can express them; the user-key
	// buckets are the built-in proxy's only.
	// +optional
	Traffic *TrafficSpec `json:"traffic,omitempty"`
}

// KubernetesService names the apex Service and the per-version Services
// and the port they expose.
type KubernetesService struct {
	// Name of the apex Service, selecting both versions. Default the
	// target's name.
	// +optional
	Name string `json:"name,omitempty"`
	// StableName and CanaryName name the Services selecting one version
	// each. Defaults <name>-stable and <name>-canary.
	// +optional
	StableName string `json:"stableName,omitempty"`
	// +optional
	CanaryName string `json:"canaryName,omitempty"`
	// Port the Services expose. Default 80.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// TargetPort is the container port traffic goes to. Default the
	// first container port of the workload, else Port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	TargetPort int32 `json:"targetPort,omitempty"`
}

// KubernetesRouter picks the traffic router; at most one is set.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.gatewayAPI) && has(self.istio))",message="set gatewayAPI or istio, not both"
type KubernetesRouter struct {
	// GatewayAPI splits traffic with the weights of an HTTPRoute's
	// backendRefs.
	// +optional
	GatewayAPI *GatewayAPIRouter `json:"gatewayAPI,omitempty"`
	// Istio splits traffic with the weights of a VirtualService's routes.
	// +optional
	Istio *IstioRouter `json:"istio,omitempty"`
}

// GatewayAPIRouter names the HTTPRoute whose weights pipit sets. When the
// route exists, pipit changes only the backendRefs that point at the
// rollout's Services and the rules it adds itself; when it does not,
// pipit creates it with ParentRefs and owns it.
type GatewayAPIRouter struct {
	// HTTPRoute is the route's name. Default the apex Service's name.
	// +optional
	HTTPRoute string `json:"httpRoute,omitempty"`
	// ParentRefs attach a route pipit creates to Gateways.
	// +optional
	ParentRefs []GatewayParentRef `json:"parentRefs,omitempty"`
	// Implementation names the Gateway API implementation serving the
	// route, for the built-in metrics to be read from its own series
	// rather than the application's. envoyGateway: pipit gives each
	// backendRef it writes a RequestHeaderModifier filter setting
	// X-Pipit-Role (stable or canary), which makes Envoy Gateway build
	// an Envoy cluster per backendRef, whose envoy_cluster_* series then
	// tell the versions apart. istio: Istio's Gateway API implementation,
	// in front of pods with sidecars, read through Istio's standard
	// metrics as for the istio router. Empty reads the application's
	// metrics.
	// +kubebuilder:validation:Enum=envoyGateway;istio
	// +optional
	Implementation GatewayImplementation `json:"implementation,omitempty"`
}

// GatewayImplementation is a Gateway API implementation whose series
// pipit knows.
type GatewayImplementation string

// The Gateway API implementations whose series pipit reads.
const (
	// EnvoyGateway is Envoy Gateway (gateway.envoyproxy.io).
	EnvoyGateway GatewayImplementation = "envoyGateway"
	// IstioGateway is Istio's Gateway API implementation.
	IstioGateway GatewayImplementation = "istio"
)

// GatewayParentRef names a Gateway (or a listener of one).
type GatewayParentRef struct {
	// Name of the Gateway.
	Name string `json:"name"`
	// Namespace of the Gateway. Default the Rollout's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// SectionName names one listener.
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}

// IstioRouter names the VirtualService whose weights pipit sets, and
// optionally a DestinationRule for subsets.
type IstioRouter struct {
	// VirtualService is the name of the VirtualService. Default the apex
	// Service's name. When it does not exist pipit creates and owns it;
	// when it exists, pipit changes only the destinations pointing at the
	// rollout's Services and the routes it adds itself.
	// +optional
	VirtualService string `json:"virtualService,omitempty"`
	// Hosts and Gateways of a VirtualService pipit creates. Default hosts:
	// the apex Service.
	// +optional
	Hosts []string `json:"hosts,omitempty"`
	// +optional
	Gateways []string `json:"gateways,omitempty"`
	// DestinationRule, when set, routes by subsets (stable, canary) of the
	// apex Service in a DestinationRule of that name that pipit manages,
	// instead of by the per-version Services. Sticky sessions use its
	// cookie-based consistent hashing.
	// +optional
	DestinationRule string `json:"destinationRule,omitempty"`
}
