package metric

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// httpConfig is what the HTTP client of a provider is built from.
type httpConfig struct {
	Auth    *v1alpha1.HTTPAuth
	Headers map[string]string
	TLS     *v1alpha1.TLSOptions
}

// errCredentials marks a failure to read a secret: a setup problem, not
// worth a retry.
var errCredentials = errors.New("cannot read credentials")

// maxRedirects bounds the redirects a provider follows.
const maxRedirects = 5

// newHTTPClient builds the client shared by the Prometheus and web
// providers. TLS files are read now; secrets (tokens, passwords) are read
// at every request, so rotated credentials are picked up, and they never
// appear in errors or logs. The client has no timeout of its own: callers
// bound each measurement, retries included, with a context.
func newHTTPClient(c httpConfig) (*http.Client, error) {
	if err := checkAuth(c.Auth); err != nil {
		return nil, err
	}
	headers, err := checkHeaders(c.Headers, c.Auth != nil)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(c.TLS)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return &http.Client{
		Transport:     &decorator{next: tr, headers: headers, auth: c.Auth},
		CheckRedirect: sameHostRedirect,
	}, nil
}

// sameHostRedirect follows redirects only to the same scheme and host: the
// transport adds credentials to every request, which must not reach
// another server.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Host != first.Host || req.URL.Scheme != first.Scheme {
		return fmt.Errorf("refusing redirect from %s://%s to %s://%s: credentials stay with the configured server",
			first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

func checkAuth(a *v1alpha1.HTTPAuth) error {
	if a == nil {
		return nil
	}
	if a.BearerTokenFile != "" && a.BearerTokenEnv != "" {
		return errors.New("auth: set bearerTokenFile or bearerTokenEnv, not both")
	}
	bearer := a.BearerTokenFile != "" || a.BearerTokenEnv != ""
	switch {
	case bearer && a.Basic != nil:
		return errors.New("auth: set a bearer token or basic auth, not both")
	case !bearer && a.Basic == nil:
		return errors.New("auth: set a bearer token (bearerTokenFile, bearerTokenEnv) or basic auth")
	case a.Basic != nil && a.Basic.Username == "":
		return errors.New("auth: basic auth needs a username")
	case a.Basic != nil && a.Basic.PasswordFile != "" && a.Basic.PasswordEnv != "":
		return errors.New("auth: set basic passwordFile or passwordEnv, not both")
	}
	return nil
}

// checkHeaders validates and canonicalises custom headers. Values may be
// secrets (API keys), so errors name the header, never its value.
func checkHeaders(h map[string]string, withAuth bool) (http.Header, error) {
	out := make(http.Header, len(h))
	for name, value := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("header name %q is not valid", name)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("header %q has an invalid value", name)
		}
		key := http.CanonicalHeaderKey(name)
		if key == "Authorization" && withAuth {
			return nil, errors.New("set the Authorization header or auth, not both")
		}
		out.Set(key, value)
	}
	return out, nil
}

func tlsConfig(o *v1alpha1.TLSOptions) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o == nil {
		return c, nil
	}
	c.ServerName = o.ServerName
	c.InsecureSkipVerify = o.InsecureSkipVerify
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no PEM certificate in CA file %s", o.CAFile)
		}
		c.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tls: set certFile and keyFile together")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: loading client certificate %s: %w", o.CertFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// decorator adds the custom headers and credentials to every request.
type decorator struct {
	next    http.RoundTripper
	headers http.Header
	auth    *v1alpha1.HTTPAuth
}

// RoundTrip implements http.RoundTripper on a copy of the request.
func (d *decorator) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for name, values := range d.headers {
		if name == "Host" {
			r.Host = values[0]
			continue
		}
		r.Header[name] = values
	}
	if err := setAuth(r, d.auth); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return d.next.RoundTrip(r)
}

func setAuth(r *http.Request, a *v1alpha1.HTTPAuth) error {
	switch {
	case a == nil:
		return nil
	case a.Basic != nil:
		password := ""
		if a.Basic.PasswordFile != "" || a.Basic.PasswordEnv != "" {
			p, err := readSecret("basic auth password", a.Basic.PasswordFile, a.Basic.PasswordEnv)
			if err != nil {
				return err
			}
			password = p
		}
		r.SetBasicAuth(a.Basic.Username, password)
	default:
		token, err := readSecret("bearer token", a.BearerTokenFile, a.BearerTokenEnv)
		if err != nil {
			return err
		}
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return nil
}

// readSecret reads a secret from a file or an environment variable, trimmed
// of surrounding white space (files usually end in a newline). Errors name
// where it was looked for, never what was found.
func readSecret(what, file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%w: reading %s: %w", errCredentials, what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%w: %s file %s is empty", errCredentials, what, file)
		}
		return s, nil
	}
	v, ok := os.LookupEnv(env)
	if !ok {
		return "", fmt.Errorf("%w: %s: environment variable %s is not set", errCredentials, what, env)
	}
	s := strings.TrimSpace(v)
	if s == "" {
		return "", fmt.Errorf("%w: %s: environment variable %s is empty", errCredentials, what, env)
	}
	return s, nil
}
