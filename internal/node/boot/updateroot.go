package boot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/zos-go/zos/internal/release"
)

// maxRoot bounds a downloaded root metadata file.
const maxRoot = 1 << 20

// LoadUpdateRoot returns the release root the node trusts first, as
// update_root= names it: a file baked into the image, or sha256:HEX, the
// hub's first root (1.root.json) checked against that hash. The root
// must be TUF root metadata; TUF verifies it and its successors.
func LoadUpdateRoot(ctx context.Context, hub, spec string, client *http.Client) ([]byte, error) {
	if err := checkRoot(spec); err != nil {
		return nil, fmt.Errorf("update root %q: %w", spec, err)
	}
	want, pinned := strings.CutPrefix(spec, RootHashPrefix)
	if !pinned {
		b, err := os.ReadFile(spec)
		if err != nil {
			return nil, fmt.Errorf("reading the update root: %w", err)
		}
		return b, nil
	}
	if hub == "" {
		return nil, errors.New("update root by hash needs update_hub=")
	}
	u := strings.TrimRight(hub, "/") + release.MetadataPath + "1.root.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the update root: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the update root %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRoot+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the update root: %w", err)
	}
	if len(b) > maxRoot {
		return nil, fmt.Errorf("update root %s is over %d bytes", u, maxRoot)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
		return nil, fmt.Errorf("update root %s has SHA-256 %s, not the %s the command line pins", u, got, want)
	}
	return b, nil
}
