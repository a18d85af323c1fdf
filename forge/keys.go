package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bottleform/bottleform/applier"
	"github.com/bottleform/bottleform/resource"
)

// DeployKeys mints and revokes `key "gitea"` deploy keys for the applier,
// from a deploy key object's attributes (api_url, repository, token) and,
// for a revocation, the ids the state records (key_id).
type DeployKeys struct {
	// Client is the HTTP client; nil means Gitea's default.
	Client *http.Client
	// Now stamps key titles; nil means time.Now.
	Now func() time.Time
}

var _ applier.Keys = (*DeployKeys)(nil)

// Mint generates an ed25519 key pair and registers its public half as a
// read-write deploy key of the entry's repository. The state gets the key's
// id, title and public fingerprint; the private key goes back to the applier
// only.
func (k *DeployKeys) Mint(ctx context.Context, op *applier.Op) (map[string]string, resource.Secret, error) {
	g, owner, repo, err := k.client(op, op.Attrs)
	if err != nil {
		return nil, resource.Secret{}, err
	}
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	lineage := op.Lineage
	if len(lineage) > 8 {
		lineage = lineage[:8]
	}
	prefix := fmt.Sprintf("bottleform %s/%s %s ", op.Addr.Bottle, op.Addr.Key, lineage)
	// The applier mints only when the state records no key for this
	// entry: a key with this prefix is one an interrupted apply made and
	// never recorded. It is revoked, so that no key outlives its record.
	existing, err := g.ListDeployKeys(ctx, owner, repo)
	if err != nil {
		return nil, resource.Secret{}, err
	}
	for _, e := range existing {
		if strings.HasPrefix(e.Title, prefix) {
			if err := g.DeleteDeployKey(ctx, owner, repo, e.ID); err != nil {
				return nil, resource.Secret{}, fmt.Errorf("revoke the unrecorded deploy key %d (%q) an interrupted apply left: %w", e.ID, e.Title, err)
			}
		}
	}
	title := prefix + now().UTC().Format("2006-01-02T15:04:05.000Z")
	priv, pub, err := GenerateKey(title)
	if err != nil {
		return nil, resource.Secret{}, err
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		return nil, resource.Secret{}, fmt.Errorf("forge: parse the new public key: %w", err)
	}
	id, err := g.CreateDeployKey(ctx, owner, repo, title, pub, false)
	if err != nil {
		return nil, resource.Secret{}, err
	}
	ids := map[string]string{"key_id": strconv.FormatInt(id, 10), "title": title, "fingerprint": ssh.FingerprintSHA256(pk)}
	return ids, resource.NewSecret(string(priv)), nil
}

// Revoke deletes the deploy key the state records. A key Gitea no longer
// has counts as revoked; any other failure is returned, and the key stays
// in the state for a later run to finish.
func (k *DeployKeys) Revoke(ctx context.Context, op *applier.Op) error {
	if op.Prior == nil {
		return errors.New("forge: no recorded deploy key to revoke (applier bug)")
	}
	g, owner, repo, err := k.client(op, op.Prior.Attrs)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(op.Prior.IDs["key_id"], 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("forge: the state records no valid key_id for %s (%q); revoke the key by hand on %s/%s and remove it with bottleform state rm", op.Addr, op.Prior.IDs["key_id"], owner, repo)
	}
	return g.DeleteDeployKey(ctx, owner, repo, id)
}

// client builds the Gitea client a deploy key's attributes address.
func (k *DeployKeys) client(op *applier.Op, attrs resource.Attrs) (*Gitea, string, string, error) {
	api := attrs["api_url"].Str
	owner, repo, ok := strings.Cut(attrs["repository"].Str, "/")
	if api == "" || !ok {
		return nil, "", "", fmt.Errorf("forge: %s has no api_url or owner/repo repository", op.Addr)
	}
	ref, err := resource.ParseRef(attrs["token"].Str)
	if err != nil {
		return nil, "", "", fmt.Errorf("forge: %s: token: %w", op.Addr, err)
	}
	tok, ok := op.Secrets.Value(ref)
	if !ok {
		return nil, "", "", fmt.Errorf("forge: the value of %s, the Gitea token of %s, was not resolved", ref, op.Addr)
	}
	return &Gitea{BaseURL: api, Token: tok, Client: k.Client}, owner, repo, nil
}
