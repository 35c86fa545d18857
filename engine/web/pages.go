package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ghlflow/ghlflow/engine/api"
)

type list[T any] struct {
	Items []T `json:"items"`
}

// subRow is a subscription of the index with its detail.
type subRow struct {
	api.SubscriptionDetail
	LastPoll *pollRow
}

type pollRow struct {
	Time    string
	Result  string
	New     int
	Skipped string
}

type indexData struct {
	Tenants []api.TenantView
	Subs    []subRow
	Runs    []api.RunView
}

// maxIndexSubs caps the subscriptions the index details (one API call
// each); the API lists them all.
const maxIndexSubs = 200

func (s *Site) index(r *http.Request, key string, v *view) (string, int) {
	v.Title = "Run history"
	var d indexData
	var ts list[api.TenantView]
	var subs list[api.SubscriptionView]
	var runs list[api.RunView]
	if _, err := s.get(r, key, api.Base+"/tenants?limit=500", &ts); err != nil {
		v.Error = err.Error()
	}
	if _, err := s.get(r, key, api.Base+"/subscriptions?limit="+strconv.Itoa(maxIndexSubs), &subs); err != nil {
		v.Error = err.Error()
	}
	if _, err := s.get(r, key, api.Base+"/runs?limit=50", &runs); err != nil {
		v.Error = err.Error()
	}
	d.Tenants, d.Runs = ts.Items, runs.Items
	for _, sv := range subs.Items {
		var det api.SubscriptionDetail
		if _, err := s.get(r, key, api.Base+"/subscriptions/"+url.PathEscape(sv.ID), &det); err != nil {
			det.SubscriptionView = sv
		}
		row := subRow{SubscriptionDetail: det}
		if len(det.LastPolls) > 0 {
			p := det.LastPolls[0]
			pr := &pollRow{Time: when(p.Time), New: p.New, Result: "ok", Skipped: p.Skipped}
			switch {
			case p.Error != "":
				pr.Result = "error"
			case p.Skipped != "":
				pr.Result = "skipped"
			}
			row.LastPoll = pr
		}
		d.Subs = append(d.Subs, row)
	}
	v.Data = d
	return "index", http.StatusOK
}

type subData struct {
	Sub  api.SubscriptionDetail
	Runs []api.RunView
}

func (s *Site) subscription(r *http.Request, key string, v *view) (string, int) {
	id := r.PathValue("id")
	var d subData
	if code, err := s.get(r, key, api.Base+"/subscriptions/"+url.PathEscape(id), &d.Sub); err != nil {
		v.Title, v.Error = "Not found", err.Error()
		return "subscription", code
	}
	var runs list[api.RunView]
	if _, err := s.get(r, key, api.Base+"/runs?limit=50&subscription="+url.QueryEscape(id), &runs); err != nil {
		v.Error = err.Error()
	}
	d.Runs = runs.Items
	v.Title, v.Data = d.Sub.Recipe+" for "+d.Sub.Tenant, d
	return "subscription", http.StatusOK
}

func (s *Site) run(r *http.Request, key string, v *view) (string, int) {
	var run api.RunView
	if code, err := s.get(r, key, api.Base+"/runs/"+url.PathEscape(r.PathValue("id")), &run); err != nil {
		v.Title, v.Error = "Not found", err.Error()
		return "run", code
	}
	v.Title, v.Data = "Run of "+run.Recipe, run
	return "run", http.StatusOK
}

func (s *Site) loginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login", http.StatusOK, &view{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Site) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.render(w, "login", http.StatusBadRequest, &view{Title: "Log in", Error: "the form could not be read"})
		return
	}
	key, next := strings.TrimSpace(r.PostForm.Get("key")), safeNext(r.PostForm.Get("next"))
	probe := httpRequestWithKey(r, key)
	if _, err := s.cfg.API.Authenticate(probe); err != nil {
		s.render(w, "login", http.StatusUnauthorized, &view{Title: "Log in", Error: "that key is not valid", Next: next})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: api.CookieName, Value: key, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: api.CookieName, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func httpRequestWithKey(r *http.Request, key string) *http.Request {
	probe := r.Clone(r.Context())
	probe.Header = http.Header{}
	probe.Header.Set("Authorization", "Bearer "+key)
	return probe
}

// safeNext keeps a redirect after login on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	return next
}
