package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/kubewrite"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The Istio kinds the router writes, as unstructured objects: pipit does
// not depend on Istio's Go modules.
var (
	virtualServiceGVK  = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	destinationRuleGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// primaryRoute names the one route of a VirtualService pipit creates.
const primaryRoute = "primary"

// Istio splits traffic with the weights of an Istio VirtualService's
// route destinations, whole percents adding up to 100.
//
// When the VirtualService exists it is the user's: pipit changes only the
// HTTP routes whose destinations are the rollout's Services (the apex,
// stable or canary one, by short name or a longer name in the namespace),
// giving each the stable and canary destinations with the weights, and
// adds routes of its own, named pipit-..., for the traffic rules. When it
// does not exist, pipit creates it, owned by the Rollout, with one route.
//
// Destinations are the per-version Services, or, with a DestinationRule
// named in the plan, the stable and canary subsets of the apex Service in
// that DestinationRule, which pipit creates and owns. Sticky sessions set
// its cookie-based consistent hashing, which keeps a user on one pod
// within the version the weights chose.
//
// Each traffic rule becomes one pipit route per route of the user's that
// it narrows: a copy of that route (its rewrites, timeouts, retries…)
// whose matches also hold the rule's conditions, sending everything to
// one version. Istio can negate header (and so cookie) conditions, not
// others. Mirroring sets the routes' mirror to the canary, unless the user
// mirrors them elsewhere already.
//
// When the Rollout is deleted, Remove gives the user's VirtualService
// back as it was before pipit split it: the stable and canary Services
// and the DestinationRule go with the Rollout, the apex Service stays.
type Istio struct {
	c      client.Client
	owner  *v1alpha1.Rollout
	plan   spec.KubePlan
	log    *slog.Logger
	weight atomic.Int32
}

// NewIstio returns the router of the VirtualService plan.VirtualService
// in plan.Namespace, on behalf of the Rollout owner. It logs to log only
// (nil logs nothing), adding the router and the VirtualService.
func NewIstio(c client.Client, owner *v1alpha1.Rollout, plan spec.KubePlan, log *slog.Logger) *Istio {
	return &Istio{
		c: c, owner: owner, plan: plan,
		log: orDiscard(log).With("router", "istio", "virtualService", plan.VirtualService),
	}
}

// SetWeight sends w of the traffic to the canary, rounded to whole percent,
// creating the VirtualService (and the DestinationRule when routing by
// subsets) when it does not exist. While canaryLive, pipit's routes for
// the traffic rules are in the VirtualService; otherwise they are removed
// and stable gets everything. Weight reports w as asked, not as rounded.
func (i *Istio) SetWeight(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	if !canaryLive {
		w = 0
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if i.bySubsets() {
		if err := i.ensureDestinationRule(ctx); err != nil {
			return err
		}
	}
	if err := i.writeVirtualService(ctx, w, canaryLive); err != nil {
		return err
	}
	i.weight.Store(int32(w))
	return nil
}

// Weight is the weight last applied successfully.
func (i *Istio) Weight() v1alpha1.Percent { return v1alpha1.Percent(i.weight.Load()) }

// Remove undoes pipit's edits of the user's VirtualService, for a Rollout
// being deleted, whose stable and canary Services and DestinationRule the
// garbage collector deletes with it: pipit's routes go, and each route
// whose destinations are the rollout's Services sends to the apex Service
// alone, without subset, weight or pipit's mirror. What pipit created is
// left as it is: the garbage collector deletes it too. A missing
// VirtualService is no error.
func (i *Istio) Remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	_, res, err := kubewrite.Update(ctx, i.c, i.object(virtualServiceGVK, i.plan.VirtualService), func(vs *unstructured.Unstructured) error {
		if metav1.IsControlledBy(vs, i.owner) {
			return nil // pipit's own: the garbage collector deletes it
		}
		return i.restore(vs)
	})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("VirtualService %s/%s: %w", i.plan.Namespace, i.plan.VirtualService, err)
	}
	if res == kubewrite.Updated {
		i.log.Info("gave the VirtualService back to the apex Service", "service", i.plan.Service)
	}
	i.weight.Store(0)
	return nil
}

func (i *Istio) bySubsets() bool { return i.plan.DestinationRule != "" }

// writeVirtualService reads the VirtualService, creating it when
// missing, edits it and writes it back when that changed anything, again
// when another writer came first.
func (i *Istio) writeVirtualService(ctx context.Context, w v1alpha1.Percent, live bool) error {
	_, res, err := kubewrite.CreateOrUpdate(ctx, i.c, i.object(virtualServiceGVK, i.plan.VirtualService), func(vs *unstructured.Unstructured) error {
		if vs.GetResourceVersion() == "" {
			i.initVirtualService(vs)
		}
		return i.edit(vs, w, live)
	})
	if err != nil {
		return fmt.Errorf("VirtualService %s/%s: %w", i.plan.Namespace, i.plan.VirtualService, err)
	}
	if res != kubewrite.Unchanged {
		i.log.Info(res.String()+" VirtualService", "weight", w, "canaryLive", live)
	}
	return nil
}

// initVirtualService makes vs the VirtualService pipit creates when there
// is none: owned by the Rollout, for the plan's hosts and gateways (see
// edit), with one route to stable.
func (i *Istio) initVirtualService(vs *unstructured.Unstructured) {
	setMeta(vs, ownedMeta(i.owner, i.plan.Namespace, i.plan.VirtualService))
	dest := map[string]any{"host": i.plan.StableService, "port": map[string]any{"number": int64(i.plan.Port)}}
	vs.Object["spec"] = map[string]any{
		"http": []any{map[string]any{
			"name":  primaryRoute,
			"route": []any{map[string]any{"destination": dest, "weight": int64(100)}},
		}},
	}
}

// edit makes the VirtualService the desired state: the user's routes to
// the rollout's Services split by weight (with pipit's mirror while it
// applies), and pipit's routes first while the canary is live. Other
// routes are left as they are.
func (i *Istio) edit(vs *unstructured.Unstructured, w v1alpha1.Percent, live bool) error {
	spec, ok := vs.Object["spec"].(map[string]any)
	if !ok {
		spec = map[string]any{}
		vs.Object["spec"] = spec
	}
	if metav1.IsControlledBy(vs, i.owner) {
		spec["hosts"] = anyStrings(i.plan.Hosts)
		if len(i.plan.Gateways) > 0 {
			spec["gateways"] = anyStrings(i.plan.Gateways)
		} else {
			delete(spec, "gateways")
		}
	}
	all, _ := spec["http"].([]any)
	var user []map[string]any
	for n, r := range all {
		route, ok := r.(map[string]any)
		if !ok {
			return fmt.Errorf("http route %d is not an object", n)
		}
		if name, _ := route["name"].(string); !isPipitRule(name) {
			user = append(user, route)
		}
	}
	var managed []int
	for n, r := range user {
		ours, err := i.managed(r)
		if err != nil {
			return fmt.Errorf("http route %d: %w", n, err)
		}
		if ours {
			managed = append(managed, n)
		}
	}
	if len(managed) == 0 && live {
		return fmt.Errorf("no http route sends traffic to Service %s, %s or %s: add a destination to one of them", i.plan.Service, i.plan.StableService, i.plan.CanaryService)
	}
	for _, n := range managed {
		i.split(user[n], w, live)
	}
	var routes []any
	if live {
		added, err := i.pipitRoutes(user, managed)
		if err != nil {
			return err
		}
		routes = append(routes, added...)
	}
	for _, r := range user {
		routes = append(routes, r)
	}
	spec["http"] = routes
	return nil
}

// managed says whether a route sends traffic to the rollout's Services,
// and refuses one that also sends to other destinations: pipit could not
// keep their share while it sets its own weights.
func (i *Istio) managed(route map[string]any) (bool, error) {
	var ours, others []string
	for _, d := range destinations(route) {
		host := hostOf(d)
		if _, _, ok := i.ourHost(host); ok {
			ours = append(ours, host)
		} else {
			others = append(others, host)
		}
	}
	if len(ours) > 0 && len(others) > 0 {
		return false, fmt.Errorf("sends traffic to %s and to %s: pipit sets the weights of a route whose destinations are all the rollout's Services; give the others their own route",
			strings.Join(ours, ", "), strings.Join(others, ", "))
	}
	return len(ours) > 0, nil
}

// ourHost says which of the rollout's Services a destination host names,
// and what follows the Service's name in it: nothing (the short name),
// the namespace, or the namespace and .svc with the cluster's domain.
func (i *Istio) ourHost(host string) (service, suffix string, ok bool) {
	ns := "." + i.plan.Namespace
	for _, svc := range []string{i.plan.Service, i.plan.StableService, i.plan.CanaryService} {
		rest, found := strings.CutPrefix(host, svc)
		if found && (rest == "" || rest == ns || rest == ns+".svc" || strings.HasPrefix(rest, ns+".svc.")) {
			return svc, rest, true
		}
	}
	return "", "", false
}

// split gives a managed route the stable and canary destinations with the
// weights, in place of its destinations, written in the form of the first
// one (its port, its header changes), and sets or clears pipit's mirror.
func (i *Istio) split(route map[string]any, w v1alpha1.Percent, live bool) {
	first := destinations(route)[0]
	_, suffix, _ := i.ourHost(hostOf(first))
	stable, canary := wholePercents(w)
	route["route"] = []any{
		i.routeDestination(first, roleStable, suffix, stable),
		i.routeDestination(first, roleCanary, suffix, canary),
	}
	i.dropMirror(route)
	mirror := i.plan.Traffic != nil && i.plan.Traffic.Mirror != nil
	if !live || !mirror {
		return
	}
	if _, taken := route["mirror"]; taken {
		i.log.Warn("an http route mirrors to another destination already: pipit does not mirror it to the canary", "route", route["name"])
		return
	}
	dest, _ := runtime.DeepCopyJSONValue(first["destination"]).(map[string]any)
	i.setDestination(dest, roleCanary, suffix)
	route["mirror"] = dest
	route["mirrorPercentage"] = map[string]any{"value": i.plan.Traffic.Mirror.Percent.Float()}
}

// restore takes pipit out of a user's VirtualService: its routes go, and
// each route whose destinations are all the rollout's Services is given
// back to the apex Service. A route that also sends elsewhere, which
// pipit refuses to split and so never wrote, is left as it is.
func (i *Istio) restore(vs *unstructured.Unstructured) error {
	spec, _ := vs.Object["spec"].(map[string]any)
	all, ok := spec["http"].([]any)
	if !ok {
		return nil
	}
	routes := []any{}
	for n, r := range all {
		route, ok := r.(map[string]any)
		if !ok {
			return fmt.Errorf("http route %d is not an object", n)
		}
		if name, _ := route["name"].(string); isPipitRule(name) {
			continue
		}
		ours, err := i.managed(route)
		switch {
		case err != nil && i.sendsToVersions(route):
			i.log.Warn("an http route sends to the rollout's per-version Services, which are deleted with it, and to other destinations: pipit leaves it as it is", "route", n, "error", err)
		case ours:
			i.unsplit(route)
		}
		routes = append(routes, route)
	}
	spec["http"] = routes
	return nil
}

// sendsToVersions says whether a route sends to the stable or canary
// Service.
func (i *Istio) sendsToVersions(route map[string]any) bool {
	for _, d := range destinations(route) {
		if svc, _, ok := i.ourHost(hostOf(d)); ok && svc != i.plan.Service {
			return true
		}
	}
	return false
}

// unsplit undoes split: the route has one destination, in the form of
// its first one (its header changes), to the apex Service on the plan's
// port, without subset or weight, and no mirror of pipit's. The host is
// the apex Service as the route names it, or, when it names the
// per-version Services only, the apex Service's name with the first
// destination's namespace suffix: the way the user wrote it before split
// replaced it.
func (i *Istio) unsplit(route map[string]any) {
	dests := destinations(route)
	_, suffix, _ := i.ourHost(hostOf(dests[0]))
	host := i.plan.Service + suffix
	for _, d := range dests {
		if svc, _, _ := i.ourHost(hostOf(d)); svc == i.plan.Service {
			host = hostOf(d)
			break
		}
	}
	d, _ := runtime.DeepCopyJSONValue(dests[0]).(map[string]any)
	d["destination"] = map[string]any{"host": host, "port": map[string]any{"number": int64(i.plan.Port)}}
	delete(d, "weight")
	route["route"] = []any{d}
	i.dropMirror(route)
}

// dropMirror takes pipit's mirror, the one to the canary, out of a route.
func (i *Istio) dropMirror(route map[string]any) {
	if m, ok := route["mirror"].(map[string]any); ok && i.isCanary(m) {
		delete(route, "mirror")
		delete(route, "mirrorPercentage")
	}
}

// routeDestination is a copy of the route destination tmpl for one
// version, with a weight.
func (i *Istio) routeDestination(tmpl map[string]any, role, suffix string, weight int64) map[string]any {
	d, _ := runtime.DeepCopyJSONValue(tmpl).(map[string]any)
	dest, _ := d["destination"].(map[string]any)
	i.setDestination(dest, role, suffix)
	d["weight"] = weight
	return d
}

// setDestination points an Istio Destination at one version: its Service
// or its subset of the apex Service.
func (i *Istio) setDestination(dest map[string]any, role, suffix string) {
	if i.bySubsets() {
		dest["host"] = i.plan.Service + suffix
		dest["subset"] = role
		return
	}
	svc := i.plan.StableService
	if role == roleCanary {
		svc = i.plan.CanaryService
	}
	dest["host"] = svc + suffix
	delete(dest, "subset")
}

// isCanary says whether a Destination is the canary: pipit's mirror is
// the only one that mirrors there.
func (i *Istio) isCanary(dest map[string]any) bool {
	svc, _, ok := i.ourHost(hostOf(dest))
	subset, _ := dest["subset"].(string)
	return ok && (svc == i.plan.CanaryService || (svc == i.plan.Service && subset == roleCanary))
}

// ensureDestinationRule creates the DestinationRule with the stable and
// canary subsets of the apex Service, or brings pipit's own up to date. A
// DestinationRule of that name that is not this rollout's is refused.
func (i *Istio) ensureDestinationRule(ctx context.Context) error {
	_, res, err := kubewrite.CreateOrUpdate(ctx, i.c, i.object(destinationRuleGVK, i.plan.DestinationRule), func(dr *unstructured.Unstructured) error {
		switch {
		case dr.GetResourceVersion() == "":
			setMeta(dr, ownedMeta(i.owner, i.plan.Namespace, i.plan.DestinationRule))
		case !metav1.IsControlledBy(dr, i.owner):
			return errors.New("it exists and is not this rollout's: pipit manages the DestinationRule it names, so name one that does not exist")
		}
		dr.Object["spec"] = i.destinationRuleSpec()
		return nil
	})
	if err != nil {
		return fmt.Errorf("DestinationRule %s/%s: %w", i.plan.Namespace, i.plan.DestinationRule, err)
	}
	if res != kubewrite.Unchanged {
		i.log.Info(res.String()+" DestinationRule", "destinationRule", i.plan.DestinationRule)
	}
	return nil
}

// destinationRuleSpec is the DestinationRule pipit wants: a subset per
// version of the apex Service and, for sticky sessions, hashing by cookie.
func (i *Istio) destinationRuleSpec() map[string]any {
	subset := func(role string) any {
		return map[string]any{"name": role, "labels": map[string]any{labelRole: role}}
	}
	s := map[string]any{"host": i.plan.Service, "subsets": []any{subset(roleStable), subset(roleCanary)}}
	if i.plan.Traffic != nil && i.plan.Traffic.StickySession != nil {
		name, ttl := stickyCookie(i.owner, i.plan.Traffic.StickySession)
		s["trafficPolicy"] = map[string]any{"loadBalancer": map[string]any{"consistentHash": map[string]any{
			"httpCookie": map[string]any{"name": name, "ttl": strconv.FormatFloat(ttl.Seconds(), 'f', -1, 64) + "s"},
		}}}
	}
	return s
}

// object names an Istio object of the rollout's namespace.
func (i *Istio) object(gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	u := newUnstructured(gvk)
	u.SetNamespace(i.plan.Namespace)
	u.SetName(name)
	return u
}

func newUnstructured(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	return u
}

func setMeta(u *unstructured.Unstructured, m metav1.ObjectMeta) {
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetOwnerReferences(m.OwnerReferences)
}

// destinations are a route's route destinations that are objects.
func destinations(route map[string]any) []map[string]any {
	list, _ := route["route"].([]any)
	var out []map[string]any
	for _, d := range list {
		if m, ok := d.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// hostOf is the host of a route destination ({destination: {host}}) or
// of a Destination ({host}).
func hostOf(d map[string]any) string {
	if dest, ok := d["destination"].(map[string]any); ok {
		d = dest
	}
	host, _ := d["host"].(string)
	return host
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for n, v := range s {
		out[n] = v
	}
	return out
}
