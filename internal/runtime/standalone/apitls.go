package standalone

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// TLSFiles name a certificate and its key, PEM files.
type TLSFiles struct {
	CertFile, KeyFile string
}

// apiTLS is the TLS configuration of the control API on addr, or nil to
// serve plain HTTP, which only a loopback address (or insecure) allows:
// the API carries bearer tokens, which must not cross a network in clear.
func apiTLS(addr string, files *TLSFiles, insecure bool) (*tls.Config, error) {
	if files == nil {
		if !insecure && !loopback(addr) {
			return nil, fmt.Errorf("control API on %s: an address other than loopback needs TLS (--tls-cert and --tls-key), "+
				"or --insecure to send tokens in clear text", addr)
		}
		return nil, nil
	}
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, fmt.Errorf("control API TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("control API TLS: %s and %s: %w", files.CertFile, files.KeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// loopback reports whether a listen address serves this machine alone:
// localhost or a loopback IP. An empty host listens on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
