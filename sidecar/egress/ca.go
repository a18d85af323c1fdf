package egress

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"
)

const (
	caValidity   = 30 * 24 * time.Hour
	leafValidity = 24 * time.Hour
	// leafRenew is how long before its expiry a cached leaf is replaced.
	leafRenew = time.Hour
	// leafCacheSize bounds the leaf cache; the least recently used leaf
	// goes first.
	leafCacheSize = 1024
)

// authority is the gateway's CA: minted in memory by New, its key never
// written anywhere or returned by any method. It signs one leaf per
// intercepted host.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	now  func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *leafEntry, most recently used first
	cache map[string]*list.Element
}

type leafEntry struct {
	host string
	cert *tls.Certificate
}

// newAuthority mints a CA: ECDSA P-256, CN "bottleform egress CA <name>",
// valid from an hour ago for 30 days, able to sign leaves only
// (MaxPathLen 0).
func newAuthority(name string, now func() time.Time) (*authority, error) {
	if name == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("egress CA: %w", err)
		}
		name = hex.EncodeToString(b)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("egress CA: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bottleform egress CA " + name, Organization: []string{"bottleform"}},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("egress CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("egress CA: %w", err)
	}
	return &authority{
		cert: cert, key: key, now: now,
		pem:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		lru:   list.New(),
		cache: map[string]*list.Element{},
	}, nil
}

// leaf returns the certificate for a normalized host (a name, or an IP
// address in canonical form), minting it if there is none in the cache or
// the cached one expires within leafRenew.
func (a *authority) leaf(host string) (*tls.Certificate, error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.cache[host]; ok {
		c := e.Value.(*leafEntry).cert
		if now.Add(leafRenew).Before(c.Leaf.NotAfter) {
			a.lru.MoveToFront(e)
			return c, nil
		}
		a.lru.Remove(e)
		delete(a.cache, host)
	}
	c, err := a.mint(host, now)
	if err != nil {
		return nil, err
	}
	a.cache[host] = a.lru.PushFront(&leafEntry{host: host, cert: c})
	for a.lru.Len() > leafCacheSize {
		old := a.lru.Remove(a.lru.Back()).(*leafEntry)
		delete(a.cache, old.host)
	}
	return c, nil
}

// mint signs a leaf for host: its own P-256 key, SAN = host (an IP SAN if
// host is an address), valid for leafValidity but never past the CA.
func (a *authority) mint(host string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("egress leaf for %s: %w", host, err)
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(host) <= 64 {
		tmpl.Subject.CommonName = host
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("egress leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("egress leaf for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// serial is a random 128-bit certificate serial number.
func serial() *big.Int {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("egress: crypto/rand failed: " + err.Error())
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}
