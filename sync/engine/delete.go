package engine

import (
	"sync"

	"github.com/msync/msync/manifest"
)

// deleters is how many goroutines remove deleted paths at the end of a
// pass. An unlink mostly waits for the disk to free (and, on a discarding
// mount, discard) the file's blocks, and disks take several at once:
// measured on this project's machines, 400 unlinks over 8 directories take
// 48 ms from one goroutine and 25 ms from two to eight.
const deleters = 4

// deleteGroups orders the paths a pass deletes (in path order) for removal:
// each group runs in order, groups in parallel. A group holds the runs of
// one directory's names, each deleted directory with everything below it,
// in reverse path order: contents before their directory, and within a
// directory later names first (an exim -H before its -D), as a single
// pass from the end would. No two groups touch the same subtree.
func deleteGroups(paths []string) [][]string {
	var groups [][]string
	parent := ""
	for i := 0; i < len(paths); {
		root := paths[i]
		j := i + 1
		for j < len(paths) && manifest.IsAncestor(root, paths[j]) {
			j++
		}
		unit := paths[i:j]
		if n := len(groups); n > 0 && manifest.Parent(root) == parent {
			groups[n-1] = append(groups[n-1], unit...)
		} else {
			groups = append(groups, append([]string(nil), unit...))
			parent = manifest.Parent(root)
		}
		i = j
	}
	for _, g := range groups {
		for a, b := 0, len(g)-1; a < b; a, b = a+1, b-1 {
			g[a], g[b] = g[b], g[a]
		}
	}
	return groups
}

// deleteAll removes ap.deletes, after every add of the pass is in place.
func (ap *applier) deleteAll() {
	groups := deleteGroups(ap.deletes)
	work := make(chan []string)
	var wg sync.WaitGroup
	for range min(deleters, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs := ap.dst.root.NewDirs()
			defer dirs.Close()
			for g := range work {
				for _, path := range g {
					if err := removeAll(dirs, path); err != nil {
						ap.t.problem(path, pathErr("delete", ap.dst.root, path, err), false)
					}
				}
			}
		}()
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
}
