package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer starts a redis-server of the test's own on 127.0.0.1:port
// and stops it when the test ends.
func redisServer(t *testing.T, port int, args ...string) *redis.Client {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server")
	}
	dir := t.TempDir()
	base := []string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	if len(args) > 0 && strings.HasSuffix(args[0], ".conf") {
		// A sentinel: its configuration file comes first.
		base = append([]string{args[0]}, base...)
		args = args[1:]
	}
	cmd := exec.Command("redis-server", append(base, args...)...)
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	t.Cleanup(func() { c.Close() })
	waitFor(t, 10*time.Second, fmt.Sprintf("redis-server on %d", port), out, func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
	return c
}

// TestRolesOnRedisCluster: the split engine on a Redis Cluster of three
// masters, through redis-cluster://: asynq's queues and our keys (every
// multi-key script keeps its keys in one slot) work across the nodes.
func TestRolesOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and five processes")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("no redis-cli")
	}
	ports := []int{7100, 7101, 7102}
	var addrs []string
	for _, p := range ports {
		redisServer(t, p, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	waitFor(t, 30*time.Second, "the cluster", nil, func() bool {
		info, err := cc.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	e := newE2E(t)
	r := runRoles(t, e, "redis-cluster://"+strings.Join(addrs, ","), 6, nil)
	r.stop()
	// The commands reach the cluster through the same URL.
	if out := r.ghlflowCmd("tenant", "list"); !strings.Contains(out, "acme-t") || !strings.Contains(out, "broken") {
		t.Errorf("ghlflow tenant list on the cluster:\n%s", out)
	}
	// The keys are spread over the masters.
	for _, p := range ports {
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", p)})
		n, err := c.DBSize(context.Background()).Result()
		c.Close()
		if err != nil || n == 0 {
			t.Errorf("master %d holds %d keys (%v)", p, n, err)
		}
	}
}

// TestRolesSentinelFailover: the split engine on a master, a replica and a
// sentinel, through redis-sentinel://; the master fails over in the middle
// of a run and every new contact still gets its one note.
func TestRolesSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis with a sentinel and five processes")
	}
	master := redisServer(t, 7110)
	replica := redisServer(t, 7111, "--replicaof", "127.0.0.1", "7110")
	waitFor(t, 10*time.Second, "the replica in sync", nil, func() bool {
		info, _ := replica.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	writeTestFile(t, conf, "sentinel monitor ghlmaster 127.0.0.1 7110 1\n"+
		"sentinel down-after-milliseconds ghlmaster 2000\nsentinel failover-timeout ghlmaster 10000\n")
	redisServer(t, 7112, conf, "--sentinel")
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:7112"})
	defer sc.Close()
	waitFor(t, 20*time.Second, "the sentinel to see the replica", nil, func() bool {
		rs, err := sc.Replicas(context.Background(), "ghlmaster").Result()
		return err == nil && len(rs) == 1
	})
	e := newE2E(t)
	failover := func() {
		if err := sc.Failover(context.Background(), "ghlmaster").Err(); err != nil {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		waitFor(t, 30*time.Second, "the replica promoted", nil, func() bool {
			addr, err := sc.GetMasterAddrByName(context.Background(), "ghlmaster").Result()
			return err == nil && addr[1] == "7111"
		})
	}
	r := runRoles(t, e, "redis-sentinel://127.0.0.1:7112/ghlmaster", 10, failover)
	r.stop()
	if role, _ := master.Do(context.Background(), "ROLE").Slice(); len(role) == 0 || role[0] != "slave" {
		t.Errorf("the old master's role after the failover: %v", role)
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
