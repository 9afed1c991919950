package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// readBody reads a request body of at most limit bytes. A bigger body is a
// 413, a body that is not UTF-8 a 400, a Content-Type other than JSON a 415.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, newProblem(http.StatusUnsupportedMediaType, problemUnsupported,
				fmt.Sprintf("Content-Type %q is not accepted: send the body as JSON with Content-Type: application/json", ct))
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, newProblem(http.StatusRequestEntityTooLarge, problemTooLarge,
				fmt.Sprintf("the request body is larger than %d bytes: split it into smaller batches", limit))
		}
		return nil, newProblem(http.StatusBadRequest, problemInvalid, "the request body could not be read: "+err.Error())
	}
	if !utf8.Valid(body) {
		return nil, newProblem(http.StatusBadRequest, problemInvalid, "the request body is not valid UTF-8: encode the text as UTF-8")
	}
	return body, nil
}

// decodeJSON decodes body into dst strictly: unknown fields, wrong types,
// trailing data and syntax errors are 400s that name the field or offset.
func decodeJSON(body []byte, dst any) *problem {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newProblem(http.StatusBadRequest, problemInvalid, "the request body holds more than one JSON value: send exactly one object (or array)")
	}
	return nil
}

// jsonProblem turns an encoding/json error into a 400 that says where.
func jsonProblem(err error) *problem {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return newProblem(http.StatusBadRequest, problemInvalid, "the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newProblem(http.StatusBadRequest, problemInvalid, "the request body ends in the middle of a JSON value: send complete JSON")
	case errors.As(err, &syntax):
		return newProblem(http.StatusBadRequest, problemInvalid, fmt.Sprintf("the request body is not valid JSON at byte %d: %s", syntax.Offset, syntax.Error()))
	case errors.As(err, &typeErr):
		field := strings.TrimPrefix(typeErr.Field, "NewMessage.")
		if field == "" {
			return newProblem(http.StatusBadRequest, problemInvalid, fmt.Sprintf("the request body is a JSON %s where an object was expected", typeErr.Value))
		}
		return invalid(field, "got a JSON %s, want %s", typeErr.Value, jsonKind(typeErr.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(name, "unknown field: check the spelling (field names are the Messages column names, e.g. ToAddress, Body)")
	default:
		return newProblem(http.StatusBadRequest, problemInvalid, "the request body could not be decoded: "+err.Error())
	}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a " + k
}
