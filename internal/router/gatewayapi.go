package router

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/kubewrite"
	"github.com/pipit-dev/pipit/internal/spec"
)

// AddToScheme registers the Gateway API types the GatewayAPI router reads
// and writes; the controller's client needs them in its scheme.
func AddToScheme(s *runtime.Scheme) error { return gatewayv1.Install(s) }

// GatewayAPI splits traffic with the weights of a Gateway API HTTPRoute's
// backendRefs.
//
// When the route exists it is the user's: pipit changes only the rules
// that send traffic to the rollout's Services (the apex, stable or canary
// one), giving each the stable and canary Services with the weights, and
// adds rules of its own, named pipit-..., for the traffic rules. When it
// does not exist, pipit creates it, owned by the Rollout, with one rule.
//
// Each traffic rule becomes one pipit rule per rule of the user's that it
// narrows: its conditions are added to that rule's matches (a Gateway API
// rule is chosen by how specific its match is, so a bare header match
// would otherwise take requests the user sends elsewhere), and it keeps
// that rule's filters and timeouts. Path prefixes are the Gateway API's:
// whole path segments. The API cannot negate a match, and matches methods
// exactly (a list of methods becomes one match per method).
//
// Sticky sessions set the rules' sessionPersistence, an experimental field
// that the standard channel's CRD does not have: the API server drops it,
// and the router then stops setting it (logging so once). Mirroring adds a
// RequestMirror filter to the canary; it copies all of the rule's
// requests, the canary's share included, which the API cannot tell apart.
//
// For Envoy Gateway (the plan's Gateway), every backendRef to a version
// also sets the X-Pipit-Role request header, so that the built-in
// metrics can tell the versions' Envoy clusters apart
// (gatewayapi_envoy.go).
//
// When the Rollout is deleted, Remove gives the user's route back as it
// was before pipit split it: the stable and canary Services go with the
// Rollout, the apex Service stays.
type GatewayAPI struct {
	c      client.Client
	owner  *v1alpha1.Rollout
	plan   spec.KubePlan
	log    *slog.Logger
	weight atomic.Int32
	// noSession is set once the API server dropped sessionPersistence.
	noSession atomic.Bool
	// clusters are the Envoy clusters of the route as last written.
	clusters atomic.Pointer[EnvoyClusters]
}

// NewGatewayAPI returns the router of the HTTPRoute plan.HTTPRoute in
// plan.Namespace, on behalf of the Rollout owner. It logs to log only (nil
// logs nothing), adding the router and the HTTPRoute.
func NewGatewayAPI(c client.Client, owner *v1alpha1.Rollout, plan spec.KubePlan, log *slog.Logger) *GatewayAPI {
	return &GatewayAPI{
		c: c, owner: owner, plan: plan,
		log: orDiscard(log).With("router", "gatewayAPI", "httpRoute", plan.HTTPRoute),
	}
}

// orDiscard is log, or a logger that drops everything when there is none:
// a router logs only to the logger it is given. The caller's logger
// carries the rollout and its namespace.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// SetWeight sends w of the traffic to the canary, creating the route when it
// does not exist. While canaryLive, pipit's rules for the traffic rules
// are in the route; otherwise they are removed and the stable Service gets
// everything.
func (g *GatewayAPI) SetWeight(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	if !canaryLive {
		w = 0
	}
	if err := g.write(ctx, w, canaryLive); err != nil {
		return err
	}
	g.weight.Store(int32(w))
	return nil
}

// Weight is the weight last applied successfully.
func (g *GatewayAPI) Weight() v1alpha1.Percent { return v1alpha1.Percent(g.weight.Load()) }

// Remove undoes pipit's edits of the user's route, for a Rollout being
// deleted, whose stable and canary Services the garbage collector deletes
// with it: pipit's rules go, and each rule that sends to the rollout's
// Services sends to the apex Service alone, without pipit's mirror and
// session persistence. A route pipit created is left as it is: the
// garbage collector deletes it too. A missing route is no error.
func (g *GatewayAPI) Remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	_, res, err := kubewrite.Update(ctx, g.c, g.object(), func(r *gatewayv1.HTTPRoute) error {
		if metav1.IsControlledBy(r, g.owner) {
			return nil // pipit's own: the garbage collector deletes it
		}
		g.restore(r)
		return nil
	})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("HTTPRoute %s/%s: %w", g.plan.Namespace, g.plan.HTTPRoute, err)
	}
	if res == kubewrite.Updated {
		g.log.Info("gave the HTTPRoute back to the apex Service", "service", g.plan.Service)
	}
	g.weight.Store(0)
	return nil
}

// write reads the route, creating it when missing, edits it and writes it
// back when that changed anything, again when another writer came first.
func (g *GatewayAPI) write(ctx context.Context, w v1alpha1.Percent, live bool) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	session := live && g.sticky() && !g.noSession.Load()
	route, res, err := kubewrite.CreateOrUpdate(ctx, g.c, g.object(), func(r *gatewayv1.HTTPRoute) error {
		if r.ResourceVersion == "" {
			g.initRoute(r)
		}
		return g.edit(r, w, live, session)
	})
	if err != nil {
		return fmt.Errorf("HTTPRoute %s/%s: %w", g.plan.Namespace, g.plan.HTTPRoute, err)
	}
	if res != kubewrite.Unchanged {
		g.log.Info(res.String()+" HTTPRoute", "weight", w, "canaryLive", live)
		g.checkSession(route, session)
	}
	g.noteClusters(route)
	return nil
}

// object names the route.
func (g *GatewayAPI) object() *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: g.plan.Namespace, Name: g.plan.HTTPRoute}}
}

// checkSession notices that the API server dropped the session
// persistence just written, so that the router stops writing it: writing
// it again would change nothing but cost a write on every Apply.
func (g *GatewayAPI) checkSession(route *gatewayv1.HTTPRoute, wanted bool) {
	if !wanted {
		return
	}
	name, _ := g.sessionCookie()
	for _, r := range route.Spec.Rules {
		if sp := r.SessionPersistence; sp != nil && ptr.Deref(sp.SessionName, "") == name {
			return
		}
	}
	g.noSession.Store(true)
	g.log.Warn("the HTTPRoute CRD has no sessionPersistence (an experimental Gateway API field; install the experimental channel's CRDs for it): sticky sessions are off")
}

// initRoute makes r the route pipit creates when there is none: owned by
// the Rollout, attached to the plan's parents, with one rule to stable.
func (g *GatewayAPI) initRoute(r *gatewayv1.HTTPRoute) {
	r.ObjectMeta = ownedMeta(g.owner, g.plan.Namespace, g.plan.HTTPRoute)
	r.Spec = gatewayv1.HTTPRouteSpec{
		CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: g.parentRefs()},
		Rules: []gatewayv1.HTTPRouteRule{{
			Matches:     []gatewayv1.HTTPRouteMatch{{Path: rootPath()}},
			BackendRefs: []gatewayv1.HTTPBackendRef{g.backendRef(g.plan.StableService, int32(v1alpha1.FullWeight), nil)},
		}},
	}
}

// parentRefs are the plan's parents with the defaults the API server
// would fill in, so that comparing with a stored route sees no change.
func (g *GatewayAPI) parentRefs() []gatewayv1.ParentReference {
	var refs []gatewayv1.ParentReference
	for _, p := range g.plan.ParentRefs {
		ref := gatewayv1.ParentReference{
			Group: ptr.To(gatewayv1.Group(gatewayv1.GroupName)),
			Kind:  ptr.To(gatewayv1.Kind("Gateway")),
			Name:  gatewayv1.ObjectName(p.Name),
		}
		if p.Namespace != "" {
			ref.Namespace = ptr.To(gatewayv1.Namespace(p.Namespace))
		}
		if p.SectionName != "" {
			ref.SectionName = ptr.To(gatewayv1.SectionName(p.SectionName))
		}
		refs = append(refs, ref)
	}
	return refs
}

// edit makes the route the desired state: the user's rules that send to
// the rollout's Services split by weight (with pipit's mirror and session
// persistence while they apply), and pipit's rules first while the canary
// is live. Other rules are left as they are.
func (g *GatewayAPI) edit(route *gatewayv1.HTTPRoute, w v1alpha1.Percent, live, session bool) error {
	if metav1.IsControlledBy(route, g.owner) {
		route.Spec.ParentRefs = g.parentRefs()
	}
	var user []gatewayv1.HTTPRouteRule
	for _, r := range route.Spec.Rules {
		if !isPipitRule(string(ptr.Deref(r.Name, ""))) {
			user = append(user, r)
		}
	}
	var managed []int
	for i, r := range user {
		ours, err := g.managed(r)
		if err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
		if ours {
			managed = append(managed, i)
		}
	}
	if len(managed) == 0 && live {
		return fmt.Errorf("no rule sends traffic to Service %s, %s or %s: add a backendRef to one of them", g.plan.Service, g.plan.StableService, g.plan.CanaryService)
	}
	for _, i := range managed {
		g.split(&user[i], w, live, session)
	}
	var added []gatewayv1.HTTPRouteRule
	if live {
		var err error
		if added, err = g.pipitRules(user, managed); err != nil {
			return err
		}
	}
	route.Spec.Rules = append(added, user...)
	return nil
}

// managed says whether a rule sends traffic to the rollout's Services,
// and refuses one that also sends to other backends: pipit could not keep
// their share while it sets its own weights.
func (g *GatewayAPI) managed(r gatewayv1.HTTPRouteRule) (bool, error) {
	var ours, others []string
	for _, ref := range r.BackendRefs {
		if g.isOurs(ref.BackendObjectReference, g.plan.Service, g.plan.StableService, g.plan.CanaryService) {
			ours = append(ours, string(ref.Name))
		} else {
			others = append(others, string(ref.Name))
		}
	}
	if len(ours) > 0 && len(others) > 0 {
		return false, fmt.Errorf("sends traffic to %s and to %s: pipit sets the weights of a rule whose backends are all the rollout's Services; give the others their own rule",
			strings.Join(ours, ", "), strings.Join(others, ", "))
	}
	return len(ours) > 0, nil
}

// isOurs says whether ref is a Service of the route's namespace with one
// of the names.
func (g *GatewayAPI) isOurs(ref gatewayv1.BackendObjectReference, names ...string) bool {
	return ptr.Deref(ref.Group, "") == "" && ptr.Deref(ref.Kind, "Service") == "Service" &&
		string(ptr.Deref(ref.Namespace, gatewayv1.Namespace(g.plan.Namespace))) == g.plan.Namespace &&
		slices.Contains(names, string(ref.Name))
}

// split gives a managed rule the stable and canary Services with the
// weights, in place of its references to the rollout's Services (whose
// filters they keep), and sets or clears pipit's mirror and session
// persistence.
func (g *GatewayAPI) split(r *gatewayv1.HTTPRouteRule, w v1alpha1.Percent, live, session bool) {
	filters := slices.Clone(r.BackendRefs[0].Filters)
	r.BackendRefs = []gatewayv1.HTTPBackendRef{
		g.backendRef(g.plan.StableService, int32(v1alpha1.FullWeight-w), filters),
		g.backendRef(g.plan.CanaryService, int32(w), filters),
	}
	r.Filters = g.withoutMirror(r.Filters)
	if m := g.mirror(); live && m != nil {
		r.Filters = append(r.Filters, *m)
	}
	g.dropSession(r)
	if session && r.SessionPersistence == nil {
		name, ttl := g.sessionCookie()
		r.SessionPersistence = &gatewayv1.SessionPersistence{
			SessionName:     ptr.To(name),
			AbsoluteTimeout: ptr.To(gatewayDuration(ttl)),
			Type:            ptr.To(gatewayv1.CookieBasedSessionPersistence),
			CookieConfig:    &gatewayv1.CookieConfig{LifetimeType: ptr.To(gatewayv1.PermanentCookieLifetimeType)},
		}
	}
}

// restore takes pipit out of a user's route: its rules go, and each rule
// that sends to the rollout's Services only is given back to the apex
// Service. A rule that also sends elsewhere, which pipit refuses to split
// and so never wrote, is left as it is.
func (g *GatewayAPI) restore(route *gatewayv1.HTTPRoute) {
	var rules []gatewayv1.HTTPRouteRule
	for i, r := range route.Spec.Rules {
		if isPipitRule(string(ptr.Deref(r.Name, ""))) {
			continue
		}
		ours, err := g.managed(r)
		switch {
		case err != nil && g.sendsToVersions(r):
			g.log.Warn("a route rule sends to the rollout's per-version Services, which are deleted with it, and to other backends: pipit leaves it as it is", "rule", i, "error", err)
		case ours:
			g.unsplit(&r)
		}
		rules = append(rules, r)
	}
	route.Spec.Rules = rules
}

// sendsToVersions says whether a rule sends to the stable or canary
// Service.
func (g *GatewayAPI) sendsToVersions(r gatewayv1.HTTPRouteRule) bool {
	return slices.ContainsFunc(r.BackendRefs, func(b gatewayv1.HTTPBackendRef) bool {
		return g.isOurs(b.BackendObjectReference, g.plan.StableService, g.plan.CanaryService)
	})
}

// unsplit undoes split: the rule sends to the apex Service alone, with
// the filters of its first reference (the user's, which split copied
// onto both versions), and without pipit's mirror and session
// persistence. The weight is the API's default, written out as the API
// server stores it so that a second Remove finds nothing to change.
func (g *GatewayAPI) unsplit(r *gatewayv1.HTTPRouteRule) {
	filters := slices.Clone(r.BackendRefs[0].Filters)
	r.BackendRefs = []gatewayv1.HTTPBackendRef{g.backendRef(g.plan.Service, 1, filters)}
	r.Filters = g.withoutMirror(r.Filters)
	g.dropSession(r)
}

// dropSession takes pipit's session persistence, the one named after its
// cookie, out of a rule.
func (g *GatewayAPI) dropSession(r *gatewayv1.HTTPRouteRule) {
	name, _ := g.sessionCookie()
	if sp := r.SessionPersistence; sp != nil && ptr.Deref(sp.SessionName, "") == name {
		r.SessionPersistence = nil
	}
}

// backendRef is a reference to one of the rollout's Services, with the
// defaults the API server would fill in, the user's filters and pipit's
// role header when it has one (roleFilters).
func (g *GatewayAPI) backendRef(service string, weight int32, filters []gatewayv1.HTTPRouteFilter) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{
		BackendRef: gatewayv1.BackendRef{BackendObjectReference: g.serviceRef(service), Weight: ptr.To(weight)},
		Filters:    g.roleFilters(service, filters),
	}
}

func (g *GatewayAPI) serviceRef(service string) gatewayv1.BackendObjectReference {
	return gatewayv1.BackendObjectReference{
		Group: ptr.To(gatewayv1.Group("")),
		Kind:  ptr.To(gatewayv1.Kind("Service")),
		Name:  gatewayv1.ObjectName(service),
		Port:  ptr.To(g.plan.Port),
	}
}

// mirror is pipit's RequestMirror filter, nil without mirroring: a whole
// percent as percent, a finer share as a fraction.
func (g *GatewayAPI) mirror() *gatewayv1.HTTPRouteFilter {
	if g.plan.Traffic == nil || g.plan.Traffic.Mirror == nil {
		return nil
	}
	p := g.plan.Traffic.Mirror.Percent
	m := &gatewayv1.HTTPRequestMirrorFilter{BackendRef: g.serviceRef(g.plan.CanaryService)}
	if p%v1alpha1.PercentScale == 0 {
		m.Percent = ptr.To(int32(p / v1alpha1.PercentScale))
	} else {
		m.Fraction = &gatewayv1.Fraction{Numerator: int32(p), Denominator: ptr.To(int32(v1alpha1.FullWeight))}
	}
	return &gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: m}
}

// withoutMirror is filters without pipit's mirror: the only one that
// mirrors to the canary Service.
func (g *GatewayAPI) withoutMirror(filters []gatewayv1.HTTPRouteFilter) []gatewayv1.HTTPRouteFilter {
	return slices.DeleteFunc(slices.Clone(filters), func(f gatewayv1.HTTPRouteFilter) bool {
		return f.Type == gatewayv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil &&
			g.isOurs(f.RequestMirror.BackendRef, g.plan.CanaryService)
	})
}

func (g *GatewayAPI) sticky() bool {
	return g.plan.Traffic != nil && g.plan.Traffic.StickySession != nil
}

// sessionCookie is the sticky-session cookie; its name tells pipit's
// session persistence from a user's.
func (g *GatewayAPI) sessionCookie() (string, metav1.Duration) {
	s := &v1alpha1.StickySession{}
	if g.sticky() {
		s = g.plan.Traffic.StickySession
	}
	return stickyCookie(g.owner, s)
}

// gatewayDuration writes d as a Gateway API duration (GEP-2257): hours,
// minutes, seconds and milliseconds, such as 1h30m.
func gatewayDuration(d metav1.Duration) gatewayv1.Duration {
	left := d.Round(time.Millisecond)
	if left <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := left / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			left -= n * u.unit
		}
	}
	return gatewayv1.Duration(b.String())
}
