package kubecluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// credentials are the files kube-apiserver and its clients share: a CA, the
// serving certificate it signs for 127.0.0.1, the service-account signing
// key, and one bearer token per client.
type credentials struct {
	caPEM      []byte
	caFile     string
	certFile   string
	keyFile    string
	saKeyFile  string
	tokensFile string
	tokens     map[string]string // client name -> token
}

// clients are the users in the token file. All are in system:masters: the
// cluster only ever runs tests, and the controller-manager then needs no
// per-controller service-account credentials.
var clients = []string{"admin", "kube-controller-manager", "kube-scheduler", "kwok"}

// newCredentials writes the credentials under dir. ECDSA keys keep this
// fast; kube-apiserver accepts them for serving and for service accounts.
func newCredentials(dir string) (*credentials, error) {
	c := &credentials{
		caFile:     filepath.Join(dir, "ca.crt"),
		certFile:   filepath.Join(dir, "apiserver.crt"),
		keyFile:    filepath.Join(dir, "apiserver.key"),
		saKeyFile:  filepath.Join(dir, "service-account.key"),
		tokensFile: filepath.Join(dir, "tokens.csv"),
		tokens:     map[string]string{},
	}
	ca, caKey, err := newCA()
	if err != nil {
		return nil, err
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	serveDER, serveKeyPEM, err := newServingCert(ca, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := ecKeyPEM(saKey)
	if err != nil {
		return nil, err
	}
	tokens, err := c.newTokens()
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		data []byte
	}{
		{c.caFile, c.caPEM},
		{c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serveDER})},
		{c.keyFile, serveKeyPEM},
		{c.saKeyFile, saKeyPEM},
		{c.tokensFile, tokens},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// newCA makes the self-signed CA every certificate of the cluster chains to.
func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pipit-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// newServingCert makes kube-apiserver's certificate for localhost and the
// in-cluster names, signed by ca; it returns the certificate's DER and
// its key's PEM.
func newServingCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (der, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	if der, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey); err != nil {
		return nil, nil, err
	}
	keyPEM, err = ecKeyPEM(key)
	return der, keyPEM, err
}

// newTokens makes a bearer token per client and returns the apiserver's
// token file: token,user,uid,"group1,group2" per line.
func (c *credentials) newTokens() ([]byte, error) {
	var lines []string
	for i, name := range clients {
		token, err := randomToken()
		if err != nil {
			return nil, err
		}
		c.tokens[name] = token
		lines = append(lines, fmt.Sprintf("%s,%s,%d,\"system:masters\"", token, name, i+1))
	}
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
