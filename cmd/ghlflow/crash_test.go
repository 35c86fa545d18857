package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"github.com/ghlflow/ghlflow/engine"
)

// TestCrashRecovery kills the worker process with SIGKILL at random points
// while 200 new contacts arrive, restarts it, and checks that every chain
// completed once. A kill while a step's request was in flight can repeat
// that write (the API got it, the checkpoint did not); those are counted
// and printed. asynq recovers the tasks of a killed worker once their lease
// has expired, so the test waits up to a few minutes at the end.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test kills the engine 5 times and waits for asynq's lease recovery (about 70 s); run it without -short (make test)")
	}
	e := newE2E(t)
	for i := range 20 {
		e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("Old%d", i)})
	}
	// Slow answers keep polls and chain steps in flight when the kills land.
	e.srv.SetFaults(sim.Faults{Latency: 20 * time.Millisecond, Jitter: 40 * time.Millisecond})
	cmd, out := e.start("--chain-concurrency", "8")
	waitFor(t, 30*time.Second, "the first poll", out, func() bool { return e.polls() >= 1 })
	const total, kills = 200, 5
	var ids []string
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := range kills {
		for i := range total / kills {
			c := e.srv.CreateContact(e.loc, map[string]any{"firstName": fmt.Sprintf("New%d", k*(total/kills)+i)})
			ids = append(ids, fmt.Sprint(c["id"]))
		}
		// Kill once the batch's chains are running (or, every other batch,
		// at a random point of the polls).
		prev := len(e.srv.Writes("ghl.contacts.notes.create"))
		if k%2 == 0 {
			waitFor(t, 30*time.Second, "chains running", out, func() bool {
				return len(e.srv.Writes("ghl.contacts.notes.create")) > prev
			})
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		active := 0
		if qi, err := asynq.NewInspectorFromRedisClient(e.rdb).GetQueueInfo(engine.QueueName(e.prefix, engine.QueueChain)); err == nil {
			active = qi.Active
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("kill %d after %d items: %d notes written, %d chain tasks active", k+1, len(ids),
			len(e.srv.Writes("ghl.contacts.notes.create")), active)
		cmd, out = e.start("--chain-concurrency", "8")
	}
	notesFor := func() map[string]int {
		n := map[string]int{}
		for _, w := range e.srv.Writes("ghl.contacts.notes.create") {
			n[w.Path]++
		}
		return n
	}
	missing := func() []string {
		n := notesFor()
		var out []string
		for _, id := range ids {
			if n["/contacts/"+id+"/notes"] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(4 * time.Minute)
	for len(missing()) > 0 {
		if time.Now().After(deadline) {
			e.dumpQueues(t, engine.QueueName(e.prefix, engine.QueueChain))
			t.Fatalf("no note for %d items: %v\nlast process:\n%s", len(missing()), missing(), out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	notes := notesFor()
	tags := map[string]int{}
	for _, w := range e.srv.Writes("ghl.contacts.tags.add") {
		tags[w.Path]++
	}
	dupWrites := 0
	for _, id := range ids {
		dupWrites += notes["/contacts/"+id+"/notes"] - 1
		dupWrites += max(tags["/contacts/"+id+"/tags"]-1, 0)
	}
	// Chain tasks: one completed task per item, none twice.
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	seen := map[string]int{}
	for page := 1; ; page++ {
		tasks, err := insp.ListCompletedTasks(engine.QueueName(e.prefix, engine.QueueChain), asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			var pl engine.ChainPayload
			if err := json.Unmarshal(ti.Payload, &pl); err == nil {
				seen[pl.ItemKey]++
			}
		}
		if len(tasks) < 500 {
			break
		}
	}
	dupTasks := 0
	for _, n := range seen {
		dupTasks += n - 1
	}
	t.Logf("crash test: %d items, %d kills, %d completed chain tasks, %d duplicate chain tasks, %d duplicated external writes",
		len(ids), kills, len(seen), dupTasks, dupWrites)
	fmt.Printf("crash test: %d items, %d kills, %d duplicate chain tasks, %d duplicated external writes\n", len(ids), kills, dupTasks, dupWrites)
	if dupTasks != 0 {
		t.Errorf("%d duplicate chain tasks", dupTasks)
	}
	if len(seen) < len(ids) {
		t.Errorf("%d completed chain tasks, want %d", len(seen), len(ids))
	}
}

// dumpQueues logs a queue's counts and its unfinished tasks with their
// last errors, to show where a missing chain is.
func (e *e2eEnv) dumpQueues(t *testing.T, queue string) {
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	qi, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Logf("queue %s: %v", queue, err)
		return
	}
	t.Logf("queue %s: pending %d active %d scheduled %d retry %d archived %d completed %d", queue,
		qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived, qi.Completed)
	lists := map[string]func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		"active": insp.ListActiveTasks, "retry": insp.ListRetryTasks, "archived": insp.ListArchivedTasks,
		"pending": insp.ListPendingTasks, "scheduled": insp.ListScheduledTasks,
	}
	for state, list := range lists {
		tasks, _ := list(queue, asynq.PageSize(50))
		for _, ti := range tasks {
			t.Logf("%s %s retried %d next %s last error %q", state, ti.ID, ti.Retried, ti.NextProcessAt.Format(time.TimeOnly), ti.LastErr)
		}
	}
}
