package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/history"
)

// RunView is one run (attempt) of a chain.
type RunView struct {
	// ID is SUBSCRIPTION.NANOS: the subscription and the run's start.
	ID           string     `json:"id"`
	Subscription string     `json:"subscription"`
	Tenant       string     `json:"tenant"`
	Recipe       string     `json:"recipe"`
	ItemKey      string     `json:"item_key"`
	TaskID       string     `json:"task_id,omitempty"`
	Status       string     `json:"status"`
	Time         time.Time  `json:"time"`
	TookMS       float64    `json:"took_ms"`
	Error        string     `json:"error,omitempty"`
	Steps        []StepView `json:"steps,omitempty"`
}

// StepView is one step of a run: its rendered input, output, error and
// duration.
type StepView struct {
	Op     string          `json:"op"`
	Status string          `json:"status"`
	ID     string          `json:"id,omitempty"`
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	TookMS float64         `json:"took_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runID(sub string, t time.Time) string { return sub + "." + strconv.FormatInt(t.UnixNano(), 10) }

func runView(s *engine.Subscription, c history.Chain, steps bool) RunView {
	v := RunView{ID: runID(s.ID, c.Time), Subscription: s.ID, Tenant: s.Tenant.ID, Recipe: c.Recipe, ItemKey: c.ItemKey,
		TaskID: c.TaskID, Status: c.Status, Time: c.Time.UTC(), TookMS: ms(c.Took), Error: auth.Redact(c.Error)}
	if steps {
		v.Steps = make([]StepView, len(c.Steps))
		for i, st := range c.Steps {
			v.Steps[i] = StepView{Op: st.Op, Status: st.Status, ID: st.ID, Input: st.Input, Output: st.Output,
				Error: auth.Redact(st.Error), TookMS: ms(st.Took)}
		}
	}
	return v
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	q := r.URL.Query()
	status, ok := enumFilter(w, r, "status", engine.RecordedChainStatuses())
	if !ok {
		return
	}
	tenantID := q.Get("tenant")
	var out []RunView
	if !k.Operator() {
		if tenantID != "" && tenantID != k.Tenant {
			if l, ok := page(w, r, []RunView{}); ok { // another tenant's: nothing to see
				writeJSON(w, http.StatusOK, l)
			}
			return
		}
		tenantID = k.Tenant
	}
	if id := q.Get("subscription"); id != "" {
		s, ok := a.sub(w, k, id)
		if !ok {
			return
		}
		// A subscription's own history: at most a page's end of its runs
		// (all it keeps with a status filter).
		n := 0
		if status == "" {
			n = pageEnd(r) + 1
		}
		runs, err := a.history.Chains(r.Context(), s.ID, n)
		if err != nil {
			a.internal(w, r, err)
			return
		}
		for _, c := range runs {
			if (status == "" || c.Status == status) && (tenantID == "" || s.Tenant.ID == tenantID) {
				out = append(out, runView(s, c, false))
			}
		}
	} else {
		// The index of the newest runs, of all or of the tenant: one read
		// whatever the number of subscriptions.
		recent, err := a.history.Recent(r.Context(), tenantID)
		if err != nil {
			a.internal(w, r, err)
			return
		}
		for _, rr := range recent {
			s, ok := a.cfg.Subscriptions.Get(rr.Sub)
			if !ok || (tenantID != "" && s.Tenant.ID != tenantID) || (status != "" && rr.Status != status) {
				continue // removed since, or not the key's
			}
			out = append(out, runView(s, rr.Chain, false))
		}
	}
	if out == nil {
		out = []RunView{}
	}
	if l, ok := page(w, r, out); ok {
		writeJSON(w, http.StatusOK, l)
	}
}

// run finds run id for key k.
func (a *API) run(w http.ResponseWriter, r *http.Request, k apikey.Key, id string) (*engine.Subscription, history.Chain, bool) {
	subID, nanos, _ := strings.Cut(id, ".")
	s, ok := a.cfg.Subscriptions.Get(subID)
	if !ok || (!k.Operator() && s.Tenant.ID != k.Tenant) {
		notFound(w, "run", id)
		return nil, history.Chain{}, false
	}
	cs, err := a.history.Chains(r.Context(), s.ID, 0)
	if err != nil {
		a.internal(w, r, err)
		return nil, history.Chain{}, false
	}
	for _, c := range cs {
		if strconv.FormatInt(c.Time.UnixNano(), 10) == nanos {
			return s, c, true
		}
	}
	notFound(w, "run", id)
	return nil, history.Chain{}, false
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	if s, c, ok := a.run(w, r, k, r.PathValue("id")); ok {
		writeJSON(w, http.StatusOK, runView(s, c, true))
	}
}

func (a *API) retryRun(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	_, c, ok := a.run(w, r, k, r.PathValue("id"))
	if !ok {
		return
	}
	info, err := a.inspect.GetTaskInfo(a.chainQueue(), c.TaskID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		writeError(w, http.StatusConflict, "not_archived", "the run's task is no longer kept; replay its item instead", "")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if info.State != asynq.TaskStateArchived {
		writeError(w, http.StatusConflict, "not_archived", "the run's task is "+info.State.String()+", not archived", "")
		return
	}
	if err := a.inspect.RunTask(a.chainQueue(), c.TaskID); err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Replay{TaskID: c.TaskID, Queue: a.chainQueue()})
}
