package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds that validation and the proxy share.
const (
	// MaxRegexLength bounds a rule's regular expression, whose compile
	// time and memory grow with its length.
	MaxRegexLength = 1024
	// MaxMirrorBodyBytes bounds Mirror.MaxBodyBytes: each copy in flight
	// holds its body in memory.
	MaxMirrorBodyBytes = 16 << 20
)

// TrafficSpec says which requests the built-in proxy sends to the canary,
// beyond a share drawn at random. For each request, in this order:
//
//  1. when the canary is absent or closed (after a rollback) the request
//     goes to stable, whatever follows says;
//  2. the first rule that matches decides, canary or stable;
//  3. a sticky-session cookie naming a version that still serves in its
//     role keeps the user there;
//  4. a user key puts the user in one of 100,000 buckets and the canary
//     takes the buckets below its weight;
//  5. otherwise the weight decides at random.
type TrafficSpec struct {
	// UserKey lists where a request's user key is read, tried in order;
	// the first one present and not empty is used. The key, hashed with
	// Salt, picks one of 100,000 buckets, and the canary takes buckets
	// [0, weight×1000): a user keeps their version at a given weight, and
	// raising the weight never moves a canary user back to stable.
	// Requests without a key are split at random.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	UserKey []UserKeySource `json:"userKey,omitempty"`
	// Salt is hashed with every user key, so that two rollouts put the
	// same user in unrelated buckets. Default: the rollout's name.
	// Changing it reshuffles the users.
	// +optional
	Salt string `json:"salt,omitempty"`
	// Rules are tried in order before the weight; the first that matches
	// sends the request to its destination whatever the weight.
	// +optional
	Rules []TrafficRule `json:"rules,omitempty"`
	// StickySession, when set (`stickySession: {}` takes the defaults),
	// keeps a user on the version they were given with a cookie.
	// +optional
	StickySession *StickySession `json:"stickySession,omitempty"`
	// Mirror, when set, copies a share of the stable traffic to the
	// canary; the copies' answers are measured and thrown away.
	// +optional
	Mirror *Mirror `json:"mirror,omitempty"`
}

// UserKeySource is one place a user key is read from; exactly one field
// is set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.query) ? 1 : 0) + (has(self.clientIP) && self.clientIP ? 1 : 0) == 1",message="set one of header, cookie, query or clientIP"
type UserKeySource struct {
	// Header is a request header's name, such as X-User-ID; its first
	// value is the key.
	// +optional
	Header string `json:"header,omitempty"`
	// Cookie is a cookie's name; the first cookie of that name is the key.
	// +optional
	Cookie string `json:"cookie,omitempty"`
	// Query is a query parameter's name; its first value is the key.
	// +optional
	Query string `json:"query,omitempty"`
	// ClientIP uses the address of the connection's peer, the last
	// resort; it must be the last source. Behind a load balancer that is
	// the balancer: read its header (X-Real-IP) with Header instead.
	// +optional
	ClientIP bool `json:"clientIP,omitempty"`
}

// Destination is where a rule sends the requests it matches.
// +kubebuilder:validation:Enum=canary;stable
type Destination string

// The destinations of a rule.
const (
	DestinationCanary Destination = "canary"
	DestinationStable Destination = "stable"
)

// TrafficRule sends the requests it matches to one version. A request
// matches when every condition written holds; write several rules with
// the same destination for "or". Istio's HTTPMatchRequest is the model.
type TrafficRule struct {
	// Name names the rule in errors.
	// +optional
	Name string `json:"name,omitempty"`
	// To is canary or stable. A rule can only send to a canary that is
	// serving and not rolled back; otherwise its requests go to stable.
	To Destination `json:"to"`
	// Headers maps header names (any case) to conditions on their values.
	// +optional
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// Cookies maps cookie names to conditions on their values.
	// +optional
	Cookies map[string]StringMatch `json:"cookies,omitempty"`
	// QueryParams maps query parameter names to conditions on their
	// values (decoded).
	// +optional
	QueryParams map[string]StringMatch `json:"queryParams,omitempty"`
	// Path is a condition on the request's path (decoded, without the
	// query).
	// +optional
	Path *StringMatch `json:"path,omitempty"`
	// Method is a condition on the request's method, such as GET.
	// +optional
	Method *StringMatch `json:"method,omitempty"`
}

// StringMatch is a condition on a value. At most one of exact, prefix,
// suffix and regex is set, or a list (in, inFile, or both); with none the
// condition only asks that the header, cookie or parameter be present. A
// header, cookie or parameter that appears several times holds when any of
// its values matches.
type StringMatch struct {
	// Exact matches this value and nothing else.
	// +optional
	Exact string `json:"exact,omitempty"`
	// Prefix matches values that start with it.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// Suffix matches values that end with it, such as @company.com.
	// +optional
	Suffix string `json:"suffix,omitempty"`
	// Regex is an RE2 expression the whole value must match; (?i) at its
	// start ignores case. At most MaxRegexLength bytes.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Regex string `json:"regex,omitempty"`
	// In matches any of these values.
	// +optional
	In []string `json:"in,omitempty"`
	// InFile matches any value listed in this file, one per line; blank
	// lines and lines starting with # are skipped. The file is checked
	// every few seconds and reloaded when it changes. A relative path is
	// resolved from pipit's working directory.
	// +optional
	InFile string `json:"inFile,omitempty"`
	// Not inverts the condition: it holds when no value matches, which
	// includes the header, cookie or parameter being absent.
	// +optional
	Not bool `json:"not,omitempty"`
}

// StickySession keeps a user on the version they were given: the proxy
// sets a cookie naming that version and role, and honours it while that
// version still serves in that role. After a rollback, a promotion or a
// new canary the cookie no longer matches and is replaced.
type StickySession struct {
	// CookieName names the cookie. Default: pipit- and the rollout's name.
	// +optional
	CookieName string `json:"cookieName,omitempty"`
	// TTL is how long the browser keeps the cookie. Default 1h. Users
	// with a stable cookie stay on stable while the weight rises, so a
	// shorter TTL lets the canary's share of users follow the weight
	// sooner.
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// Mirror copies requests that go to stable to the canary as well,
// without waiting for it: the client only ever sees stable's answer.
type Mirror struct {
	// Percent is the share of the requests sent to stable that are also
	// copied to the canary, more than 0 and at most 100.
	Percent Percent `json:"percent"`
	// MaxBodyBytes bounds the request bodies copied: a request with a
	// larger body is not copied. Default 65536 (64 KiB), at most
	// MaxMirrorBodyBytes.
	// +kubebuilder:validation:Maximum=16777216
	// +optional
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// Methods lists the HTTP methods copied, such as [GET, HEAD]; a
	// request with another method is not copied. Default: every method.
	// A copy of a POST or a PATCH does its work twice (two orders, two
	// e-mails), so list only the methods that are safe to repeat. The
	// built-in proxy's only: Kubernetes routers mirror every method.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Methods []string `json:"methods,omitempty"`
}
