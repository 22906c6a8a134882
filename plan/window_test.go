package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// [window] steps keep the order the file lists them in, and bad names
// or durations are errors naming the step.
func TestWindowSteps(t *testing.T) {
	dir := t.TempDir()
	load := func(window string) (*Plan, error) {
		p := filepath.Join(dir, "p.toml")
		body := "version = 1\n" + window + "\n[[dataset]]\nname = \"a\"\nsource = \"s\"\ndest = \"d\"\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	p, err := load("[window]\nzz_stop = \"5m\"\ndns = \"10m\"\nmail-test = \"1h30m\"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{{"zz_stop", 5 * time.Minute}, {"dns", 10 * time.Minute}, {"mail-test", 90 * time.Minute}}
	if len(p.Steps) != len(want) {
		t.Fatalf("steps %v", p.Steps)
	}
	for i := range want {
		if p.Steps[i] != want[i] {
			t.Errorf("step %d: %v, want %v", i, p.Steps[i], want[i])
		}
	}
	if p, err := load(""); err != nil || len(p.Steps) != 0 {
		t.Errorf("no [window]: %v, %v", p, err)
	}
	for _, c := range []struct{ window, msg string }{
		{"[window]\ndns = \"ten\"", `[window] dns = "ten": want a duration`},
		{"[window]\ndns = \"-5m\"", `[window] dns = "-5m": want a duration`},
		{"[window]\ndns = \"0s\"", `[window] dns = "0s": want a duration`},
		{"[window]\ndns = \"200h\"", `[window] dns = "200h": want a duration`},
		{"[window]\nverify = \"5m\"", `[window] "verify": a step's name`},
		{"[window]\n\"a b\" = \"5m\"", `[window] "a b": a step's name`},
		{"[window]\ndns = 10", "dns"},
	} {
		_, err := load(c.window)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v, want %q", c.window, err, c.msg)
		}
	}
}
