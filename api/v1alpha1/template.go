package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the metric templates. They are named apart from Flagger's
// MetricTemplate and Argo Rollouts' AnalysisTemplate and
// ClusterAnalysisTemplate, so that `kubectl get` is never ambiguous
// beside either project.
const (
	// KindMetricTemplate is a template in the namespace of the rollouts
	// that use it.
	KindMetricTemplate = "RolloutMetricTemplate"
	// KindClusterMetricTemplate is a template every namespace can use.
	KindClusterMetricTemplate = "ClusterRolloutMetricTemplate"
)

// RolloutMetricTemplate is a metric's provider and query written once and
// used by the rollouts of its namespace through a metric's templateRef,
// instead of being copied into each of them (Flagger's MetricTemplate,
// Argo Rollouts' AnalysisTemplate).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=pipit,shortName=rmt
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutMetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`
}

// RolloutMetricTemplateList is a list of RolloutMetricTemplates.
//
// +kubebuilder:object:root=true
type RolloutMetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the templates.
	Items []RolloutMetricTemplate `json:"items"`
}

// ClusterRolloutMetricTemplate is a RolloutMetricTemplate that the
// rollouts of every namespace can use (Argo Rollouts'
// ClusterAnalysisTemplate).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=pipit,shortName=crmt
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterRolloutMetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`
}

// ClusterRolloutMetricTemplateList is a list of
// ClusterRolloutMetricTemplates.
//
// +kubebuilder:object:root=true
type ClusterRolloutMetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the templates.
	Items []ClusterRolloutMetricTemplate `json:"items"`
}

// MetricTemplateSpec is what a template gives the metrics that reference
// it: the provider, whose query, URL and body may use {{ .Args.NAME }}
// beside the usual fields, and defaults of the judgement. A field the
// rollout's metric sets itself wins over the template's.
type MetricTemplateSpec struct {
	// Provider measures the metric.
	Provider MetricProvider `json:"provider"`
	// Args are default values of the arguments the provider's templates
	// use as {{ .Args.NAME }}; a metric's args override them.
	// +optional
	Args map[string]string `json:"args,omitempty"`
	// ThresholdRange is the default of the metric's thresholdRange.
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty"`
	// SuccessCondition is the default of the metric's successCondition.
	// +optional
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition is the default of the metric's failureCondition.
	// +optional
	FailureCondition string `json:"failureCondition,omitempty"`
	// Unit is the default of the metric's unit.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Unit string `json:"unit,omitempty"`
}

// MetricTemplateRef names the template a metric is measured by.
type MetricTemplateRef struct {
	// Name of the template.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Kind of the template: RolloutMetricTemplate (default; in the
	// rollout's namespace) or ClusterRolloutMetricTemplate.
	// +kubebuilder:validation:Enum=RolloutMetricTemplate;ClusterRolloutMetricTemplate
	// +optional
	Kind string `json:"kind,omitempty"`
}
