package logline

import (
	"cmp"
	"slices"
	"strings"

	"github.com/connlog/connlog/store"
)

// classifier sets the operation kind of a hit: by method, unless a rule
// for the site and path prefix says otherwise.
type classifier struct {
	rules []opRule // most specific first
}

type opRule struct {
	site, prefix, method string
	op                   store.Operation
}

func newClassifier(rules []OperationRule) (classifier, error) {
	var c classifier
	for _, r := range rules {
		op, err := parseOperation(r.Operation)
		if err != nil {
			return c, err
		}
		c.rules = append(c.rules, opRule{site: strings.ToLower(r.Site), prefix: r.PathPrefix, method: strings.ToUpper(r.Method), op: op})
	}
	slices.SortStableFunc(c.rules, func(a, b opRule) int {
		if (a.site != "") != (b.site != "") {
			if a.site != "" {
				return -1
			}
			return 1
		}
		if n := cmp.Compare(len(b.prefix), len(a.prefix)); n != 0 {
			return n
		}
		if (a.method != "") != (b.method != "") {
			if a.method != "" {
				return -1
			}
			return 1
		}
		return 0
	})
	return c, nil
}

// classify sets h.Operation.
func (c classifier) classify(h *store.Hit) {
	for i := range c.rules {
		r := &c.rules[i]
		if (r.site == "" || strings.EqualFold(r.site, h.Site)) &&
			(r.method == "" || r.method == h.Method) &&
			strings.HasPrefix(h.Path, r.prefix) {
			h.Operation = r.op
			return
		}
	}
	h.Operation = store.OperationOfMethod(h.Method)
}
