package flist

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/zos-go/zos/internal/identity"
)

// KeySigner signs hub requests as a twin.
type KeySigner struct {
	Twin uint32
	Key  identity.Key
}

var _ Signer = KeySigner{}

// TwinID returns the twin.
func (s KeySigner) TwinID() uint32 { return s.Twin }

// Sign signs msg with the twin's key.
func (s KeySigner) Sign(msg []byte) []byte { return s.Key.Sign(msg) }

// HubInfo describes a flist or a tag on a hub.
type HubInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Target  string `json:"target,omitempty"`
	Size    int64  `json:"size"`
	MD5     string `json:"md5"`
	Updated int64  `json:"updated"`
	Owner   uint32 `json:"owner,omitempty"`
}

func flistPath(repo, name string) string {
	return "/api/flist/" + url.PathEscape(repo) + "/" + url.PathEscape(name)
}

// Upload stores a flist file's bytes as repo/name.
func (c *HubClient) Upload(ctx context.Context, repo, name string, data []byte) (HubInfo, error) {
	var info HubInfo
	out, err := c.Do(ctx, http.MethodPut, flistPath(repo, name), data)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(out, &info)
}

// Tag points repo/tag at the flist repo/target.
func (c *HubClient) Tag(ctx context.Context, repo, tag, target string) (HubInfo, error) {
	var info HubInfo
	body, _ := json.Marshal(map[string]string{"target": target})
	out, err := c.Do(ctx, http.MethodPut, "/api/flist/"+url.PathEscape(repo)+"/tags/"+url.PathEscape(tag), body)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(out, &info)
}

// Repos lists the repositories.
func (c *HubClient) Repos(ctx context.Context) ([]string, error) {
	var out []string
	b, err := c.Do(ctx, http.MethodGet, "/api/flist", nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("reading repositories: %w", err)
	}
	return out, nil
}

// List lists the flists and tags of a repository.
func (c *HubClient) List(ctx context.Context, repo string) ([]HubInfo, error) {
	var out []HubInfo
	b, err := c.Do(ctx, http.MethodGet, "/api/flist/"+url.PathEscape(repo), nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("reading repository %s: %w", repo, err)
	}
	return out, nil
}

// Download fetches the flist (or the flist a tag names) repo/name.
func (c *HubClient) Download(ctx context.Context, repo, name string) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, "/"+url.PathEscape(repo)+"/"+url.PathEscape(name), nil)
}
