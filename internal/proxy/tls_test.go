package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// TestServerTLS terminates TLS for HTTP/2 and HTTP/1.1 clients, tells the
// upstream the client spoke https, and serves a renewed certificate
// without a restart.
func TestServerTLS(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode([]string{r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded")})
	}))
	defer echo.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := nettest.WriteCert(t, certFile, keyFile, 1)
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, echo.URL)}})
	s, ln := startServer(t, p, ServerConfig{CertFile: certFile, KeyFile: keyFile})
	s.certs.interval = 0 // look at the files on every handshake
	url := "https://" + ln.Addr().String() + "/"

	client := func(cert *x509.Certificate, h2 bool) *http.Client {
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	for _, h2 := range []bool{true, false} {
		resp, err := client(first, h2).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		err = json.NewDecoder(resp.Body).Decode(&seen)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if wantMajor := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != wantMajor {
			t.Errorf("h2 %v: answered over %s", h2, resp.Proto)
		}
		if seen[0] != "https" || seen[1] != `for=127.0.0.1;host="`+ln.Addr().String()+`";proto=https` {
			t.Errorf("h2 %v: upstream saw X-Forwarded-Proto %q, Forwarded %q", h2, seen[0], seen[1])
		}
	}

	// A renewed pair, written in place: new connections get it.
	second := nettest.WriteCert(t, certFile, keyFile, 2)
	future := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client(second, false).Get(url)
	if err != nil {
		t.Fatalf("with the renewed certificate: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Errorf("served certificate %d after the renewal", got)
	}

	// A broken pair keeps the last good one in service.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err = client(second, false).Get(url)
	if err != nil {
		t.Fatalf("after a broken key was written: %v", err)
	}
	resp.Body.Close()
}
