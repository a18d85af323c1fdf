package sidecar

import (
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
	c := Config{Bottle: b.Name, Supervise: b.Supervise, Routes: []Route{}}
	for _, r := range b.Egress {
		w := Route{Host: r.Host, TLS: r.TLS, Paths: r.Paths}
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
}
