package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no headless Chromium on this machine: `apt-get install -y chromium` runs the browser test")
	return ""
}

// TestBrowser drives headless Chromium: it logs in with the operator key,
// opens the run history, a run's page (replaying its item with the page's
// button) and /monitoring, saves a screenshot of each in the test's temp
// dir and reads the pages' text.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	s := newSite(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	dir := t.TempDir()
	shot := func(name string) error {
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), buf, 0o600)
	}
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	step := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("open /", chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/"), chromedp.WaitVisible(`input[name=key]`)))
	step("login screenshot", shot("login.png"))
	step("log in", chromedp.Do(ctx, chromedp.SendKeys(`input[name=key]`, s.operator), chromedp.Submit(`input[name=key]`),
		chromedp.WaitVisible(`//h2[text()="Subscriptions"]`)))
	index := text("main")
	step("index screenshot", shot("index.png"))
	step("open the run", chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/runs/"+s.acmeRun), chromedp.WaitVisible(`//h2[text()="Steps"]`)))
	run := text("main")
	step("replay", chromedp.Do(ctx, chromedp.Click(`//button[text()="Replay this item"]`), chromedp.WaitVisible(`#result`)))
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("result").textContent.includes("202")`,
		chromedp.WithPollingTimeout(10*time.Second)))
	step("the replay's answer", err)
	result := text("#result")
	step("run screenshot", shot("run.png"))
	step("open /monitoring", chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/monitoring/")))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.body.innerText.includes("Queues")`, chromedp.WithPollingTimeout(20*time.Second)))
	step("asynqmon's page", err)
	mon := text("body")
	step("monitoring screenshot", shot("monitoring.png"))
	for _, c := range []struct{ page, text, want string }{
		{"index", index, "Tenant acme"}, {"index", index, "Tenant beta"}, {"index", index, "api-new-contact-note"},
		{"run", run, "Welcome Grace from Tenant acme."}, {"run", run, "ghl.contacts.notes.create"},
		{"replay", result, "task_id"}, {"monitoring", mon, "Queues"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s page lacks %q:\n%s", c.page, c.want, c.text)
		}
	}
	for _, name := range []string{"login.png", "index.png", "run.png", "monitoring.png"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	t.Logf("screenshots in %s", dir)
}
