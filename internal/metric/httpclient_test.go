package metric

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustClient(t *testing.T, c httpConfig) *http.Client {
	t.Helper()
	hc, err := newHTTPClient(c)
	if err != nil {
		t.Fatalf("newHTTPClient: %v", err)
	}
	return hc
}

// get sends a GET and returns the status, or the error.
func get(hc *http.Client, url string) (int, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestHTTPClientAuth(t *testing.T) {
	t.Setenv("PIPIT_TEST_TOKEN", "env-token\n")
	t.Setenv("PIPIT_TEST_PASSWORD", "env-pass")
	tokenFile := writeFile(t, "token", "file-token\n")
	passFile := writeFile(t, "pass", "file-pass\n")
	cases := []struct {
		name string
		auth *v1alpha1.HTTPAuth
		// want is the Authorization header the server must see.
		want string
	}{
		{"none", nil, ""},
		{"bearer file", &v1alpha1.HTTPAuth{BearerTokenFile: tokenFile}, "Bearer file-token"},
		{"bearer env", &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_TOKEN"}, "Bearer env-token"},
		{"basic file", &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "ann", PasswordFile: passFile}}, basic("ann", "file-pass")},
		{"basic env", &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "ann", PasswordEnv: "PIPIT_TEST_PASSWORD"}}, basic("ann", "env-pass")},
		{"basic without password", &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "key"}}, basic("key", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Get("Authorization")
			}))
			defer srv.Close()
			if _, err := get(mustClient(t, httpConfig{Auth: c.auth}), srv.URL); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("Authorization %q, want %q", got, c.want)
			}
		})
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func TestHTTPClientRereadsToken(t *testing.T) {
	tokenFile := writeFile(t, "token", "first")
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	hc := mustClient(t, httpConfig{Auth: &v1alpha1.HTTPAuth{BearerTokenFile: tokenFile}})
	if _, err := get(hc, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := get(hc, srv.URL); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "Bearer first,Bearer rotated" {
		t.Fatalf("tokens sent: %q", got)
	}
}

func TestHTTPClientSecretErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	t.Setenv("PIPIT_TEST_EMPTY", "")
	t.Setenv("PIPIT_TEST_BROKEN", "top\nsecret")
	cases := []struct {
		name string
		auth *v1alpha1.HTTPAuth
		want string
	}{
		{"unset env", &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_UNSET_VARIABLE"}, "PIPIT_TEST_UNSET_VARIABLE is not set"},
		{"empty env", &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_EMPTY"}, "PIPIT_TEST_EMPTY is empty"},
		{"missing file", &v1alpha1.HTTPAuth{BearerTokenFile: "/nonexistent/token"}, "/nonexistent/token"},
		{"empty file", &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "u", PasswordFile: writeFile(t, "p", "\n")}}, "is empty"},
		{"token not fit for a header", &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_BROKEN"}, "invalid header field value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := get(mustClient(t, httpConfig{Auth: c.auth}), srv.URL)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "top") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestHTTPClientConfigErrors(t *testing.T) {
	notPEM := writeFile(t, "ca.pem", "not a certificate")
	cases := []struct {
		name string
		c    httpConfig
		want string
	}{
		{"empty auth", httpConfig{Auth: &v1alpha1.HTTPAuth{}}, "set a bearer token"},
		{"two bearer sources", httpConfig{Auth: &v1alpha1.HTTPAuth{BearerTokenFile: "f", BearerTokenEnv: "E"}}, "not both"},
		{"bearer and basic", httpConfig{Auth: &v1alpha1.HTTPAuth{BearerTokenEnv: "E", Basic: &v1alpha1.BasicAuth{Username: "u"}}}, "not both"},
		{"basic without user", httpConfig{Auth: &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{PasswordEnv: "E"}}}, "username"},
		{"two password sources", httpConfig{Auth: &v1alpha1.HTTPAuth{Basic: &v1alpha1.BasicAuth{Username: "u", PasswordEnv: "E", PasswordFile: "f"}}}, "not both"},
		{"authorization twice", httpConfig{Auth: &v1alpha1.HTTPAuth{BearerTokenEnv: "E"}, Headers: map[string]string{"authorization": "x"}}, "not both"},
		{"bad header name", httpConfig{Headers: map[string]string{"X Bad": "v"}}, "not valid"},
		{"bad header value", httpConfig{Headers: map[string]string{"X-Api-Key": "secret\r\nvalue"}}, `"X-Api-Key" has an invalid value`},
		{"cert without key", httpConfig{TLS: &v1alpha1.TLSOptions{CertFile: "c.pem"}}, "together"},
		{"missing CA file", httpConfig{TLS: &v1alpha1.TLSOptions{CAFile: "/nonexistent/ca.pem"}}, "/nonexistent/ca.pem"},
		{"CA file without PEM", httpConfig{TLS: &v1alpha1.TLSOptions{CAFile: notPEM}}, "no PEM certificate"},
		{"bad client cert", httpConfig{TLS: &v1alpha1.TLSOptions{CertFile: notPEM, KeyFile: notPEM}}, "client certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newHTTPClient(c.c)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows a header value: %v", err)
			}
		})
	}
}

func TestHTTPClientHeaders(t *testing.T) {
	var got http.Header
	var host string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, host = r.Header.Clone(), r.Host
	}))
	defer srv.Close()
	hc := mustClient(t, httpConfig{Headers: map[string]string{"x-scope-orgid": "team-a", "Host": "metrics.internal"}})
	if _, err := get(hc, srv.URL); err != nil {
		t.Fatal(err)
	}
	if got.Get("X-Scope-OrgID") != "team-a" || host != "metrics.internal" {
		t.Fatalf("headers %v, host %q", got, host)
	}
}

func TestHTTPClientRedirects(t *testing.T) {
	t.Setenv("PIPIT_TEST_TOKEN", "tok")
	auth := &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_TOKEN"}
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization") != ""
	}))
	defer other.Close()
	var finalAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			finalAuth = r.Header.Get("Authorization")
		}
	}))
	defer srv.Close()
	hc := mustClient(t, httpConfig{Auth: auth})
	if _, err := get(hc, srv.URL+"/here"); err != nil || finalAuth != "Bearer tok" {
		t.Fatalf("same-host redirect: %v, Authorization %q", err, finalAuth)
	}
	_, err := get(hc, srv.URL+"/away")
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Fatalf("got %v, want a refused redirect", err)
	}
	if leaked {
		t.Fatal("the token reached another host")
	}
}

// testPKI is a CA with a server certificate for metrics.test (not for
// 127.0.0.1) and a client certificate, written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	serverCert                    tls.Certificate
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pipit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth, []string{"metrics.test"})
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		caFile:     writeFile(t, "ca.pem", pemOf("CERTIFICATE", caDER)),
		clientCert: writeFile(t, "client.pem", pemOf("CERTIFICATE", cliDER)),
		clientKey:  writeFile(t, "client-key.pem", pemOf("EC PRIVATE KEY", ecDER(t, cliKey))),
		serverCert: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		pool:       pool,
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecDER(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemOf(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

func TestHTTPClientTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	full := v1alpha1.TLSOptions{CAFile: pki.caFile, ServerName: "metrics.test", CertFile: pki.clientCert, KeyFile: pki.clientKey}
	cases := []struct {
		name string
		tls  v1alpha1.TLSOptions
		ok   bool
	}{
		{"CA, server name and client certificate", full, true},
		{"no client certificate", v1alpha1.TLSOptions{CAFile: pki.caFile, ServerName: "metrics.test"}, false},
		{"system CAs only", v1alpha1.TLSOptions{ServerName: "metrics.test", CertFile: pki.clientCert, KeyFile: pki.clientKey}, false},
		{"certificate not for the address", v1alpha1.TLSOptions{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, false},
		{"insecure skip verify", v1alpha1.TLSOptions{InsecureSkipVerify: true, CertFile: pki.clientCert, KeyFile: pki.clientKey}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.tls
			status, err := get(mustClient(t, httpConfig{TLS: &opts}), srv.URL)
			if c.ok && (err != nil || status != http.StatusOK) {
				t.Fatalf("got %d, %v; want 200", status, err)
			}
			if !c.ok && err == nil {
				t.Fatalf("got %d, want a TLS error", status)
			}
		})
	}
}
