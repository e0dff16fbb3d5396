package kubefixture

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodNames lists the names of the live pods (not being deleted) of the
// test's namespace that carry labels, sorted.
func (e *Env) PodNames(ctx context.Context, labels map[string]string) ([]string, error) {
	var pods corev1.PodList
	if err := e.Client.List(ctx, &pods, client.InNamespace(e.Namespace), client.MatchingLabels(labels)); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// ServiceReaches fails unless the ready endpoints of service are exactly
// the live pods that carry labels, and there are want of them: the
// cluster's own account of what the Service's selector picks.
func (e *Env) ServiceReaches(ctx context.Context, service string, labels map[string]string, want int) error {
	pods, err := e.PodNames(ctx, labels)
	if err != nil {
		return err
	}
	var list discoveryv1.EndpointSliceList
	if err := e.Client.List(ctx, &list, client.InNamespace(e.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return err
	}
	var got []string
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef != nil && ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				got = append(got, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(got)
	if len(pods) != want || !slices.Equal(got, pods) {
		return fmt.Errorf("Service %s reaches pods %v; the pods labelled %v are %v, want %d of them", service, got, labels, pods, want)
	}
	return nil
}

// Creations records the pods and ReplicaSets of the test's namespace, so
// that NothingCreatedSince can tell whether an action created one.
type Creations map[types.UID]string

// PodsAndReplicaSets returns the UIDs of every pod and ReplicaSet of the
// test's namespace, dying ones included.
func (e *Env) PodsAndReplicaSets() Creations {
	e.T.Helper()
	out := Creations{}
	var pods corev1.PodList
	if err := e.Client.List(e.Ctx(), &pods, client.InNamespace(e.Namespace)); err != nil {
		e.T.Fatalf("list pods: %v", err)
	}
	for _, p := range pods.Items {
		out[p.UID] = "Pod " + p.Name
	}
	var sets appsv1.ReplicaSetList
	if err := e.Client.List(e.Ctx(), &sets, client.InNamespace(e.Namespace)); err != nil {
		e.T.Fatalf("list ReplicaSets: %v", err)
	}
	for _, rs := range sets.Items {
		out[rs.UID] = "ReplicaSet " + rs.Name
	}
	return out
}

// NothingCreatedSince fails the test for every pod or ReplicaSet that
// exists now and not in before, saying what created it.
func (e *Env) NothingCreatedSince(before Creations, what string) {
	e.T.Helper()
	for uid, name := range e.PodsAndReplicaSets() {
		if _, ok := before[uid]; !ok {
			e.T.Errorf("%s created %s", what, name)
		}
	}
}
