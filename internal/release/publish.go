package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Hub paths of a release repository (internal/flist/hub serves them).
const (
	MetadataPath = "/api/release/metadata/" // + N.root.json, N.targets.json, N.snapshot.json, timestamp.json
	TargetsPath  = "/api/release/targets/"  // + CHANNEL/VERSION/SHA256.NAME (consistent snapshots)
)

// Uploader sends signed requests to the hub (flist.HubClient).
type Uploader interface {
	Do(ctx context.Context, method, path string, body []byte) ([]byte, error)
}

// PublishResult says what Publish sent.
type PublishResult struct {
	Targets  []string // target paths uploaded
	Metadata []string // metadata files uploaded, in order
}

// Publish verifies the repository and uploads it to the hub: the
// artifacts first, then every root, targets, snapshot and the timestamp
// last, so a node never sees metadata naming what is not there yet.
// Nothing is sent when the repository does not verify.
func (r *Repo) Publish(ctx context.Context, up Uploader) (PublishResult, error) {
	var res PublishResult
	if err := r.Verify(); err != nil {
		return res, fmt.Errorf("not publishing: %w", err)
	}
	tps := make([]string, 0, len(r.targets.Signed.Targets))
	for tp := range r.targets.Signed.Targets {
		tps = append(tps, tp)
	}
	sort.Strings(tps)
	for _, tp := range tps {
		tf := r.targets.Signed.Targets[tp]
		data, err := os.ReadFile(filepath.Join(r.dir, "targets", filepath.FromSlash(tp)))
		if err != nil {
			return res, fmt.Errorf("reading artifact %s: %w", tp, err)
		}
		if err := tf.VerifyLengthHashes(data); err != nil {
			return res, fmt.Errorf("artifact %s changed since release add: %w", tp, err)
		}
		sum := sha256.Sum256(data)
		dir, base := path.Split(tp)
		if _, err := up.Do(ctx, http.MethodPut, TargetsPath+dir+hex.EncodeToString(sum[:])+"."+base, data); err != nil {
			return res, fmt.Errorf("uploading %s: %w", tp, err)
		}
		res.Targets = append(res.Targets, tp)
	}
	ents, err := os.ReadDir(r.metaDir())
	if err != nil {
		return res, err
	}
	var files []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".root.json") {
			files = append(files, e.Name())
		}
	}
	sort.Slice(files, func(i, j int) bool {
		return len(files[i]) < len(files[j]) || len(files[i]) == len(files[j]) && files[i] < files[j]
	})
	put := func(name string, b []byte, err error) error {
		if err != nil {
			return fmt.Errorf("encoding %s: %w", name, err)
		}
		if _, err := up.Do(ctx, http.MethodPut, MetadataPath+name, b); err != nil {
			return fmt.Errorf("uploading %s: %w", name, err)
		}
		res.Metadata = append(res.Metadata, name)
		return nil
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(r.metaDir(), f))
		if err := put(f, b, err); err != nil {
			return res, err
		}
	}
	b, err := r.targets.ToBytes(true)
	if err := put(fmt.Sprintf("%d.targets.json", r.targets.Signed.Version), b, err); err != nil {
		return res, err
	}
	b, err = r.snapshot.ToBytes(true)
	if err := put(fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version), b, err); err != nil {
		return res, err
	}
	b, err = r.timestamp.ToBytes(true)
	if err := put("timestamp.json", b, err); err != nil {
		return res, err
	}
	return res, nil
}
