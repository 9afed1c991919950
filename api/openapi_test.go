package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIMatchesRoutes fails when a registered route is missing from
// the OpenAPI document or the document describes a route that is not
// registered, or when their authentication disagrees.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	s, err := NewServer(Config{Store: openSQLite(t)})
	require.NoError(t, err)
	registered := map[string]route{}
	for _, rt := range s.routes {
		registered[strings.ToLower(rt.method)+" "+rt.path] = rt
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			key := method + " " + path
			documented[key] = true
			rt, ok := registered[key]
			require.True(t, ok, "the document describes %s, which is not registered", key)
			var op struct {
				Security []map[string]any `json:"security"`
				Summary  string           `json:"summary"`
			}
			require.NoError(t, json.Unmarshal(raw, &op))
			open := op.Security != nil && len(op.Security) == 0
			require.Equal(t, rt.scope == "" && !strings.HasPrefix(path, "/cgi-bin"), open && !strings.HasPrefix(path, "/cgi-bin"), "%s: security in the document and the route disagree", key)
			if rt.scope != "" {
				require.Contains(t, op.Summary, "the "+rt.scope+" scope", "%s: the summary names the scope", key)
			}
		}
	}
	for key := range registered {
		require.True(t, documented[key], "route %s is not in openapi.json", key)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range registered {
			if !yield(k) {
				return
			}
		}
	})
	require.Len(t, documented, len(keys))
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, hdr := b.do(t, "GET", "/api/openapi.json", "", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	require.JSONEq(t, string(openAPIDocument), string(body))
}
