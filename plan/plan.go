// Package plan reads and writes msync's plan files: the datasets of one
// migration (source, destination, class, filters), which every command can
// run together with --plan. Init inspects a tree and proposes a plan.
package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/sync/class"
)

// Version is the plan file format this msync reads and writes.
const Version = 1

// Plan is a parsed plan file.
type Plan struct {
	// Path is where the plan was read from; relative paths in it are
	// relative to its directory.
	Path     string    `toml:"-"`
	Version  int       `toml:"version"`
	StateDir string    `toml:"state_dir"` // one subdirectory per dataset
	Parallel int       `toml:"parallel"`  // datasets run at once; 0 means 2
	Datasets []Dataset `toml:"dataset"`
	// Window are the fixed steps of the downtime ([window] name =
	// "duration"), e.g. stop_services = "5m"; Steps holds them parsed, in
	// the order the file lists them.
	Window map[string]string `toml:"window,omitempty"`
	Steps  []Step            `toml:"-"`
}

// Step is a fixed step of the downtime window, as a plan declares it.
type Step struct {
	Name     string
	Duration time.Duration
}

// maxStep bounds a window step: a week is no step of a downtime.
const maxStep = 7 * 24 * time.Hour

// Dataset is one source tree and its destination.
type Dataset struct {
	Name    string   `toml:"name"`
	Class   string   `toml:"class"`
	Source  string   `toml:"source"`
	Dest    string   `toml:"dest"`
	Exclude []string `toml:"exclude"`
	// MaxAge (mailman-qfiles): bad/ and shunt/ entries older than this are
	// left behind, e.g. "7d".
	MaxAge string `toml:"max_age"`
	// DeleteExtraneous also deletes DST paths msync did not put there.
	DeleteExtraneous bool `toml:"delete_extraneous"`
	// State overrides the dataset's state directory.
	State string `toml:"state"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Load reads and checks a plan file: unknown keys, duplicate or malformed
// names, unknown classes, bad filters and max_age are errors naming the
// dataset.
func Load(path string) (*Plan, error) {
	var p Plan
	md, err := toml.DecodeFile(path, &p)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("plan %s: unknown key(s): %s", path, strings.Join(keys, ", "))
	}
	p.Path = path
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	if p.Steps, err = steps(md, p.Window); err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	return &p, nil
}

// steps parses the [window] table in the order the file lists its keys.
func steps(md toml.MetaData, window map[string]string) ([]Step, error) {
	var out []Step
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "window" {
			continue
		}
		name := k[1]
		if !nameRE.MatchString(name) || name == "verify" {
			return nil, fmt.Errorf("[window] %q: a step's name must be 1-64 letters, digits, '.', '_' or '-' (and not verify, which msync predicts)", name)
		}
		d, err := time.ParseDuration(window[name])
		if err != nil || d <= 0 || d > maxStep {
			return nil, fmt.Errorf("[window] %s = %q: want a duration like \"5m\" or \"1h30m\" (more than 0, at most a week)", name, window[name])
		}
		out = append(out, Step{Name: name, Duration: d})
	}
	return out, nil
}

func (p *Plan) check() error {
	if p.Version != Version {
		return fmt.Errorf("version = %d: this msync reads version %d plans", p.Version, Version)
	}
	if p.Parallel < 0 || p.Parallel > 64 {
		return fmt.Errorf("parallel = %d: want 1..64", p.Parallel)
	}
	if len(p.Datasets) == 0 {
		return errors.New("no [[dataset]] in the plan")
	}
	seen := map[string]bool{}
	for i := range p.Datasets {
		d := &p.Datasets[i]
		where := fmt.Sprintf("dataset %d", i+1)
		if d.Name != "" {
			where = fmt.Sprintf("dataset %q", d.Name)
		}
		if !nameRE.MatchString(d.Name) {
			return fmt.Errorf("%s: name must be 1-64 letters, digits, '.', '_' or '-'", where)
		}
		if seen[d.Name] {
			return fmt.Errorf("%s: name used twice", where)
		}
		seen[d.Name] = true
		if d.Class == "" {
			d.Class = string(class.Generic)
		}
		if _, err := class.Parse(d.Class); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if d.Source == "" || d.Dest == "" {
			return fmt.Errorf("%s: source and dest are required", where)
		}
		if _, err := filter.New(d.Exclude); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		age, err := class.ParseAge(d.MaxAge)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if age > 0 && d.Class != string(class.MailmanQfiles) {
			return fmt.Errorf("%s: max_age applies to class mailman-qfiles only", where)
		}
	}
	return nil
}

// ClassName returns the dataset's class.
func (d *Dataset) ClassName() class.Name {
	n, _ := class.Parse(d.Class)
	if n == "" {
		return class.Generic
	}
	return n
}

// Age returns the dataset's max_age (checked by Load).
func (d *Dataset) Age() time.Duration {
	a, _ := class.ParseAge(d.MaxAge)
	return a
}

// Excludes are the dataset's filters and its class's.
func (d *Dataset) Excludes() []string {
	return append(append([]string(nil), d.Exclude...), d.ClassName().Excludes()...)
}

// StatePath is the dataset's state directory.
func (p *Plan) StatePath(d *Dataset) string {
	if d.State != "" {
		return p.rel(d.State)
	}
	base := p.StateDir
	if base == "" {
		base = strings.TrimSuffix(filepath.Base(p.Path), filepath.Ext(p.Path)) + ".state"
	}
	return filepath.Join(p.rel(base), d.Name)
}

// Local resolves a local source or dest relative to the plan's directory;
// remote endpoints are returned unchanged.
func (p *Plan) Local(endpoint string, remote bool) string {
	if remote {
		return endpoint
	}
	return p.rel(endpoint)
}

func (p *Plan) rel(path string) string {
	if filepath.IsAbs(path) || p.Path == "" {
		return path
	}
	return filepath.Join(filepath.Dir(p.Path), path)
}

// Select returns the datasets named in only (all when only is empty); an
// unknown name is an error listing the known ones.
func (p *Plan) Select(only []string) ([]*Dataset, error) {
	var out []*Dataset
	if len(only) == 0 {
		for i := range p.Datasets {
			out = append(out, &p.Datasets[i])
		}
		return out, nil
	}
	for _, name := range only {
		var found *Dataset
		for i := range p.Datasets {
			if p.Datasets[i].Name == name {
				found = &p.Datasets[i]
			}
		}
		if found == nil {
			var names []string
			for _, d := range p.Datasets {
				names = append(names, d.Name)
			}
			return nil, fmt.Errorf("--only %s: no such dataset in %s (have: %s)", name, p.Path, strings.Join(names, ", "))
		}
		out = append(out, found)
	}
	return out, nil
}

// After returns, for each dataset, the datasets it must run after: those
// whose source lies inside its own (mailman/ around mailman/archives, the
// rest around everything), so that the directory metadata the outer one
// sets is not disturbed by an inner one creating its root.
func After(ds []*Dataset) [][]int {
	out := make([][]int, len(ds))
	for i, d := range ds {
		outer := strings.TrimSuffix(d.Source, "/") + "/"
		for j, o := range ds {
			if j != i && strings.HasPrefix(o.Source, outer) {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}

// Workers returns how many datasets run at once.
func (p *Plan) Workers() int {
	if p.Parallel == 0 {
		return 2
	}
	return p.Parallel
}

// Exists reports whether a path exists (for Init).
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
