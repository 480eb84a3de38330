package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"

	"github.com/connlog/connlog/internal/textcut"
)

// paramSet declares the query parameters one endpoint accepts: its
// filters, limit and cursor if it is paged (see openPage), and purpose,
// which every data endpoint accepts (the guard reads it).
type paramSet struct {
	// endpoint names the endpoint in refusals, e.g. "/v1/access".
	endpoint string
	// filters are the endpoint's own parameters.
	filters []string
	// paged adds limit and cursor.
	paged bool
}

// accepts reports whether name is one of the set's parameters.
func (ps paramSet) accepts(name string) bool {
	switch name {
	case "purpose":
		return true
	case "limit", "cursor":
		return ps.paged
	}
	return slices.Contains(ps.filters, name)
}

// check refuses unknown and repeated parameters, so that a misspelt filter
// cannot silently widen a search.
func (ps paramSet) check(params url.Values) error {
	for name, vs := range params {
		if !ps.accepts(name) {
			return errorf(CodeBadRequest, fmt.Sprintf("unknown parameter %q for %s", textcut.ValidRunes(name, 40), ps.endpoint))
		}
		if len(vs) > 1 {
			return errorf(CodeBadRequest, fmt.Sprintf("parameter %q given more than once", name))
		}
	}
	return nil
}

// raw is the canonical JSON of the filters (and limit) as received,
// bounded, for the audit row of a request refused before they are parsed.
func (ps paramSet) raw(params url.Values) string {
	names := ps.filters
	if ps.paged {
		names = append(slices.Clip(names), "limit")
	}
	return rawFilters(params, names...)
}

// rawFilters is the canonical JSON of the given parameters as received,
// bounded.
func rawFilters(params url.Values, names ...string) string {
	m := map[string]any{}
	for _, n := range names {
		if vs, ok := params[n]; ok && len(vs) > 0 {
			m[n] = textcut.ValidRunes(vs[0], 100)
		}
	}
	return canonical(m)
}

// canonical encodes m as JSON with sorted keys, leaving out empty strings.
func canonical(m map[string]any) string {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	b, err := json.Marshal(m) // maps encode with sorted keys
	if err != nil {
		return "{}"
	}
	return string(b)
}
