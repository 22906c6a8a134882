// Package migrate is the library under msync's command line: it takes two
// endpoints and options and runs a pass, a verification or a plan of them.
//
// It owns what the command line must not: routing (a pass runs where DST
// is: local, a pull from ssh, an msync daemon or stock rsync, or a push to
// one of them), the choice of the state directory, what each kind of end
// can carry (Capabilities, the one place that knows stock rsync's protocol
// 27 carries no extended attributes), the plan scheduler (datasets in
// parallel, nested ones after the datasets inside them) and the estimate
// of the whole final window. Streams are injected through Options; nothing
// here prints except the notes of a pass to Options.Log.
package migrate
