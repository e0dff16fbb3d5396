// +kubebuilder:object:generate=true
// +groupName=pipit.dev

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the group and version of the Rollout custom
// resource, as clients and schemes name it.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// SchemeBuilder registers this package's types with a scheme. It depends
// only on apimachinery, so the API package pulls in no controller library.
var SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

// AddToScheme adds the Rollout, RolloutCommand and metric template kinds,
// and their lists, to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

// Resource returns the group-qualified resource of the given name, such as
// "rollouts", for API errors.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &Rollout{}, &RolloutList{}, &RolloutCommand{}, &RolloutCommandList{},
		&RolloutMetricTemplate{}, &RolloutMetricTemplateList{},
		&ClusterRolloutMetricTemplate{}, &ClusterRolloutMetricTemplateList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
