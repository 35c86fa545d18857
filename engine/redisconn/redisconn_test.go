package redisconn

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

func TestParse(t *testing.T) {
	tests := []struct {
		url   string
		kind  Kind
		addrs []string
		check func(t *testing.T, o *Options)
		err   string
	}{
		{url: "redis://127.0.0.1:6379/2", kind: Single, addrs: []string{"127.0.0.1:6379"}, check: func(t *testing.T, o *Options) {
			if a := o.Asynq().(asynq.RedisClientOpt); a.DB != 2 || a.Addr != "127.0.0.1:6379" {
				t.Errorf("asynq option %+v", a)
			}
		}},
		{url: "rediss://u:p@cache:6380", kind: Single, addrs: []string{"cache:6380"}, check: func(t *testing.T, o *Options) {
			if a := o.Asynq().(asynq.RedisClientOpt); a.TLSConfig == nil || a.Username != "u" || a.Password != "p" {
				t.Errorf("asynq option %+v", a)
			}
		}},
		{url: "redis-sentinel://:secret@s1:26379,s2:26379,s3/mymaster?db=1&sentinel_password=sp", kind: Sentinel,
			addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, check: func(t *testing.T, o *Options) {
				a := o.Asynq().(asynq.RedisFailoverClientOpt)
				if a.MasterName != "mymaster" || a.DB != 1 || a.Password != "secret" || a.SentinelPassword != "sp" {
					t.Errorf("asynq option %+v", a)
				}
			}},
		{url: "redis-sentinel://s1:26379?master=m", kind: Sentinel, addrs: []string{"s1:26379"}},
		{url: "redis-cluster://n1:7000,n2:7001,n3:7002", kind: Cluster, addrs: []string{"n1:7000", "n2:7001", "n3:7002"},
			check: func(t *testing.T, o *Options) {
				if a := o.Asynq().(asynq.RedisClusterClientOpt); len(a.Addrs) != 3 {
					t.Errorf("asynq option %+v", a)
				}
			}},
		{url: "redis-sentinel://s1:26379", err: "name the master"},
		{url: "redis-cluster://n1:7000/3", err: "only database 0"},
		{url: "memcached://x", err: "unknown scheme"},
		{url: "127.0.0.1:6379", err: "want scheme"},
		{url: "redis://u:hunter2@h:1/abc", err: "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := Parse(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse(%q) = %v, want error with %q", tt.url, err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Kind != tt.kind || !reflect.DeepEqual(o.Addrs(), tt.addrs) {
				t.Errorf("Parse(%q) = %s %v, want %s %v", tt.url, o.Kind, o.Addrs(), tt.kind, tt.addrs)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
			c := o.Client()
			defer c.Close()
		})
	}
}
