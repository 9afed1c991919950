package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route. A test
// fails when it and the route table disagree.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document served at /api/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) *problem {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
	return nil
}
