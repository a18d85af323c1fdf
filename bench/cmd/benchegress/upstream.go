package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// bodySize is the size of the upstream's answer.
const bodySize = 1024

// authHeader is the response header in which the upstream says whether the
// request carried the injected credential ("injected") or not ("none").
const authHeader = "X-Bench-Auth"

// protoHeader is the response header in which the upstream names the HTTP
// version the request reached it in.
const protoHeader = "X-Bench-Upstream-Proto"

// runUpstream is `benchegress upstream`: an HTTPS server with its own CA
// that answers every request with bodySize bytes. It writes the CA to
// DIR/upstream-ca.pem, prints "ready" on stdout once it listens, and
// serves until SIGTERM or SIGINT.
func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "the `ADDRESS` to listen on")
	dir := fs.String("dir", "", "where to write upstream-ca.pem")
	names := fs.String("names", "", "comma-separated host `NAMES` the certificate is for")
	token := fs.String("token", "", "the credential the proxies inject: Authorization: Bearer TOKEN")
	_ = fs.Parse(args)
	if *dir == "" || *names == "" || *token == "" {
		return errors.New("upstream needs -dir, -names and -token")
	}
	caPEM, leaf, err := mintUpstreamCert(strings.Split(*names, ","))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "upstream-ca.pem"), caPEM, 0o644); err != nil {
		return err
	}
	body := []byte(strings.Repeat("bottleform egress bench payload.", bodySize/32))
	want := "Bearer " + *token
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			if r.Header.Get("Authorization") == want {
				h.Set(authHeader, "injected")
			} else {
				h.Set(authHeader, "none")
			}
			h.Set(protoHeader, r.Proto)
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body)
		}),
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{leaf}},
		IdleTimeout: 5 * time.Minute,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; srv.Close() }()
	fmt.Println("ready", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// mintUpstreamCert makes a CA (PEM) and a leaf for names signed by it, both
// ECDSA P-256, valid for a day.
func mintUpstreamCert(names []string) ([]byte, tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "benchegress upstream CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	leaf := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), leaf, nil
}
