package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/zos-go/zos/internal/gridtypes"
)

// sizeKeys are the keys of workload data that hold a size in bytes; in a
// YAML file they may be written with a unit ("1G", "512M") as on the
// command line.
var sizeKeys = map[string]bool{"size": true, "memory": true, "cache": true}

// decodeDeployment reads a deployment written by hand: JSON as it is, or
// YAML with YAML 1.2 semantics (only true and false are booleans, so a
// workload named y, n, on or no stays a string) and sizes with units in
// workload data. The result is checked no further than gridtypes.Decode.
func decodeDeployment(b []byte) (*gridtypes.Deployment, error) {
	if len(b) > gridtypes.MaxDeploymentBytes {
		return nil, fmt.Errorf("deployment is %d bytes, more than the limit of %d", len(b), gridtypes.MaxDeploymentBytes)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, fmt.Errorf("deployment is empty")
	}
	if t[0] == '{' {
		return gridtypes.Decode(b)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decoding deployment YAML: %w", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding deployment YAML: the document is not a mapping")
	}
	if wls, ok := top["workloads"].([]any); ok {
		for i, w := range wls {
			wl, ok := w.(map[string]any)
			if !ok {
				continue // gridtypes.Decode says what is wrong
			}
			if err := sizesWithUnits(wl["data"], ""); err != nil {
				return nil, fmt.Errorf("workloads[%d] (%v): %w", i, wl["name"], err)
			}
		}
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("decoding deployment YAML: %w", err)
	}
	return gridtypes.Decode(j)
}

// sizesWithUnits replaces, in place, the string values of size keys in v
// (workload data) by their number of bytes; path names v in errors.
func sizesWithUnits(v any, path string) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if s, ok := e.(string); ok && sizeKeys[k] {
				n, err := gridtypes.ParseSize(s)
				if err != nil {
					return fmt.Errorf("data.%s: %w", p, err)
				}
				x[k] = n
				continue
			}
			if err := sizesWithUnits(e, p); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := sizesWithUnits(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}
