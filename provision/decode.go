package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/imcall/b2bua/registry"
)

// decode reads one JSON object into v strictly: JSON content type, bounded
// size, no unknown fields, nothing after the object, and the body as sent:
// names exactly as documented and each once, text that is UTF-8 without lone
// surrogates (strict.go). encoding/json alone would take the last of two
// equal names, match names case-insensitively and store invalid text as
// U+FFFD: all ways to store something other than what the client sent.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &Error{status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "Content-Type: must be application/json"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return err
		}
		// The client went away or was too slow (httpserver's ReadTimeout):
		// its fault, not the server's.
		return &registry.ValidationError{Field: "body", Rule: "could not be read whole: " + err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return &registry.ValidationError{Field: "body", Rule: "must hold exactly one JSON object"}
	}
	// The body is valid JSON now; check what encoding/json lets through.
	return checkStrict(body, jsonNames(v))
}

// jsonError turns a decoding error into a ValidationError naming the field.
func jsonError(err error, v any) error {
	var (
		me *http.MaxBytesError
		te *json.UnmarshalTypeError
		se *json.SyntaxError
	)
	switch {
	case errors.As(err, &me):
		return err
	case errors.As(err, &te):
		if te.Field == "" {
			return &registry.ValidationError{Field: "body", Rule: "must be a JSON object"}
		}
		field, _, _ := strings.Cut(te.Field, ".")
		return &registry.ValidationError{Field: field, Rule: "must be " + jsonType(v, field)}
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &registry.ValidationError{Field: "body", Rule: "must be one valid JSON object"}
	}
	// encoding/json reports an unknown field only as text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &registry.ValidationError{Field: strings.Trim(name, `"`), Rule: "is not a known field"}
	}
	return &registry.ValidationError{Field: "body", Rule: "must be one valid JSON object"}
}

// jsonType names the JSON type the struct field tagged name expects.
func jsonType(v any, name string) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
				switch f.Type.Kind() {
				case reflect.String:
					return "a string"
				case reflect.Bool:
					return "true or false"
				case reflect.Slice:
					return "an array of strings"
				}
			}
		}
	}
	return "of another type"
}

// jsonNames gives the JSON names of the fields of the struct v points to.
func jsonNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
			names[tag] = true
		}
	}
	return names
}
