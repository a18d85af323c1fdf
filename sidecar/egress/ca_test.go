package egress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCA(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gw, err := New(Options{Bottle: "reviewer", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(gw.CACertPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CACertPEM is not one PEM certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Subject.CommonName != "bottleform egress CA reviewer" {
		t.Errorf("CN %q", ca.Subject.CommonName)
	}
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("IsCA %v MaxPathLen %d zero %v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if k, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.PublicKey)
	}
	if got := ca.NotAfter.Sub(now); got != 30*24*time.Hour {
		t.Errorf("CA valid for %v after now, want 30 days", got)
	}
	if strings.Contains(string(gw.CACertPEM()), "PRIVATE") {
		t.Error("CACertPEM holds a private key")
	}
	if other, _ := New(Options{}); !strings.HasPrefix(other.ca.cert.Subject.CommonName, "bottleform egress CA ") ||
		len(other.ca.cert.Subject.CommonName) <= len("bottleform egress CA ") {
		t.Errorf("unnamed CA CN %q", other.ca.cert.Subject.CommonName)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"api.test", "10.0.0.5", "2001:db8::1"} {
		c, err := gw.ca.leaf(host)
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now}
		if _, err := c.Leaf.Verify(opts); err != nil {
			t.Errorf("leaf for %s: %v", host, err)
		}
		if strings.Contains(host, ".test") && (len(c.Leaf.DNSNames) != 1 || len(c.Leaf.IPAddresses) != 0) {
			t.Errorf("leaf for %s: DNS %v IP %v", host, c.Leaf.DNSNames, c.Leaf.IPAddresses)
		}
		if !strings.Contains(host, ".test") && (len(c.Leaf.IPAddresses) != 1 || len(c.Leaf.DNSNames) != 0) {
			t.Errorf("leaf for %s: DNS %v IP %v", host, c.Leaf.DNSNames, c.Leaf.IPAddresses)
		}
		if c.Leaf.IsCA {
			t.Errorf("leaf for %s is a CA", host)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots, CurrentTime: now}); err == nil {
			t.Errorf("leaf for %s verifies for other.test", host)
		}
	}
}

func TestLeafCache(t *testing.T) {
	now := time.Now()
	a, err := newAuthority("cache", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	first, _ := a.leaf("api.test")
	if again, _ := a.leaf("api.test"); again != first {
		t.Error("a cached leaf was minted again")
	}
	// Close to its expiry, a leaf is replaced.
	now = first.Leaf.NotAfter.Add(-leafRenew / 2)
	renewed, _ := a.leaf("api.test")
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("a leaf about to expire was not renewed")
	}
	// Leaves never outlive the CA.
	now = a.cert.NotAfter.Add(-2 * time.Hour)
	late, _ := a.leaf("late.test")
	if late.Leaf.NotAfter.After(a.cert.NotAfter) {
		t.Errorf("leaf expires %v, after the CA (%v)", late.Leaf.NotAfter, a.cert.NotAfter)
	}
	// The cache is bounded, least recently used first out.
	now = time.Now()
	keep, _ := a.leaf("api.test")
	for i := range leafCacheSize {
		a.leaf(fmt.Sprintf("h%d.test", i))
		if i%100 == 0 {
			a.leaf("api.test") // stays recently used
		}
	}
	if a.lru.Len() != leafCacheSize || len(a.cache) != leafCacheSize {
		t.Errorf("cache holds %d/%d leaves, want %d", a.lru.Len(), len(a.cache), leafCacheSize)
	}
	if got, _ := a.leaf("api.test"); got != keep {
		t.Error("a recently used leaf was evicted")
	}
	if _, ok := a.cache["h0.test"]; ok {
		t.Error("the least recently used leaf was kept")
	}
}
