package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/bottleform/bottleform/resource"
)

// Config is the sidecar's whole configuration: the one wire type between
// bottleform on the host and the daemons in the sidecar. It is produced
// from a bottle in one function, FromBottle, so the two sides cannot drift
// apart. It holds slot names, never secret values.
type Config struct {
	Bottle    string  `json:"bottle"`
	Routes    []Route `json:"routes"`
	Repos     []Repo  `json:"repos,omitempty"`
	Supervise bool    `json:"supervise,omitempty"`
	// UpstreamCAs are PEM certificates the gateway trusts upstream besides
	// the system roots (public certificates, not secrets).
	UpstreamCAs string `json:"upstream_cas,omitempty"`
}

// Route is one egress route as the gateway sees it.
type Route struct {
	Host  string   `json:"host"`
	TLS   string   `json:"tls"`
	Paths []string `json:"paths,omitempty"`
	// AuthScheme and TokenSlot are set together on credentialed routes: the
	// gateway injects "Authorization: <AuthScheme> <value of TokenSlot>".
	AuthScheme string `json:"auth_scheme,omitempty"`
	TokenSlot  string `json:"token_slot,omitempty"`
	// AllowPrivate lets the host resolve to a private address.
	AllowPrivate bool `json:"allow_private_ip,omitempty"`
	// Methods are the HTTP methods forwarded (empty: all, or only reads
	// on a repo's host).
	Methods []string `json:"methods,omitempty"`
}

// Repo is one git entry as the gate sees it.
type Repo struct {
	Name    string   `json:"name"`
	User    string   `json:"user"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Path    string   `json:"path"`
	HostKey string   `json:"host_key"`
	Push    []string `json:"push,omitempty"`
	// KeySlot names the slot holding the private key.
	KeySlot string `json:"key_slot"`
}

// FromBottle builds the sidecar configuration of an effective bottle (one
// whose provider routes are merged and slots assigned).
func FromBottle(b *resource.Bottle) Config {
	c := Config{Bottle: b.Name, Supervise: b.Supervise, Routes: []Route{}, UpstreamCAs: b.UpstreamCA}
	for _, r := range b.Egress {
		w := Route{Host: r.Host, TLS: r.TLS, Paths: r.Paths, AllowPrivate: r.AllowPrivate, Methods: r.Methods}
		if r.Auth != nil {
			w.AuthScheme, w.TokenSlot = r.Auth.Scheme, r.Slot
		}
		c.Routes = append(c.Routes, w)
	}
	for _, g := range b.Git {
		c.Repos = append(c.Repos, Repo{
			Name: g.Name, User: g.User, Host: g.Host, Port: g.Port, Path: g.Path,
			HostKey: g.HostKey, Push: g.Push, KeySlot: "GIT_KEY_" + g.Name,
		})
	}
	return c
}

// Delivery is what the host sends to the sidecar's control socket: the
// configuration and the values of its slots. It exists only in memory and
// on that socket; it is never written to disk or passed on argv.
type Delivery struct {
	Config Config            `json:"config"`
	Slots  map[string]string `json:"slots"`
	// Keep names slots whose value the sidecar keeps from the
	// configuration in force: the private keys of deploy keys minted by an
	// earlier apply, which live nowhere but in the sidecar. A kept slot the
	// sidecar does not have is missing.
	Keep []string `json:"keep,omitempty"`
	// Canaries are the bottle's other secret values (its agent's env
	// secrets and tokens), by reference name: the git gate refuses a push
	// that contains one, as it does one that contains a slot's value.
	Canaries map[string]string `json:"canaries,omitempty"`
}

// Digest identifies a configuration: the sha256 of its JSON encoding. It
// covers slot names, never slot values, so it can be shown and logged.
func (c Config) Digest() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic("sidecar: config digest: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// RequiredSlots returns the token slots of the credentialed routes, in
// route order, then the key slots of the repos: the slots a delivery must
// fill for the gateway to inject every credential it was granted and for
// the gate to reach every upstream.
func (c Config) RequiredSlots() []string {
	var slots []string
	for _, r := range c.Routes {
		if r.TokenSlot != "" {
			slots = append(slots, r.TokenSlot)
		}
	}
	for _, g := range c.Repos {
		if g.KeySlot != "" {
			slots = append(slots, g.KeySlot)
		}
	}
	return slots
}

// Validate checks a delivery before the sidecar takes it: a bottle name,
// one route per host with a known TLS mode, auth scheme and token slot set
// together, unique repo names, and no slot value the configuration does not
// name. Errors name hosts, repos and slots, never a slot's value. A slot
// the configuration names but the delivery leaves empty is not an error:
// the sidecar reports it as missing and refuses that route's traffic.
func (d *Delivery) Validate() error {
	c := d.Config
	if c.Bottle == "" {
		return errors.New("config.bottle is empty")
	}
	named := map[string]bool{}
	hosts := map[string]bool{}
	for i, r := range c.Routes {
		switch {
		case r.Host == "":
			return fmt.Errorf("config.routes[%d]: host is empty", i)
		case hosts[r.Host]:
			return fmt.Errorf("config.routes[%d]: host %s has more than one route", i, r.Host)
		case r.TLS != resource.TLSIntercept && r.TLS != resource.TLSPassthrough:
			return fmt.Errorf("route %s: tls is %q, want %q or %q", r.Host, r.TLS, resource.TLSIntercept, resource.TLSPassthrough)
		case (r.AuthScheme == "") != (r.TokenSlot == ""):
			return fmt.Errorf("route %s: auth_scheme and token_slot must be set together", r.Host)
		case r.TokenSlot != "" && r.TLS != resource.TLSIntercept:
			return fmt.Errorf("route %s: a credentialed route must be intercepted to inject its credential", r.Host)
		}
		hosts[r.Host] = true
		if r.TokenSlot != "" {
			named[r.TokenSlot] = true
		}
	}
	repos := map[string]bool{}
	for i, g := range c.Repos {
		switch {
		case g.Name == "":
			return fmt.Errorf("config.repos[%d]: name is empty", i)
		case repos[g.Name]:
			return fmt.Errorf("config.repos[%d]: repo %s appears twice", i, g.Name)
		}
		repos[g.Name] = true
		if g.KeySlot != "" {
			named[g.KeySlot] = true
		}
	}
	for _, s := range slices.Sorted(maps.Keys(d.Slots)) {
		if !named[s] {
			return fmt.Errorf("slot %s is not named by the configuration", s)
		}
	}
	for _, s := range d.Keep {
		if !named[s] {
			return fmt.Errorf("kept slot %s is not named by the configuration", s)
		}
		if _, ok := d.Slots[s]; ok {
			return fmt.Errorf("slot %s is both delivered and kept", s)
		}
	}
	return nil
}
