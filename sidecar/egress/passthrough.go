package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// passthrough checks the ClientHello of an accepted tunnel and splices it
// to the upstream: the SNI must name the CONNECT host (an address route,
// whose clients send no SNI, may have none), and the route must still be
// granted for passthrough. The upstream is dialled at the checked address
// on the pinned port 443, the ClientHello replayed, and bytes copied both
// ways until both sides are done. The gateway cannot see or change what is
// inside: no path check, no credential injection, no stripping; the client
// verifies the upstream's own certificate. A refusal closes the tunnel
// without a word (the client is mid-handshake; there is no HTTP to answer
// with), and is logged.
func (g *Gateway) passthrough(t *tunnel) {
	p := g.pol.Load()
	rec := &record{method: http.MethodConnect, host: t.host, route: t.host, bytes: -1}
	_ = t.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hello, sni, err := readClientHello(t.conn)
	_ = t.conn.SetReadDeadline(time.Time{})
	rec.reason = reasonGranted
	switch r := p.routes[t.host]; {
	case err != nil:
		rec.reason = reasonNotTLS
	case r == nil || r.TLS != TLSPassthrough:
		rec.reason = reasonNotGranted
	default:
		rec.reason = decideSNI(t.host, sni)
	}
	if rec.reason != reasonGranted {
		rec.status = rec.reason.status()
		g.logDecision(context.Background(), p, rec)
		return
	}
	rec.allow = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	up, err := g.dialChecked(ctx, t.addrs, g.port443)
	cancel()
	if err != nil {
		rec.reason, rec.status = reasonUpstream, http.StatusBadGateway
		g.logDecision(context.Background(), p, rec)
		return
	}
	defer up.Close()
	rec.status = http.StatusOK
	g.logDecision(context.Background(), p, rec)
	if _, err := up.Write(hello); err != nil {
		return
	}
	splice(t.conn, up)
}

// decideSNI checks a passthrough ClientHello's server name against the
// normalized CONNECT host.
func decideSNI(host, sni string) reason {
	if sni == "" {
		if _, err := netip.ParseAddr(host); err == nil {
			return reasonGranted
		}
		return reasonSNIMismatch
	}
	if n, ok := normalizeHost(sni); !ok || n != host {
		return reasonSNIMismatch
	}
	return reasonGranted
}

// maxHello bounds the bytes read while looking for the ClientHello (a
// post-quantum key share makes it a few KiB; this leaves room).
const maxHello = 64 << 10

var (
	errHelloSeen     = errors.New("client hello read")
	errHelloTooLarge = errors.New("client hello too large")
)

// readClientHello reads a TLS ClientHello from c without answering it: it
// lets crypto/tls parse the hello on a connection that records what is
// read and swallows what is written, and stops it in GetConfigForClient.
// It returns every byte read, to be replayed upstream, and the SNI.
func readClientHello(c net.Conn) (read []byte, sni string, err error) {
	rec := &helloConn{Conn: c}
	seen := false
	err = tls.Server(rec, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			seen, sni = true, h.ServerName
			return nil, errHelloSeen
		},
	}).Handshake()
	if !seen {
		return nil, "", err
	}
	return rec.buf.Bytes(), sni, nil
}

// helloConn records reads (up to maxHello) and discards writes, so the
// alert crypto/tls sends when readClientHello stops it never reaches the
// client.
type helloConn struct {
	net.Conn
	buf bytes.Buffer
}

func (h *helloConn) Read(b []byte) (int, error) {
	if h.buf.Len() >= maxHello {
		return 0, errHelloTooLarge
	}
	if len(b) > maxHello-h.buf.Len() {
		b = b[:maxHello-h.buf.Len()]
	}
	n, err := h.Conn.Read(b)
	h.buf.Write(b[:n])
	return n, err
}

func (h *helloConn) Write(b []byte) (int, error) { return len(b), nil }
func (h *helloConn) Close() error                { return nil }

// splice copies bytes both ways between the client and the upstream. When
// one direction ends, the other side's write half is closed; the tunnel
// ends when both directions have, or a minute after the first did.
func splice(client, up net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(up, client)
	go cp(client, up)
	<-done
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	client.Close()
	up.Close()
}
