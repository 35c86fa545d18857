package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is one child process the bench started, with its log file.
type proc struct {
	name string
	args []string
	env  []string
	log  string
	// metrics is the Prometheus endpoint of an engine process ("" for
	// the others).
	metrics string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	// cpuBase holds the CPU ticks of earlier incarnations (a killed and
	// restarted worker keeps counting).
	cpuBase int64
}

// start runs the process, its output appended to its log file.
func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// pid is the process id of the running incarnation (0 when none).
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends sig and waits up to wait for the process to end, then kills
// it. The CPU it used so far stays counted.
func (p *proc) kill(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if t, err := procCPUTicks(cmd.Process.Pid); err == nil {
		p.mu.Lock()
		p.cpuBase += t
		p.mu.Unlock()
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

// cpuTicks is the user+system CPU of every incarnation so far, in clock
// ticks.
func (p *proc) cpuTicks() int64 {
	p.mu.Lock()
	base := p.cpuBase
	p.mu.Unlock()
	if pid := p.pid(); pid != 0 {
		if t, err := procCPUTicks(pid); err == nil {
			return base + t
		}
	}
	return base
}

// heapInUse reads go_memstats_heap_inuse_bytes from the process's
// metrics (0 when it does not answer).
func (p *proc) heapInUse(ctx context.Context) int64 {
	if p.metrics == "" {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux the bench runs on).
const clockTick = 100

// procCPUTicks reads utime+stime of pid from /proc/PID/stat.
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

// procRSS reads the resident set size of pid in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// freePort returns a TCP port free on the loopback at the moment.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisProc is a redis-server of the bench's own.
type redisProc struct {
	*proc
	addr string
}

// startRedis starts redis-server on a free port in dir; aof turns on the
// append-only file (fsync every write) so a restart keeps the state.
func startRedis(ctx context.Context, dir string, aof bool) (*redisProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
		"--dir", dir, "--daemonize", "no"}
	if aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	r := &redisProc{proc: &proc{name: "redis", args: args, log: filepath.Join(dir, "redis.log")},
		addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if err := r.restart(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// restart starts the server and waits until it answers and has loaded
// its data.
func (r *redisProc) restart(ctx context.Context) error {
	if err := r.start(); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("redis at %s: %w", r.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// simLocation is one location the simulator made, with its GHL token.
type simLocation struct {
	ID, Token string
}

// simProc is the simulator process and what it printed.
type simProc struct {
	*proc
	url  string
	locs []simLocation
}

// startSim starts `ghlflow sim` with n locations and reads the locations
// and tokens it prints.
func startSim(ctx context.Context, bin, dir string, n int, extra ...string) (*simProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{bin, "sim", "--addr", addr, "--locations", strconv.Itoa(n), "--daily", "-1"}, extra...)
	s := &simProc{proc: &proc{name: "sim", args: args, log: filepath.Join(dir, "sim.log")}, url: "http://" + addr}
	if err := s.start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.locs = parseSimOut(s.log)
		if len(s.locs) == n {
			if b, _ := os.ReadFile(s.log); strings.Contains(string(b), "webhook public key") {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("simulator: %d of %d locations printed", len(s.locs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parseSimOut reads the location lines of the simulator's output.
func parseSimOut(path string) []simLocation {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []simLocation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "location ") {
			out = append(out, simLocation{ID: strings.TrimSpace(strings.TrimPrefix(line, "location "))})
		}
		if strings.HasPrefix(line, "  ghl access_token=") && len(out) > 0 {
			tok := strings.Fields(strings.TrimPrefix(line, "  ghl access_token="))
			if len(tok) > 0 {
				out[len(out)-1].Token = tok[0]
			}
		}
	}
	return out
}
