// Package redisconn turns the one Redis option of every ghlflow command, a
// URL, into the go-redis client our own keys use and the asynq connection
// option of the queues and the web UI.
//
// Accepted URLs:
//
//	redis://[user:password@]host:port[/db][?options]     one server (go-redis ParseURL options)
//	rediss://...                                          the same over TLS
//	unix://[user:password@]/path/to/socket[?db=N]         one server on a Unix socket
//	redis-sentinel://[user:password@]host:port[,host:port...]/master[?db=N&sentinel_password=P&sentinel_username=U]
//	rediss-sentinel://...                                 Sentinel, the servers over TLS
//	redis-cluster://[user:password@]host:port[,host:port...]
//	rediss-cluster://...                                  Redis Cluster over TLS
//
// Sentinel uses go-redis's failover client (and asynq's failover option):
// the master is asked of the sentinels and followed across failovers.
// Cluster uses go-redis's and asynq's cluster clients; the database is
// always 0 there.
package redisconn

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Kind is how the engine reaches Redis.
type Kind string

// Kinds of Redis deployments.
const (
	Single   Kind = "single"
	Sentinel Kind = "sentinel"
	Cluster  Kind = "cluster"
)

// Options are a parsed Redis URL.
type Options struct {
	Kind     Kind
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Parse reads a Redis URL (see the package documentation).
func Parse(raw string) (*Options, error) {
	raw = strings.TrimSpace(raw)
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis URL %q: want scheme://..., e.g. redis://127.0.0.1:6379/0", redact(raw))
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis URL %q: %w", redact(raw), err)
		}
		return &Options{Kind: Single, single: o}, nil
	case "redis-sentinel", "rediss-sentinel":
		return parseSentinel(raw, scheme == "rediss-sentinel")
	case "redis-cluster", "rediss-cluster":
		return parseCluster(raw, scheme == "rediss-cluster")
	}
	return nil, fmt.Errorf("redis URL %q: unknown scheme %q (redis, rediss, unix, redis-sentinel, redis-cluster)", redact(raw), scheme)
}

// multiHost splits a URL whose host part lists several host:port pairs.
func multiHost(raw, defaultPort string) (u *url.URL, addrs []string, err error) {
	// url.Parse refuses host:port,host:port: it parses the URL with one
	// placeholder host instead.
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	user, hosts := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user, hosts = authority[:at+1], authority[at+1:]
	}
	u, err = url.Parse(scheme + "://" + user + "placeholder" + tail)
	if err != nil {
		return nil, nil, fmt.Errorf("redis URL %q: %w", redact(raw), err)
	}
	for _, a := range strings.Split(hosts, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			a += ":" + defaultPort
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, nil, fmt.Errorf("redis URL %q: no host", redact(raw))
	}
	return u, addrs, nil
}

func parseSentinel(raw string, useTLS bool) (*Options, error) {
	u, addrs, err := multiHost(raw, "26379")
	if err != nil {
		return nil, err
	}
	master := strings.Trim(u.Path, "/")
	q := u.Query()
	if m := q.Get("master"); master == "" {
		master = m
	}
	if master == "" {
		return nil, fmt.Errorf("redis URL %q: name the master: redis-sentinel://host:port,.../MASTER", redact(raw))
	}
	o := &redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs,
		SentinelUsername: q.Get("sentinel_username"), SentinelPassword: q.Get("sentinel_password")}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if db := q.Get("db"); db != "" {
		if o.DB, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("redis URL %q: db %q: %w", redact(raw), db, err)
		}
	}
	if useTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &Options{Kind: Sentinel, failover: o}, nil
}

func parseCluster(raw string, useTLS bool) (*Options, error) {
	u, addrs, err := multiHost(raw, "6379")
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("redis URL %q: Redis Cluster has only database 0", redact(raw))
	}
	o := &redis.ClusterOptions{Addrs: addrs}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if useTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &Options{Kind: Cluster, cluster: o}, nil
}

// Addrs returns the addresses the options name: the server, the sentinels
// or the cluster's seed nodes.
func (o *Options) Addrs() []string {
	switch o.Kind {
	case Sentinel:
		return o.failover.SentinelAddrs
	case Cluster:
		return o.cluster.Addrs
	}
	return []string{o.single.Addr}
}

// SetPoolSize sets the connection pool size of each server's pool.
func (o *Options) SetPoolSize(n int) {
	switch o.Kind {
	case Sentinel:
		o.failover.PoolSize = n
	case Cluster:
		o.cluster.PoolSize = n
	default:
		o.single.PoolSize = n
	}
}

// Client returns a new go-redis client; the caller closes it.
func (o *Options) Client() redis.UniversalClient {
	switch o.Kind {
	case Sentinel:
		return redis.NewFailoverClient(o.failover)
	case Cluster:
		return redis.NewClusterClient(o.cluster)
	}
	return redis.NewClient(o.single)
}

// Asynq returns asynq's connection option for the same Redis (asynqmon
// and anything that dials its own connections).
func (o *Options) Asynq() asynq.RedisConnOpt {
	switch o.Kind {
	case Sentinel:
		f := o.failover
		return asynq.RedisFailoverClientOpt{MasterName: f.MasterName, SentinelAddrs: f.SentinelAddrs,
			SentinelUsername: f.SentinelUsername, SentinelPassword: f.SentinelPassword, Username: f.Username, Password: f.Password, DB: f.DB,
			PoolSize: f.PoolSize, TLSConfig: f.TLSConfig}
	case Cluster:
		c := o.cluster
		return asynq.RedisClusterClientOpt{Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: c.TLSConfig}
	}
	s := o.single
	return asynq.RedisClientOpt{Network: s.Network, Addr: s.Addr, Username: s.Username, Password: s.Password, DB: s.DB,
		PoolSize: s.PoolSize, TLSConfig: s.TLSConfig}
}

// redact hides a URL's password in messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return "…@" + raw[at+1:]
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
