package rdb

import (
	"path"
	"strings"
	"testing"
)

// slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag, or of the whole key without one, modulo 16384.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for _, c := range []byte(key) {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

func TestSlotFunction(t *testing.T) {
	// Redis Cluster's specification: CRC16 XMODEM of "123456789" is 0x31C3.
	if got := slot("123456789"); got != 0x31C3%16384 {
		t.Fatalf("slot(123456789) = %d", got)
	}
	if slot("foo{bar}") != slot("bar") || slot("{}x") == slot("") {
		t.Fatal("hash tags are not read as Redis reads them")
	}
}

// TestMultiKeyScriptsShareASlot: every script that takes several keys gets
// keys of one hash slot, so it runs on Redis Cluster.
func TestMultiKeyScriptsShareASlot(t *testing.T) {
	k := NewKeys("p:")
	for _, tc := range []struct {
		script string
		keys   []string
	}{
		{"Dedup", []string{k.DedupSeen("s1"), k.DedupMeta("s1"), k.HistoryPolls("s1")}},
		{"ConnLock", []string{k.ConnLock("acme"), k.ConnFence("acme")}},
		{"ConnFencedWrite", []string{k.Conn("acme"), k.ConnLock("acme")}},
		{"ConnStatesLiftUnstored", []string{k.ConnStates(), k.Conns()}},
		{"SchedulerClaim", []string{k.SchedulerDue(), k.SchedulerStretch()}},
		{"a subscription's history and checkpoints", []string{k.HistoryPolls("s1"), k.HistoryChains("s1"),
			k.Checkpoint("s1", "t"), k.DedupMeta("s1")}},
	} {
		for _, key := range tc.keys[1:] {
			if slot(key) != slot(tc.keys[0]) {
				t.Errorf("%s: %s and %s are in slots %d and %d", tc.script, tc.keys[0], key, slot(tc.keys[0]), slot(key))
			}
		}
	}
}

// TestKeysMatchTheirPatterns: every builder's key is matched by one of
// KeyPatterns (the table a test of the engine checks Redis against).
func TestKeysMatchTheirPatterns(t *testing.T) {
	k := NewKeys("p:")
	for _, key := range []string{k.DedupSeen("s"), k.DedupMeta("s"), k.HistoryPolls("s"), k.HistoryChains("s"),
		k.Checkpoint("s", "t"), k.Conn("c"), k.ConnFence("c"), k.ConnLock("c"), k.Conns(), k.ConnStates(),
		k.InstallState("ab"), k.RecentRuns(), k.TenantRecentRuns("t"), k.TenantPace("t"), k.RateBudget("ghl", "loc"), k.RatePause("ghl", "loc"), k.RateStretches(), k.SchedulerDue(), k.SchedulerStretch()} {
		matched := 0
		for _, p := range k.KeyPatterns() {
			if ok, _ := path.Match(escape(p), key); ok {
				matched++
			}
		}
		if matched != 1 {
			t.Errorf("%s matches %d patterns", key, matched)
		}
	}
	for _, stray := range []string{"p:stray", "p:{sub:s}:other", "q:{sched}:due", "p:{conn:c}:other"} {
		if k.Match(stray) {
			t.Errorf("%s matches the table", stray)
		}
	}
	if NewKeys("").Prefix() != DefaultPrefix || PrefixOr("x:") != "x:" {
		t.Fatal("default prefix")
	}
}
