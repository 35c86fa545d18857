package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// write saves bench.json and bench.svg into dir.
func (r *Report) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.svg"), []byte(r.SVG()), 0o644); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// Table writes the report as an aligned two-column table.
func (r *Report) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s: %d tenants × %d recipes = %d subscriptions every %gs, %d workers, %.0fs",
		r.Scenario, r.Tenants, r.Recipes, r.Subscriptions, r.EverySec, r.Workers, r.DurationSec)
	row("polls/s demanded / served", "%.0f / %.0f (%d polls, %d errors, %d skipped slots, %d stretches)",
		r.PollsDemanded, r.PollsServed, r.Polls, r.PollErrors, r.SkippedSlots, r.Stretches)
	row("poll lag p50 / p99 / max", "%.0f / %.0f / %.0f ms", r.LagP50Ms, r.LagP99Ms, r.LagMaxMs)
	row("CPU-ms per poll: engine / Redis / sim", "%.3f / %.3f / %.3f", r.EngineCPUms, r.RedisCPUms, r.SimCPUms)
	row("Redis commands per poll", "%.1f %v", r.RedisCommands, fmtTop(r.RedisTop))
	row("RSS: engine (largest worker) / Redis / sim", "%s (%.0f B per subscription) / %s / %s",
		mb(r.EngineRSS), r.EngineRSSPerSub, mb(r.RedisRSS), mb(r.SimRSS))
	row("engine heap in use (largest worker)", "%s (%.0f B per subscription)", mb(r.EngineHeap), r.EngineHeapPerSub)
	row("Redis used memory", "%s (%.0f B per subscription)", mb(r.RedisUsedMemory), r.RedisBytesPerSub)
	row("GHL requests per poll", "%.3f (shared polls: %v)", r.RequestsPerPoll, r.SharePolls)
	row("item → action p50 / p99", "%.0f / %.0f ms", r.ActionP50Ms, r.ActionP99Ms)
	row("items created / actions / expected", "%d / %d / %d", r.ItemsCreated, r.Actions, r.ActionsExpected)
	row("lost / duplicate actions", "%d / %d", r.Lost, r.DuplicateActions)
	row("chain tasks: completed / duplicate / unfinished", "%d / %d / %d", r.ChainTasks, r.DuplicateChains, r.UnfinishedChains)
	row("429s", "%d", r.TooMany)
	faults := int64(0)
	for _, n := range r.Faults {
		faults += n
	}
	if r.Kills > 0 || r.RedisRestarts > 0 || faults > 0 {
		row("chaos", "%d worker kills, %d Redis restarts, sim faults %v", r.Kills, r.RedisRestarts, r.Faults)
	}
	for _, s := range r.Steps {
		row("scale step", "%d subscriptions: %.0f of %.0f polls/s, lag p99 %.0f ms, engine %.3f CPU-ms/poll",
			s.Subscriptions, s.PollsServed, s.PollsDemanded, s.LagP99Ms, s.EngineCPUms)
	}
	tw.Flush()
}

func fmtTop(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// SVG plots polls served per second (left axis) and poll lag p99 and max
// (right axis) over the run.
func (r *Report) SVG() string {
	const w, h, l, rt, top, bot = 720.0, 360.0, 60.0, 60.0, 40.0, 40.0
	pw, ph := w-l-rt, h-top-bot
	maxT, maxS, maxL := 1.0, r.PollsDemanded, 1.0
	for _, p := range r.Series {
		maxT, maxS, maxL = max(maxT, p.T), max(maxS, p.Served), max(maxL, p.LagMaxMs)
	}
	maxS *= 1.1
	maxL *= 1.1
	x := func(t float64) float64 { return l + pw*t/maxT }
	ys := func(v float64) float64 { return top + ph*(1-v/maxS) }
	yl := func(v float64) float64 { return top + ph*(1-v/maxL) }
	line := func(f func(Point) float64, y func(float64) float64) string {
		var pts []string
		for _, p := range r.Series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(f(p))))
		}
		return strings.Join(pts, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14">ghlflow bench %s: %d subscriptions every %gs</text>`+"\n", l, r.Scenario, r.Subscriptions, r.EverySec)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", l, top, pw, ph)
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#1f77b4" stroke-dasharray="4 4"/>`+"\n", l, l+pw, ys(r.PollsDemanded), ys(r.PollsDemanded))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>`+"\n", line(func(p Point) float64 { return p.Served }, ys))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#d62728" stroke-width="2" points="%s"/>`+"\n", line(func(p Point) float64 { return p.LagP99Ms }, yl))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#ff9896" stroke-width="1" points="%s"/>`+"\n", line(func(p Point) float64 { return p.LagMaxMs }, yl))
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#1f77b4">%.0f</text>`+"\n", l-4, ys(f*maxS)+4, f*maxS)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="#d62728">%.0f</text>`+"\n", l+pw+4, yl(f*maxL)+4, f*maxL)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0fs</text>`+"\n", x(f*maxT), top+ph+16, f*maxT)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#1f77b4">polls/s served (dashed: demanded)</text>`+"\n", l, h-8)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="#d62728">poll lag p99 / max (ms)</text>`+"\n", w-rt, h-8)
	b.WriteString("</svg>\n")
	return b.String()
}
