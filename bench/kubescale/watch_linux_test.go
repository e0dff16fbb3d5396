package kubescale

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/runtime/kube"
	"github.com/pipit-dev/pipit/internal/target"
)

// watcher follows the namespace's Rollouts and HTTPRoutes as they change,
// noting when each route first showed each canary weight and when each
// rollout succeeded with the new image.
type watcher struct {
	cache    cache.Cache
	newImage string
	want     int

	mu          sync.Mutex
	routeSeen   map[string]map[v1alpha1.Percent]time.Time // by rollout
	succeededAt map[string]time.Time
	allDone     chan struct{} // closed when want rollouts succeeded
}

// watch starts a cache of the namespace's Rollouts and HTTPRoutes.
func watch(ctx context.Context, cfg *rest.Config, ns, newImage string, want int) (*watcher, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: kube.Scheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		return nil, err
	}
	w := &watcher{
		cache: c, newImage: newImage, want: want,
		routeSeen: map[string]map[v1alpha1.Percent]time.Time{}, succeededAt: map[string]time.Time{},
		allDone: make(chan struct{}),
	}
	go func() { _ = c.Start(ctx) }()
	rollouts, err := c.GetInformer(ctx, &v1alpha1.Rollout{})
	if err != nil {
		return nil, err
	}
	if _, err := rollouts.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.rollout(o) },
		UpdateFunc: func(_, o any) { w.rollout(o) },
	}); err != nil {
		return nil, err
	}
	routes, err := c.GetInformer(ctx, &gatewayv1.HTTPRoute{})
	if err != nil {
		return nil, err
	}
	if _, err := routes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.route(o) },
		UpdateFunc: func(_, o any) { w.route(o) },
	}); err != nil {
		return nil, err
	}
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the benchmark's watch did not sync")
	}
	return w, nil
}

// rollout notes the first time a rollout is Succeeded with the new image.
func (w *watcher) rollout(o any) {
	r, ok := o.(*v1alpha1.Rollout)
	if !ok || r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Stable == nil ||
		!strings.Contains(r.Status.Stable.Version, w.newImage) {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, seen := w.succeededAt[r.Name]; seen {
		return
	}
	w.succeededAt[r.Name] = now
	if len(w.succeededAt) == w.want {
		close(w.allDone)
	}
}

// route notes the first time a route shows a canary weight.
func (w *watcher) route(o any) {
	hr, ok := o.(*gatewayv1.HTTPRoute)
	if !ok {
		return
	}
	name := hr.Labels[target.LabelRollout]
	var stable, canary int64
	for _, rule := range hr.Spec.Rules {
		for _, b := range rule.BackendRefs {
			switch string(b.Name) {
			case name + "-stable":
				stable += int64(ptr.Deref(b.Weight, 1))
			case name + "-canary":
				canary += int64(ptr.Deref(b.Weight, 1))
			}
		}
	}
	if name == "" || stable+canary == 0 {
		return
	}
	weight := v1alpha1.PercentOf(float64(canary) * 100 / float64(stable+canary))
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.routeSeen[name]
	if seen == nil {
		seen = map[v1alpha1.Percent]time.Time{}
		w.routeSeen[name] = seen
	}
	if _, ok := seen[weight]; !ok {
		seen[weight] = now
	}
}

// succeeded is how many rollouts succeeded with the new image, and when
// the last of them did.
func (w *watcher) succeeded() (n int, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.succeededAt {
		if t.After(last) {
			last = t
		}
	}
	return len(w.succeededAt), last
}

// routeTimes copies what was seen of one rollout's route.
func (w *watcher) routeTimes(name string) map[v1alpha1.Percent]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[v1alpha1.Percent]time.Time{}
	for k, v := range w.routeSeen[name] {
		out[k] = v
	}
	return out
}

// rollouts lists the namespace's Rollouts from the cache.
func (w *watcher) rollouts(ctx context.Context) ([]v1alpha1.Rollout, error) {
	var list v1alpha1.RolloutList
	if err := w.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}
