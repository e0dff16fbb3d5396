package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often, at most, the certificate files are
// looked at for changes; a handshake in between uses the cached pair.
const certCheckInterval = time.Second

// certReloader serves a certificate from files and loads it again when
// either file changes, so a renewed certificate (certbot, cert-manager,
// a mounted secret) is served without a restart. A pair that fails to
// load keeps the previous one in service.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu                sync.Mutex
	cert              *tls.Certificate
	certMod, keyMod   time.Time
	checked           time.Time
	certSize, keySize int64
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: certCheckInterval, log: log}
	if err := r.reload(time.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.interval {
		if err := r.reload(now); err != nil {
			r.log.Warn("cannot load the new TLS certificate; serving the previous one", "err", err)
		}
	}
	return r.cert, nil
}

// reload loads the pair when either file's modification time or size
// changed since the last load. Callers hold r.mu, or own r.
func (r *certReloader) reload(now time.Time) error {
	r.checked = now
	cs, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	ks, err := os.Stat(r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	if r.cert != nil && cs.ModTime().Equal(r.certMod) && ks.ModTime().Equal(r.keyMod) &&
		cs.Size() == r.certSize && ks.Size() == r.keySize {
		return nil
	}
	// Remembered even when the pair does not load: a certificate written
	// before its key is retried once the key changes, not every second.
	r.certMod, r.keyMod, r.certSize, r.keySize = cs.ModTime(), ks.ModTime(), cs.Size(), ks.Size()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if r.cert != nil {
		r.log.Info("TLS certificate reloaded", "cert", r.certFile)
	}
	r.cert = &cert
	return nil
}
