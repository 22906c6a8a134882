package plan

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/bench"
)

func TestInitOnGeneratedTree(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "oldhost")
	if _, err := bench.Gen(src, 1, 0.005); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "motd"), []byte("hi"), 0o644)
	ps, err := Init(src, "newhost:/srv")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range ps {
		got[p.Name] = p.Class + " " + p.Source + " -> " + p.Dest + " " + strings.Join(p.Exclude, ",") + " " + p.MaxAge
	}
	want := map[string]string{
		"exim":             "exim-spool " + src + "/exim -> newhost:/srv/exim  ",
		"home":             "home " + src + "/home -> newhost:/srv/home  ",
		"mailman-archives": "mailman-archives " + src + "/mailman/archives -> newhost:/srv/mailman/archives  ",
		"mailman-qfiles":   "mailman-qfiles " + src + "/mailman/qfiles -> newhost:/srv/mailman/qfiles  7d",
		"mailman":          "generic " + src + "/mailman -> newhost:/srv/mailman /archives/,/qfiles/ ",
		"projects":         "darcs " + src + "/projects -> newhost:/srv/projects  ",
		"rest":             "generic " + src + " -> newhost:/srv /exim/,/home/,/mailman/,/projects/ ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("datasets:\n got  %v\n want %v", got, want)
	}

	// Written, the plan reads back the same.
	pf := filepath.Join(dir, "plan.toml")
	f, err := os.Create(pf)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, src, ps, "plan.state", time.Now()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, err := Load(pf)
	if err != nil {
		b, _ := os.ReadFile(pf)
		t.Fatalf("%v\n%s", err, b)
	}
	if len(p.Datasets) != len(ps) {
		t.Fatalf("%d datasets read back, %d written", len(p.Datasets), len(ps))
	}
	for i, d := range p.Datasets {
		w := ps[i].Dataset
		if w.Exclude == nil {
			w.Exclude = []string{}
		}
		if !reflect.DeepEqual(d, w) {
			t.Errorf("dataset %d read back as %+v, written %+v", i, d, w)
		}
	}
	if got := p.StatePath(&p.Datasets[0]); got != filepath.Join(dir, "plan.state", p.Datasets[0].Name) {
		t.Errorf("state path %s", got)
	}
	b, _ := os.ReadFile(pf)
	for _, s := range []string{"# msync plan", "content-addressed", "left behind", "grow by appending"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("plan lacks the comment %q", s)
		}
	}
}

func TestInitSingleArea(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "input"), 0o755)
	os.MkdirAll(filepath.Join(dir, "msglog"), 0o755)
	ps, err := Init(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Class != "exim-spool" || ps[0].Source != dir {
		t.Fatalf("got %+v, want the source itself as one exim-spool dataset", ps)
	}
}

func TestLoadRejects(t *testing.T) {
	good := "version = 1\n[[dataset]]\nname = \"a\"\nclass = \"home\"\nsource = \"/s\"\ndest = \"/d\"\n"
	for _, tc := range []struct{ text, want string }{
		{good + "colour = \"blue\"\n", "unknown key"},
		{strings.Replace(good, "version = 1", "version = 2", 1), "version = 2"},
		{good + "[[dataset]]\nname = \"a\"\nsource = \"/s\"\ndest = \"/e\"\n", "name used twice"},
		{strings.Replace(good, "home", "mailman", 1), "unknown class"},
		{good + "max_age = \"7d\"\n", "mailman-qfiles only"},
		{strings.Replace(good, "\"home\"", "\"mailman-qfiles\"", 1) + "max_age = \"a week\"\n", "max_age"},
		{strings.Replace(good, "\"a\"", "\"../x\"", 1), "name must be"},
		{strings.Replace(good, "dest = \"/d\"", "", 1), "source and dest are required"},
		{good + "exclude = [\"\"]\n", "empty pattern"},
		{"version = 1\n", "no [[dataset]]"},
		{"version = 1\n[[dataset]\n", "plan"},
	} {
		pf := filepath.Join(t.TempDir(), "p.toml")
		os.WriteFile(pf, []byte(tc.text), 0o644)
		_, err := Load(pf)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), pf) {
			t.Errorf("Load(%q) = %v, want an error naming the file and %q", tc.text, err, tc.want)
		}
	}
	pf := filepath.Join(t.TempDir(), "p.toml")
	os.WriteFile(pf, []byte(good), 0o644)
	p, err := Load(pf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Select([]string{"b"}); err == nil || !strings.Contains(err.Error(), "have: a") {
		t.Errorf("Select of an unknown name: %v", err)
	}
}
