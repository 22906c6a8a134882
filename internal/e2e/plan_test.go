package e2e

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/bench"
	"github.com/msync/msync/report"
)

// migrate runs a whole plan the way the README tells: plan init, initial,
// mutate + catch-up rounds, the final pass, verify; then it returns the plan file.
func migrate(t *testing.T, dir string, rounds int) (plan, src, dst string) {
	t.Helper()
	src, dst = filepath.Join(dir, "oldhost"), filepath.Join(dir, "newhost")
	if _, err := bench.Gen(src, 7, 0.01); err != nil {
		t.Fatal(err)
	}
	plan = filepath.Join(dir, "plan.toml")
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := msync(args...)
		if code != want {
			t.Fatalf("msync %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out
	}
	out := run(0, "plan", "init", src, "--dest", dst, "-o", plan)
	for _, ds := range []string{"home", "exim", "projects", "mailman-archives", "mailman-qfiles", "mailman", "rest"} {
		if !strings.Contains(out, ds) {
			t.Fatalf("plan init did not propose %s:\n%s", ds, out)
		}
	}
	run(0, "initial", "--plan", plan, "-q")
	for r := 1; r <= rounds; r++ {
		if _, err := bench.Mutate(src, 7, r); err != nil {
			t.Fatal(err)
		}
		run(0, "catchup", "--plan", plan, "-q")
	}
	out = run(0, "catchup", "--final", "--plan", plan)
	if !strings.Contains(out, "queue ") || !strings.Contains(out, "held") {
		t.Errorf("final pass summary lacks queue counts or held entries:\n%s", out)
	}
	out = run(0, "verify", "--plan", plan)
	if !strings.Contains(out, "IDENTICAL: every dataset matches") && (isRoot() || !strings.Contains(out, "IDENTICAL in what was compared: every dataset matches")) {
		t.Fatalf("verify --plan:\n%s", out)
	}
	return plan, src, dst
}

// A plan migration converges; status shows its passes; verify excuses
// exactly what the qfiles class leaves behind; the whole tree matches
// otherwise (rsync, the final judge, run over the tree minus those files).
func TestPlanMigration(t *testing.T) {
	dir := t.TempDir()
	plan, src, dst := migrate(t, dir, 2)
	code, out, errs := msync("status", "--plan", plan, "--only", "exim")
	if code != 0 || !strings.Contains(out, "exim (exim-spool): 4 pass(es)") || !strings.Contains(out, "final") || !strings.Contains(out, "last verify: IDENTICAL") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = msync("estimate", "--plan", plan, "--gap", "20m")
	if code != 0 || !strings.Contains(out, "final pass: about") || !strings.Contains(out, "dominated by") {
		t.Fatalf("estimate: exit %d\n%s", code, out)
	}
	// Whole-tree check: everything but the old bad/ and shunt/ files matches.
	needTool(t, "rsync")
	outb, err := exec.Command("rsync", "-aH", "--delete", "-c", "-n", "-i", "--exclude=/mailman/qfiles/bad/", "--exclude=/mailman/qfiles/shunt/", src+"/", dst+"/").CombinedOutput()
	if err != nil || len(outb) != 0 {
		t.Fatalf("rsync finds differences after the plan's final pass (%v):\n%s", err, outb)
	}
	// A flipped byte shows in verify --plan, exit 1, naming the dataset.
	var victim string
	filepath.Walk(filepath.Join(dst, "home"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 100 && victim == "" {
			victim = p
		}
		return nil
	})
	flipByteKeepTimes(t, victim)
	code, out, _ = msync("verify", "--plan", plan, "--only", "home")
	if code != 1 || !strings.Contains(out, "[home] * ") || !strings.Contains(out, "DIFFERENT") {
		t.Fatalf("verify after a flipped byte: exit %d\n%s", code, out)
	}
}

// The report renders in a real browser: headless Chromium prints the page's
// DOM and a screenshot; the text names every dataset and the verdicts, and
// the chart is drawn at its size (its bar colour spans most of its width).
func TestReportInChromium(t *testing.T) {
	chromium := needTool(t, "chromium")
	dir := t.TempDir()
	plan, _, dst := migrate(t, dir, 2)
	html := filepath.Join(dir, "report.html")
	if code, out, errs := msync("report", "--plan", plan, "-o", html, "--gap", "15m"); code != 0 {
		t.Fatalf("report: exit %d\n%s%s", code, out, errs)
	}
	dom, img := renderChromium(t, chromium, html, dir)
	for _, s := range []string{"msync migration report", "Predicted final pass", "IDENTICAL", "exim-spool", "mailman-qfiles",
		"darcs", "left behind as planned", "queued at source", `id="convergence"`, fmt.Sprintf(`width="%d"`, report.ChartWidth)} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered page lacks %q", s)
		}
	}
	if strings.Contains(dom, "DIFFERENT") || strings.Contains(dom, "not verified") {
		t.Errorf("a verified migration shows a red or grey verdict")
	}
	bar := colorBox(img, report.BarColor)
	line := colorBox(img, report.LineColor)
	t.Logf("bar pixels %d in %v, line pixels %d in %v", bar.n, bar.r, line.n, line.r)
	if bar.n < 3000 || bar.r.Dx() < report.ChartWidth/2 || bar.r.Dy() < report.ChartHeight/3 {
		t.Errorf("chart bars not drawn at size: %d pixels in %v", bar.n, bar.r)
	}
	if line.n < 100 || line.r.Dx() < report.ChartWidth/2 {
		t.Errorf("duration line not drawn: %d pixels in %v", line.n, line.r)
	}
	if data := colorBox(img, report.BytesColor); data.n < 100 || data.r.Dx() < report.ChartWidth/2 {
		t.Errorf("bytes line not drawn: %d pixels in %v", data.n, data.r)
	}

	// A difference turns the dataset red.
	var victim string
	filepath.Walk(filepath.Join(dst, "projects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 100 && victim == "" {
			victim = p
		}
		return nil
	})
	flipByteKeepTimes(t, victim)
	msync("verify", "--plan", plan, "--only", "projects")
	if code, out, errs := msync("report", "--plan", plan, "-o", html); code != 0 {
		t.Fatalf("report: exit %d\n%s%s", code, out, errs)
	}
	dom, _ = renderChromium(t, chromium, html, dir)
	if !strings.Contains(dom, "DIFFERENT") || strings.Contains(dom, "every dataset verified after its last pass") {
		t.Errorf("a failed verification is not shown red")
	}
}

func renderChromium(t *testing.T, chromium, html, dir string) (string, image.Image) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir=" + filepath.Join(dir, "chromium-profile"), "--window-size=1200,2000"}
	dom, err := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", "file://"+html)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	shot := filepath.Join(dir, "report.png")
	os.Remove(shot)
	if out, err := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+shot, "file://"+html)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 2000 {
		t.Fatalf("screenshot is %v, want 1200x2000", b)
	}
	return string(dom), img
}

type box struct {
	r image.Rectangle
	n int
}

// colorBox finds the pixels of one "#rrggbb" colour and their bounding box.
func colorBox(img image.Image, hex string) box {
	var want [3]uint32
	fmt.Sscanf(hex, "#%02x%02x%02x", &want[0], &want[1], &want[2])
	var b box
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 == want[0] && g>>8 == want[1] && bl>>8 == want[2] {
				p := image.Rect(x, y, x+1, y+1)
				if b.n == 0 {
					b.r = p
				} else {
					b.r = b.r.Union(p)
				}
				b.n++
			}
		}
	}
	return b
}
