package engine

import "testing"

// TestItemize: rsync's %i codes (as rsync -i prints them) from actions.
func TestItemize(t *testing.T) {
	a1, a2 := ent("a", 1, 1, 0o644), ent("a", 2, 2, 0o644)
	l := ent("l:l>x", 1, 1, 0o777)
	owned := ent("a", 1, 1, 0o644)
	owned.UID = 7
	tests := []struct {
		a    *action
		c    metaCheck
		want string // "" when no item
	}{
		{&action{op: actCopy, s: a1}, metaCheck{}, ">f+++++++++ a"},
		{&action{op: actCopy, s: a2, d: a1}, metaCheck{}, ">f.st...... a"},
		{&action{op: actCreate, s: ent("d:d", 0, 1, 0o755)}, metaCheck{}, "cd+++++++++ d/"},
		{&action{op: actCreate, s: l}, metaCheck{}, "cL+++++++++ l -> x"},
		{&action{op: actCreate, s: l, d: ent("l:l>y", 1, 1, 0o777)}, metaCheck{}, "cLc.t...... l -> x"},
		{&action{op: actMeta, s: ent("a", 1, 1, 0o600), d: a1}, metaCheck{}, ".f...p..... a"},
		{&action{op: actMeta, s: owned, d: a1}, metaCheck{owners: true}, ".f....o.... a"},
		{&action{op: actMeta, s: ent("d:", 0, 2, 0o755), d: ent("d:", 0, 1, 0o755)}, metaCheck{}, ".d..t...... ./"},
		{&action{op: actLink, s: ent("b", 1, 1, 0o644), leader: &linkGroup{path: "a"}}, metaCheck{}, "hf+++++++++ b => a"},
		{&action{op: actDelete, d: ent("d:d", 0, 1, 0o755)}, metaCheck{}, "*deleting   d/"},
		{&action{op: actReplace, s: a1, d: ent("d:a", 0, 1, 0o755)}, metaCheck{}, "*deleting   a/"},
		{&action{op: actKeep, s: a1, d: a1}, metaCheck{}, ""},
		{&action{op: actExtra, d: a1}, metaCheck{}, ""},
	}
	for _, tt := range tests {
		it, ok := itemize(tt.c, tt.a)
		got := ""
		if ok {
			got = it.String()
		}
		if got != tt.want {
			t.Errorf("%s %s: got %q, want %q", tt.a.op, tt.want, got, tt.want)
		}
	}
}
