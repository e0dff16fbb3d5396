package convert

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// Write writes objects as YAML documents separated by ---, as kubectl
// apply and pipit validate read them.
func Write(w io.Writer, objects []any) error {
	for i, o := range objects {
		m, err := manifest(o)
		if err != nil {
			return err
		}
		b, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// manifest returns o as a JSON-shaped map without what the API server
// writes itself (the status, the creation time).
func manifest(o any) (map[string]any, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return m, nil
}
