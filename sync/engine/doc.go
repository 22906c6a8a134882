// Package engine runs one msync pass into a destination on this host: a
// scan of both sides, a merge-join against the last committed manifests,
// the transfer of what changed (whole file, delta or append), deletions,
// directory metadata, and the atomic commit of the new manifests and the
// pass record.
//
// # The pass as stages
//
// Run opens the pass and (*pass).run orchestrates it; each stage is its
// own type in its own file:
//
//	inputs   (inputs.go)   destination made and locked; last manifests; both scans started
//	planner  (plan.go)     merges the ordered streams, decides an action per path
//	itemize  (itemize.go)  rsync's %i line of an action
//	applier  (apply.go,    carries actions out at the destination; workers copy
//	          worker.go)   files; links, deletions, directory metadata at the end
//	recorder (record.go)   the feed of actions to the manifest writer; the Recorder
//	                       (manifests, commit, pass record); the final re-check
//	tally    (tally.go)    the Result as the stages fill it in: statistics, problems
//
// # One changed file, from scan to commit
//
// Say mail/inbox grew since the last pass. The source scan (sync/tree,
// started by openInputs in inputs.go) yields its entry in manifest order;
// the destination's scan yields the old copy's entry, and the last
// committed manifests the entry msync recorded. The planner's next (plan.go)
// takes the three entries at that path as one row; step sees a regular file
// whose size differs at the destination (rsync's quick check) and emits an
// action: actCopy, with the source, destination and last entries and how to
// copy (a class's rules may ask for the append path).
//
// The pass's do (pass.go) is the planner's sink: itemize turns the action
// into ">f.st...... mail/inbox" for --itemize-changes; the tally
// (tally.go) counts an update and its bytes; the applier's copy (apply.go)
// journals the intent to make the name visible and hands a fileJob to a
// worker; the feed (record.go) sends the writer a slot for the path,
// holding the job. The planner goes on with the next path meanwhile.
//
// A worker (worker.go) reads the file (directly for a local source, as a
// delta or the appended tail from a remote one), writes it to a temp file
// beside the old copy, checks that the source did not move under the read,
// and renames it into place; it closes the job's done channel with the
// file's new destination entry. The manifest writer, which waits for each
// slot's job in path order, adds the source entry (with its new hash) and
// the destination entry to the Recorder's new manifests.
//
// When the merge is done, the applier's finish makes hard links, deletes
// and sets directory metadata (the parent's mtime, changed by the rename);
// the writer closes the manifests; the Recorder commits them (run) and
// appends the pass record to the state directory's history.
//
// # Capabilities
//
// A Source may have more than the Source interface: capabilities.go
// declares what the engine looks for (localTree, basisSigner, aheadFetcher,
// wireCounter), and the engine never names a source's concrete type.
//
// # Without a destination scan
//
// A pass whose destination is stock rsync's receiver plans with PlanSource
// (the source scan against the last committed source manifest) and records
// with OpenRecorder: see their doc comments.
package engine
