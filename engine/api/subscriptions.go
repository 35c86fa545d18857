package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/auth"
	"github.com/ghlflow/ghlflow/engine/history"
	"github.com/ghlflow/ghlflow/engine/scheduler"
)

// Subscription statuses.
const (
	SubActive           = "active"
	SubPaused           = "paused"
	SubTenantPaused     = "tenant_paused"
	SubConnectionPaused = "connection_paused"
)

// subStatuses are the statuses of SubscriptionView.
func subStatuses() []string {
	return []string{SubActive, SubPaused, SubTenantPaused, SubConnectionPaused}
}

// SubscriptionView is a subscription as lists show it.
type SubscriptionView struct {
	ID         string `json:"id"`
	Tenant     string `json:"tenant"`
	Recipe     string `json:"recipe"`
	Trigger    string `json:"trigger"`
	Connection string `json:"connection"`
	// ConnectionStatus is the trigger connection's status (ok,
	// needs_reauth, paused; "static" for a connection of the static file
	// in force).
	ConnectionStatus string `json:"connection_status"`
	Every            string `json:"every"`
	Status           string `json:"status"`
	// Reason says why a paused subscription is paused.
	Reason  string     `json:"reason,omitempty"`
	NextDue *time.Time `json:"next_due,omitempty"`
}

// subView is s as lists show it, without its next due time (withDue adds
// it). statuses keeps the connections' statuses the request has read, so
// that the many subscriptions of one connection read it once.
func (a *API) subView(ctx context.Context, s *engine.Subscription, pauses map[string]engine.SubPause, statuses map[string]string) SubscriptionView {
	v := SubscriptionView{ID: s.ID, Tenant: s.Tenant.ID, Recipe: s.Recipe.Name, Trigger: s.Op.ID, Connection: s.Connection,
		Every: s.Every.String(), Status: SubActive, ConnectionStatus: ConnectionStatic}
	if st, ok := statuses[s.Connection]; ok {
		v.ConnectionStatus = st
	} else {
		c, err := auth.GetConnection(ctx, a.cfg.Redis, a.cfg.Prefix, s.Connection)
		switch {
		case err == nil:
			v.ConnectionStatus = c.Status
		case errors.Is(err, auth.ErrNotFound):
			v.ConnectionStatus, _, _ = a.staticStatus(ctx, s.Connection)
		}
		statuses[s.Connection] = v.ConnectionStatus
	}
	switch sp, paused := pauses[s.ID]; {
	case paused:
		v.Status, v.Reason = SubPaused, sp.Reason
	case !s.Tenant.Active():
		v.Status, v.Reason = SubTenantPaused, "tenant "+s.Tenant.ID+" is "+s.Tenant.Status
	case v.ConnectionStatus != ConnectionStatic && v.ConnectionStatus != auth.StatusOK:
		v.Status, v.Reason = SubConnectionPaused, "connection "+s.Connection+" is "+v.ConnectionStatus
	}
	return v
}

// withDue sets the next due time of the active subscriptions among views
// (one round trip); every says each one's interval by id.
func (a *API) withDue(ctx context.Context, views []SubscriptionView, every map[string]time.Duration) {
	var entries []scheduler.Entry
	var at []int
	for i, v := range views {
		if v.Status == SubActive && every[v.ID] > 0 {
			entries = append(entries, scheduler.Entry{ID: v.ID, Every: every[v.ID]})
			at = append(at, i)
		}
	}
	due, err := scheduler.DueAt(ctx, a.cfg.Redis, a.cfg.Prefix, entries...)
	if err != nil {
		return // shown without it
	}
	for j, i := range at {
		if !due[j].IsZero() {
			views[i].NextDue = &due[j]
		}
	}
}

// oneView is s's view with its next due time.
func (a *API) oneView(ctx context.Context, s *engine.Subscription, pauses map[string]engine.SubPause) SubscriptionView {
	v := []SubscriptionView{a.subView(ctx, s, pauses, map[string]string{})}
	a.withDue(ctx, v, map[string]time.Duration{s.ID: s.Every})
	return v[0]
}

// visibleSubs returns the subscriptions key k reaches, sorted by tenant
// and recipe.
func (a *API) visibleSubs(k apikey.Key) []*engine.Subscription {
	var out []*engine.Subscription
	for _, s := range a.cfg.Subscriptions.All() {
		if k.Operator() || s.Tenant.ID == k.Tenant {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant.ID != out[j].Tenant.ID {
			return out[i].Tenant.ID < out[j].Tenant.ID
		}
		return out[i].Recipe.Name < out[j].Recipe.Name
	})
	return out
}

// sub finds subscription id for key k: another tenant's answers 404.
func (a *API) sub(w http.ResponseWriter, k apikey.Key, id string) (*engine.Subscription, bool) {
	s, ok := a.cfg.Subscriptions.Get(id)
	if !ok || (!k.Operator() && s.Tenant.ID != k.Tenant) {
		notFound(w, "subscription", id)
		return nil, false
	}
	return s, true
}

func (a *API) listSubs(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	pauses, err := a.pauses.All(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	q := r.URL.Query()
	status, ok := enumFilter(w, r, "status", subStatuses())
	if !ok {
		return
	}
	out := []SubscriptionView{}
	statuses := map[string]string{}
	every := map[string]time.Duration{}
	for _, s := range a.visibleSubs(k) {
		if (q.Get("tenant") != "" && s.Tenant.ID != q.Get("tenant")) || (q.Get("recipe") != "" && s.Recipe.Name != q.Get("recipe")) {
			continue
		}
		v := a.subView(r.Context(), s, pauses, statuses)
		if status != "" && v.Status != status {
			continue
		}
		out = append(out, v)
		every[s.ID] = s.Every
	}
	if l, ok := page(w, r, out); ok {
		a.withDue(r.Context(), l.Items, every)
		writeJSON(w, http.StatusOK, l)
	}
}

// SubscriptionDetail is one subscription with its recent polls, its
// dedup cursor and its counters.
type SubscriptionDetail struct {
	SubscriptionView
	LastPolls []history.Poll `json:"last_polls"`
	Cursor    CursorSummary  `json:"cursor"`
	Counters  Counters       `json:"counters"`
	// LastError is the last failed poll's reason, if a kept poll failed.
	LastError *PollError `json:"last_error,omitempty"`
}

// CursorSummary is where the subscription's dedup state stands.
type CursorSummary struct {
	Seeded    bool       `json:"seeded"`
	Watermark *time.Time `json:"watermark,omitempty"`
	Floor     *time.Time `json:"floor,omitempty"`
	// Backlog is true while a capped poll's older items are being read.
	Backlog bool `json:"backlog"`
}

// Counters add up the polls kept in the history.
type Counters struct {
	Polls    int `json:"polls"`
	Read     int `json:"read"`
	New      int `json:"new"`
	Errors   int `json:"errors"`
	Skipped  int `json:"skipped"`
	Requests int `json:"requests"`
}

// PollError is a failed poll's time and reason.
type PollError struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

func (a *API) getSub(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	s, ok := a.sub(w, k, r.PathValue("id"))
	if !ok {
		return
	}
	d, err := a.subDetail(r.Context(), s)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// SubDetail returns subscription s with its polls, cursor and counters.
func (a *API) subDetail(ctx context.Context, s *engine.Subscription) (SubscriptionDetail, error) {
	pauses, err := a.pauses.All(ctx)
	if err != nil {
		return SubscriptionDetail{}, err
	}
	d := SubscriptionDetail{SubscriptionView: a.oneView(ctx, s, pauses)}
	polls, err := a.history.Polls(ctx, s.ID, 0)
	if err != nil {
		return d, err
	}
	for i, p := range polls {
		p.Error = auth.Redact(p.Error)
		if p.Recipe == "" {
			p.Recipe = s.Recipe.Name
		}
		polls[i] = p
		d.Counters.Polls++
		d.Counters.Read += p.Read
		d.Counters.New += p.New
		d.Counters.Requests += p.Requests
		if p.Skipped != "" {
			d.Counters.Skipped++
		}
		if p.Error != "" {
			d.Counters.Errors++
			if d.LastError == nil {
				d.LastError = &PollError{Time: p.Time, Reason: p.Error}
			}
		}
	}
	d.LastPolls = polls[:min(10, len(polls))]
	st, err := a.dedup.State(ctx, s.ID)
	if err != nil {
		return d, err
	}
	d.Cursor = CursorSummary{Seeded: st.Seeded, Backlog: st.Backlog != nil}
	if !st.Watermark.IsZero() {
		d.Cursor.Watermark = &st.Watermark
	}
	if !st.Floor.IsZero() {
		d.Cursor.Floor = &st.Floor
	}
	return d, nil
}

// PauseRequest gives the reason of a pause (optional body).
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) pauseSub(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	s, ok := a.sub(w, k, r.PathValue("id"))
	if !ok {
		return
	}
	var in PauseRequest
	if r.ContentLength > 0 && !decode(w, r, &in) {
		return
	}
	if in.Reason == "" {
		in.Reason = "paused through the API"
	}
	if err := a.pauses.Pause(r.Context(), s.ID, in.Reason); err != nil {
		a.internal(w, r, err)
		return
	}
	a.writeSub(w, r, s)
}

func (a *API) resumeSub(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	s, ok := a.sub(w, k, r.PathValue("id"))
	if !ok {
		return
	}
	if err := a.pauses.Resume(r.Context(), s.ID); err != nil {
		a.internal(w, r, err)
		return
	}
	a.writeSub(w, r, s)
}

func (a *API) writeSub(w http.ResponseWriter, r *http.Request, s *engine.Subscription) {
	pauses, err := a.pauses.All(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.oneView(r.Context(), s, pauses))
}

// Sample is what a trigger test read.
type Sample struct {
	Items []SampleItem `json:"items"`
}

// SampleItem is one item a trigger test read.
type SampleItem struct {
	Key  string          `json:"key"`
	ID   string          `json:"id,omitempty"`
	Time *time.Time      `json:"time,omitempty"`
	Item json.RawMessage `json:"item"`
}

func (a *API) testSub(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	s, ok := a.sub(w, k, r.PathValue("id"))
	if !ok {
		return
	}
	if a.cfg.Poller == nil {
		writeError(w, http.StatusNotImplemented, "no_caller", "this server cannot call the apps (no worker configuration)", "")
		return
	}
	items, err := a.cfg.Poller.Sample(r.Context(), s, engine.MaxSample)
	if err != nil {
		writeError(w, http.StatusBadGateway, "trigger_failed", auth.Redact(err.Error()), "")
		return
	}
	out := Sample{Items: make([]SampleItem, len(items))}
	for i, it := range items {
		out.Items[i] = SampleItem{Key: it.Key, ID: it.ID, Item: it.Raw}
		if !it.Time.IsZero() {
			t := it.Time
			out.Items[i].Time = &t
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// ReplayRequest names the item whose chain fires again: by its key (the
// item is read from the chain task kept since its run), or given whole.
type ReplayRequest struct {
	ItemKey string          `json:"item_key"`
	Item    json.RawMessage `json:"item,omitempty"`
}

// Replay is the chain task a replay or retry enqueued.
type Replay struct {
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
}

func (a *API) chainQueue() string { return engine.QueueName(a.cfg.Prefix, engine.QueueChain) }

func (a *API) replaySub(w http.ResponseWriter, r *http.Request, k apikey.Key) {
	s, ok := a.sub(w, k, r.PathValue("id"))
	if !ok {
		return
	}
	var in ReplayRequest
	if !decode(w, r, &in) {
		return
	}
	if in.ItemKey == "" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_replay", "item_key is required", "item_key")
		return
	}
	pl := engine.ChainPayload{Sub: s.ID, Recipe: s.Recipe.Name, ItemKey: in.ItemKey, Item: in.Item, Time: time.Now()}
	if len(in.Item) == 0 {
		info, err := a.inspect.GetTaskInfo(a.chainQueue(), engine.ChainTaskID(s.ID, in.ItemKey))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no kept chain of item "+in.ItemKey+"; send the item itself", "item_key")
			return
		}
		if err != nil {
			a.internal(w, r, err)
			return
		}
		if err := json.Unmarshal(info.Payload, &pl); err != nil {
			a.internal(w, r, err)
			return
		}
	}
	id, err := engine.Replay(r.Context(), a.queue, a.cfg.Prefix, pl)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Replay{TaskID: id, Queue: a.chainQueue()})
}
