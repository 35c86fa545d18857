package sim

import (
	"net/http"
	"sort"
	"strings"

	"github.com/ghlflow/ghlflow/catalog"
)

// maxParams bounds the path parameters of one route.
const maxParams = 6

// route is one method and path of the catalog, with every operation that
// shares it (Search Contacts and Find Contact both POST /contacts/search).
type route struct {
	method  string
	path    string   // the catalog path
	segs    []string // "" marks a parameter
	params  []string // parameter names in order
	ops     []*catalog.Operation
	op      *catalog.Operation // the first operation; requests are counted under it
	app     *catalog.App
	handler handler
	literal int // number of literal segments, for precedence
}

// handler serves one matched request. It returns the status and the body:
// []byte is sent as JSON as it is, anything else is JSON-encoded.
type handler func(s *Server, c *call) (int, any)

// router holds the precomputed route table: per method, per segment count,
// the routes in order of precedence (literal segments beat parameters).
type router struct {
	table map[string]map[int][]*route
	byOp  map[string]*route
	all   []*route
}

func newRouter(s *Server, cat *catalog.Catalog) *router {
	rt := &router{table: map[string]map[int][]*route{}, byOp: map[string]*route{}}
	index := map[string]*route{}
	for _, op := range cat.Ops() {
		key := op.Method + " " + trimSlash(op.Path)
		r := index[key]
		if r == nil {
			r = &route{method: op.Method, path: op.Path, op: op, app: cat.App(op.App)}
			for _, seg := range splitPath(trimSlash(op.Path)) {
				if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
					r.segs = append(r.segs, "")
					r.params = append(r.params, seg[1:len(seg)-1])
				} else {
					r.segs = append(r.segs, seg)
					r.literal++
				}
			}
			index[key] = r
			rt.all = append(rt.all, r)
			m := rt.table[op.Method]
			if m == nil {
				m = map[int][]*route{}
				rt.table[op.Method] = m
			}
			m[len(r.segs)] = append(m[len(r.segs)], r)
		}
		r.ops = append(r.ops, op)
		rt.byOp[op.ID] = r
	}
	for _, r := range rt.all {
		r.handler = handlerFor(r)
	}
	for _, m := range rt.table {
		for n, list := range m {
			sort.SliceStable(list, func(i, j int) bool { return precedes(list[i], list[j]) })
			m[n] = list
		}
	}
	return rt
}

// precedes orders routes so that, at the first segment where they differ in
// kind, a literal comes before a parameter.
func precedes(a, b *route) bool {
	for i := range a.segs {
		al, bl := a.segs[i] != "", b.segs[i] != ""
		if al != bl {
			return al
		}
	}
	return false
}

// match finds the route of a request path and fills params with the values
// of its parameters. It allocates nothing but the returned values.
func (rt *router) match(method, path string, params *[maxParams]string) *route {
	m := rt.table[method]
	if m == nil {
		return nil
	}
	path = trimSlash(path)
	n := strings.Count(path, "/")
	for _, r := range m[n] {
		if matchSegs(r, path, params) {
			return r
		}
	}
	return nil
}

func matchSegs(r *route, path string, params *[maxParams]string) bool {
	rest := path
	pi := 0
	for _, seg := range r.segs {
		rest = rest[1:] // the leading slash
		end := strings.IndexByte(rest, '/')
		var part string
		if end < 0 {
			part, rest = rest, ""
		} else {
			part, rest = rest[:end], rest[end:]
		}
		if seg == "" {
			if part == "" || pi >= maxParams {
				return false
			}
			params[pi] = part
			pi++
		} else if seg != part {
			return false
		}
	}
	return true
}

func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// Route reports the method and path the simulator serves an operation on.
func (s *Server) Route(opID string) (method, path string, ok bool) {
	r := s.routes.byOp[opID]
	if r == nil {
		return "", "", false
	}
	return r.method, r.path, true
}

// notFound answers a path no operation serves, in GHL's shape.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "Cannot "+r.Method+" "+r.URL.Path)
}
