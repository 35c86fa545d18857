// Package rdb is the engine's one Redis layer: every key the engine's own
// packages write is built here, every Lua script they run is declared here,
// and DefaultPrefix is the one default key prefix. Other packages ask Keys
// for a key; none builds a key string.
//
// A subscription's keys share the hash tag {sub:ID} and a stored
// connection's keys share {conn:ID}, so every script that touches several
// keys finds them in one hash slot and runs unchanged on Redis Cluster.
//
// The keys, under the prefix P (DefaultPrefix unless configured):
//
//	key                        type    owner            lifetime
//	P{sub:ID}:seen             zset    engine/dedup     while the subscription lives (Reset deletes)
//	P{sub:ID}:meta             hash    engine/dedup     as :seen (seeded, hwm, floor, seq, backlog)
//	P{sub:ID}:hist:polls       list    engine/history   capped; expires 7 days after the last poll
//	P{sub:ID}:hist:chains      list    engine/history   capped; expires 7 days after the last chain run
//	P{sub:ID}:ckpt:TASK        hash    engine (chains)  the chain retention (24 h by default)
//	P{conn:ID}                 hash    engine/auth      until the connection is removed (meta, secret, fence)
//	P{conn:ID}:fence           string  engine/auth      as the connection (refresh fencing counter)
//	P{conn:ID}:lock            string  engine/auth      a refresh (LockTTL, 30 s by default)
//	P{conn:ID}:page:H:SLOT     string  engine (polls)   a trigger page shared by the slot's polls (one interval)
//	P{conn:ID}:page:H:SLOT:filling string engine (polls) a poll fetching that page (2 s)
//	P{conns}                   set     engine/auth      the stored connections' ids
//	P{conns}:state             hash    engine/connstate a connection's pause or re-auth, until lifted
//	Poauth-state:SHA           string  engine/auth      an OAuth install in progress (StateTTL)
//	Prl:APP:RES:budget         hash    engine/ratelimit 48 h after the last rate-limit headers
//	Prl:APP:RES:pause          string  engine/ratelimit a 429's Retry-After
//	Prl:stretch                hash    engine/ratelimit the stretches engines plan, by APP/RES (a minute each)
//	rate:Prl:APP:RES           string  engine/ratelimit GCRA state (go-redis/redis_rate adds "rate:")
//	P{sched}:due               zset    engine/scheduler every subscription in force
//	P{webhooks}:events         stream  engine/webhook   accepted webhook events until processed (then deleted)
//	P{webhooks}:seen:ID        string  engine/webhook   a delivery's webhookId, WebhookSeenTTL (1 h) after it was accepted
//	P{tenants}                 hash    engine/tenant    tenant id → tenant JSON, until the tenant is removed
//	P{tenants}:version         string  engine/tenant    the tenants' version, bumped by every change
//	P{tenants}:changes         zset    engine/tenant    a tenant's id scored by the version of its last change, until it is removed
//	P{tenants}:removed         string  engine/tenant    the version of the last removal of a tenant
//	P{tenants}:subs:ID         set     engine/tenant    a tenant's subscription ids, until it is removed
//	P{recipes}                 hash    engine/recipestore recipe name → recipe YAML stored through the CLI, until removed
//	P{recipes}:version         string  engine/recipestore bumped by every change of the stored recipes
//	P{subs}:paused             hash    engine           a paused subscription's id → when and why, until resumed
//	P{apikeys}                 hash    engine/apikey    an API key's SHA-256 (hex) → its id, tenant, name, created; until revoked
//	P{tenant:ID}:pace          string  engine (polls)   when a tenant's next chain may start (ms); a minute after it passes
//	P{tenant:ID}:runs          zset    engine/history   a tenant's newest chain runs (100) by time; 7 days after its last run
//	P{runs}:recent             zset    engine/history   the newest chain runs (1,000) of every subscription by time
//	P{sched}:stretch           hash    engine/scheduler a stretched subscription's factor and phase
//	P{echo:CONN}:OBJ           hash    engine/echo      the fields a step wrote to object OBJ through connection CONN, and the subscriptions that saw its echo; the echo window (24 h by default)
//	asynq:{PQUEUE}:...         various asynq            the queues PREFIXpoll and PREFIXchain
//
// Earlier versions kept connections under Pconns, Pconn:ID and
// Pconn-fence:ID and the engine's pauses in Ppaused; auth.MoveLegacyKeys
// moves them to the keys above once, and nothing writes them any more.
//
// KeyPatterns lists the same table as glob patterns, for tests that check
// that nothing else is written.
package rdb

import (
	"errors"
	"path"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key of the engine unless another is configured.
const DefaultPrefix = "ghlflow:"

// Keys builds the keys under one prefix. The zero value uses DefaultPrefix.
type Keys struct{ prefix string }

// NewKeys returns the key builder of prefix ("" = DefaultPrefix).
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix is the prefix in force.
func (k Keys) Prefix() string {
	if k.prefix == "" {
		return DefaultPrefix
	}
	return k.prefix
}

// PrefixOr returns prefix, or DefaultPrefix when it is empty.
func PrefixOr(prefix string) string { return NewKeys(prefix).Prefix() }

// sub is the hash-tagged root of a subscription's keys.
func (k Keys) sub(id string) string { return k.Prefix() + "{sub:" + id + "}" }

// conn is the hash-tagged root of a stored connection's keys.
func (k Keys) conn(id string) string { return k.Prefix() + "{conn:" + id + "}" }

// DedupSeen is the sorted set of a subscription's recent item hashes.
func (k Keys) DedupSeen(sub string) string { return k.sub(sub) + ":seen" }

// DedupMeta is the hash of a subscription's seeded flag, watermark, floor,
// counter and backlog.
func (k Keys) DedupMeta(sub string) string { return k.sub(sub) + ":meta" }

// HistoryPolls is the capped list of a subscription's last polls.
func (k Keys) HistoryPolls(sub string) string { return k.sub(sub) + ":hist:polls" }

// HistoryChains is the capped list of a subscription's last chain runs.
func (k Keys) HistoryChains(sub string) string { return k.sub(sub) + ":hist:chains" }

// Checkpoint is the hash of a chain task's completed step outputs.
func (k Keys) Checkpoint(sub, taskID string) string { return k.sub(sub) + ":ckpt:" + taskID }

// SharedPage is a trigger page one poll of a connection read in a slot,
// kept for the connection's other polls of that slot asking the same
// request (hash: of the operation and its input).
func (k Keys) SharedPage(conn, hash string, slot int64) string {
	return k.conn(conn) + ":page:" + hash + ":" + strconv.FormatInt(slot, 10)
}

// Conn is the hash of a stored connection: its metadata, its sealed
// credential and the fencing token of the last refresh written.
func (k Keys) Conn(id string) string { return k.conn(id) }

// ConnFence is the counter that hands out a connection's fencing tokens.
func (k Keys) ConnFence(id string) string { return k.conn(id) + ":fence" }

// ConnLock is a connection's refresh lock.
func (k Keys) ConnLock(id string) string { return k.conn(id) + ":lock" }

// Conns is the set of the stored connections' ids.
func (k Keys) Conns() string { return k.Prefix() + "{conns}" }

// ConnStates is the hash of connection id → state (paused, needs re-auth);
// a connection without a field is ok. It shares Conns' slot.
func (k Keys) ConnStates() string { return k.Conns() + ":state" }

// InstallState is the pending OAuth install of an authorize request's
// state, by the state's hex SHA-256 (the state itself is a secret).
func (k Keys) InstallState(stateHash string) string { return k.Prefix() + "oauth-state:" + stateHash }

// RateLimit is the root of a resource's rate-limit keys, and the key that
// go-redis/redis_rate keeps its GCRA state under (after its own "rate:").
func (k Keys) RateLimit(app, resource string) string {
	return k.Prefix() + "rl:" + app + ":" + resource
}

// RateBudget is the hash of a resource's budget learned from headers.
func (k Keys) RateBudget(app, resource string) string { return k.RateLimit(app, resource) + ":budget" }

// RateState is the key go-redis/redis_rate keeps a resource's GCRA state
// under (it adds "rate:" to the key it is given, RateLimit).
func (k Keys) RateState(app, resource string) string { return "rate:" + k.RateLimit(app, resource) }

// RatePause holds a resource's requests back while it exists.
func (k Keys) RatePause(app, resource string) string { return k.RateLimit(app, resource) + ":pause" }

// RateStretches is the hash of "app/resource" → the stretch the engines
// plan for the resource's polls (JSON with the time it was planned).
func (k Keys) RateStretches() string { return k.Prefix() + "rl:stretch" }

// SchedulerDue is the scheduler's sorted set of due times.
func (k Keys) SchedulerDue() string { return k.Prefix() + "{sched}:due" }

// webhooks is the hash-tagged root of the webhook keys.
func (k Keys) webhooks() string { return k.Prefix() + "{webhooks}" }

// WebhookEvents is the stream of accepted webhook events that wait to be
// routed; its consumer group is WebhookGroup.
func (k Keys) WebhookEvents() string { return k.webhooks() + ":events" }

// WebhookSeen marks a webhookId as accepted, so a delivery made again is
// answered without being stored twice.
func (k Keys) WebhookSeen(id string) string { return k.webhooks() + ":seen:" + id }

// WebhookGroup is the consumer group of WebhookEvents.
const WebhookGroup = "routers"

// Tenants is the hash of tenant id → tenant JSON.
func (k Keys) Tenants() string { return k.Prefix() + "{tenants}" }

// TenantsVersion is the counter bumped by every tenant change.
func (k Keys) TenantsVersion() string { return k.Tenants() + ":version" }

// TenantsChanges is the sorted set of tenant ids by the version of their
// last change.
func (k Keys) TenantsChanges() string { return k.Tenants() + ":changes" }

// TenantsRemoved is the version of the last removal of a tenant.
func (k Keys) TenantsRemoved() string { return k.Tenants() + ":removed" }

// Recipes is the hash of stored recipe name → recipe YAML.
func (k Keys) Recipes() string { return k.Prefix() + "{recipes}" }

// RecipesVersion is the counter bumped by every change of the stored
// recipes.
func (k Keys) RecipesVersion() string { return k.Recipes() + ":version" }

// RecentRuns is the index of the newest chain runs of every subscription,
// scored by their time (unix ms).
func (k Keys) RecentRuns() string { return k.Prefix() + "{runs}:recent" }

// TenantRecentRuns is the index of a tenant's newest chain runs.
func (k Keys) TenantRecentRuns(id string) string { return k.Prefix() + "{tenant:" + id + "}:runs" }

// TenantPace is when a tenant's next chain may start (unix ms).
func (k Keys) TenantPace(id string) string { return k.Prefix() + "{tenant:" + id + "}:pace" }

// SubsPaused is the hash of paused subscription id → pause record JSON.
func (k Keys) SubsPaused() string { return k.Prefix() + "{subs}:paused" }

// APIKeys is the hash of an API key's hex SHA-256 → the key's record JSON
// (the key itself is never stored).
func (k Keys) APIKeys() string { return k.Prefix() + "{apikeys}" }

// Echo is the fingerprint of what a step last wrote to object obj through
// connection conn (engine/echo).
func (k Keys) Echo(conn, obj string) string { return k.Prefix() + "{echo:" + conn + "}:" + obj }

// TenantSubs is the set of a tenant's subscription ids.
func (k Keys) TenantSubs(id string) string { return k.Tenants() + ":subs:" + id }

// SubPattern matches every key of every subscription (for a scan).
func (k Keys) SubPattern() string { return k.sub("*") + "*" }

// SubOf returns the subscription a key of SubPattern belongs to.
func (k Keys) SubOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.Prefix()+"{sub:")
	if !ok {
		return "", false
	}
	sub, _, ok := strings.Cut(rest, "}")
	return sub, ok
}

// SchedulerStretch is the hash of subscription → "factor:phase" of the
// stretched subscriptions; it shares SchedulerDue's slot.
func (k Keys) SchedulerStretch() string { return k.Prefix() + "{sched}:stretch" }

// Queue is the name of an asynq queue (poll, chain) under the
// prefix: engines with different prefixes never take each other's tasks.
func (k Keys) Queue(base string) string { return k.Prefix() + base }

// AsynqTask, AsynqActive and AsynqLease are asynq's own keys of a task,
// of a queue's running tasks and of their leases (asynq's internal/base
// layout); the poll enqueuer reads them to tell a poll left running by a
// killed worker from a live one.
func AsynqTask(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// AsynqActive is the list of a queue's running task ids.
func AsynqActive(queue string) string { return "asynq:{" + queue + "}:active" }

// AsynqLease is the sorted set of a queue's running task ids by the unix
// second their lease expires (a live worker extends it every 5 s to 30 s
// ahead).
func AsynqLease(queue string) string { return "asynq:{" + queue + "}:lease" }

// KeyPatterns are the table above as glob patterns under the prefix (asynq's
// own keys and redis_rate's "rate:" keys live outside it).
func (k Keys) KeyPatterns() []string {
	p := k.Prefix()
	return []string{
		p + "{sub:*}:seen", p + "{sub:*}:meta", p + "{sub:*}:hist:polls", p + "{sub:*}:hist:chains",
		p + "{sub:*}:ckpt:*",
		p + "{conn:*}", p + "{conn:*}:fence", p + "{conn:*}:lock",
		p + "{conn:*}:page:*", p + "{conns}", p + "{conns}:state",
		p + "oauth-state:*",
		p + "{webhooks}:events", p + "{webhooks}:seen:*",
		p + "{tenants}", p + "{tenants}:version", p + "{tenants}:changes", p + "{tenants}:removed", p + "{tenants}:subs:*", p + "{tenant:*}:pace", p + "{tenant:*}:runs", p + "{runs}:recent", p + "{recipes}", p + "{recipes}:version",
		p + "rl:*:budget", p + "rl:*:pause", p + "rl:stretch",
		p + "{sched}:due", p + "{sched}:stretch",
		p + "{subs}:paused", p + "{apikeys}",
		p + "{echo:*}:*",
	}
}

// IsNil reports whether err says a key or field does not exist.
func IsNil(err error) bool { return errors.Is(err, redis.Nil) }

// Match reports whether key is one of the keys in the table under k's
// prefix.
func (k Keys) Match(key string) bool {
	for _, p := range k.KeyPatterns() {
		if ok, _ := path.Match(escape(p), key); ok {
			return true
		}
	}
	return false
}

// escape quotes the glob characters of a pattern that are literal in keys
// (the braces of hash tags are not glob characters for path.Match, but
// brackets would be).
func escape(p string) string { return strings.ReplaceAll(p, "[", `\[`) }

// LegacyConns is the connection set of earlier versions (no hash tag);
// auth.MoveLegacyKeys reads it once to move its connections.
func (k Keys) LegacyConns() string { return k.Prefix() + "conns" }

// LegacyConn is a connection's hash in earlier versions.
func (k Keys) LegacyConn(id string) string { return k.Prefix() + "conn:" + id }

// LegacyConnFence is a connection's fencing counter in earlier versions.
func (k Keys) LegacyConnFence(id string) string { return k.Prefix() + "conn-fence:" + id }

// LegacyPauses is the engine's hash of paused connections (id → reason) in
// earlier versions, now connstate records.
func (k Keys) LegacyPauses() string { return k.Prefix() + "paused" }
