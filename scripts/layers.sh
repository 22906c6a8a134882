#!/usr/bin/env bash
# Fails when a package imports upward, against the package diagram of
# DESIGN.md ("Packages: dependencies point down only"). Each failure names the
# importing package and the import that breaks the rule:
#
#   layers: sync/engine imports transport/remote, which brings transport/wire: sync/* never reach ...
#
# Usage: scripts/layers.sh [MODULE_DIR]   (default: the current directory)
# Only non-test imports count: a test may import anything.
# LAYERS_KNOWN=FILE replaces the list of known violations below (the script's
# own test uses it); LAYERS_RULES=FILE adds rules in the format of RULES.
set -euo pipefail
cd "${1:-.}"

# One rule a line, fields separated by " ; ":
#   kind ; importers ; forbidden ; why
# kind: "imports" checks direct imports; "deps" checks every package a
#   package depends on, transitively; "pure" forbids importing any package
#   of the module that itself imports a package of the module (a stdlib-only
#   helper stays allowed).
# importers, forbidden: extended regexps on paths relative to the module
#   ("sync/engine"); importers may start with "!" for "every package not
#   matching".
RULES='
pure    ; ^(manifest|delta|record)$                ; .  ; a leaf imports no msync package
pure    ; ^internal/(fsx|netx|filter)$             ; .  ; internal/fsx, netx and filter sit under the leaves
imports ; ^internal/(fsx|netx|filter)$             ; ^(manifest|delta|record)$ ; internal/fsx, netx and filter sit under the leaves
deps    ; ^sync/                                   ; ^(transport|migrate)(/|$)|^(internal/cli|verify|estimate|report|bench)$ ; sync/* sit under transports, migrate, the CLI, verify, estimate, report and bench
deps    ; ^transport(/|$)                          ; ^(internal/cli|migrate(/.*)?)$ ; transports sit under migrate and the CLI
imports ; !^transport(/|$)                         ; ^transport/wire$ ; wire types stay in transport/..., converted at the edge
deps    ; ^transport/rsync$                        ; ^transport/(wire|remote)$ ; rsync'\''s protocol shares nothing with msync'\''s
imports ; !^cmd/msync$                             ; ^internal/cli$ ; only cmd/msync imports the CLI
deps    ; !^(cmd/msync|internal/cli|internal/e2e|bench|migrate(/.*)?)$ ; ^migrate(/|$) ; migrate sits under the CLI and over everything else
'
if [ -n "${LAYERS_RULES:-}" ]; then
	RULES+=$'\n'$(cat "$LAYERS_RULES")
fi

# Known violations being removed: "importer import" (the direct import that
# breaks a rule), one a line. `make vet` passes with these; empty the list
# once the changes removing them are merged. A listed pair that no longer
# occurs is reported as a note, so the list never outlives them.
KNOWN=''
if [ -n "${LAYERS_KNOWN:-}" ]; then
	KNOWN=$(cat "$LAYERS_KNOWN")
fi

mod=$(go list -m)
# Per package: "I pkg imports..." and "D pkg deps...", module packages only.
listing=$(go list -f '{{.ImportPath}}
I {{.ImportPath}}{{range .Imports}} {{.}}{{end}}
D {{.ImportPath}}{{range .Deps}} {{.}}{{end}}' ./... | grep '^[ID] ')

awk -v mod="$mod" -v rules="$RULES" -v known="$KNOWN" '
function rel(p) { if (p == mod) return "."; if (index(p, mod "/") == 1) return substr(p, length(mod) + 2); return "" }
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function matches(p, re) { if (substr(re, 1, 1) == "!") return p !~ substr(re, 2); return p ~ re }
function report(from, via, to, why,   key, msg) {
	key = from " " via
	msg = from " imports " via
	if (to != via) msg = msg ", which brings " to
	msg = msg ": " why
	if (key in isknown) { seen[key] = 1; return }
	if (msg in printed) return
	printed[msg] = 1
	print "layers: " msg
	bad = 1
}
{
	p = rel($2)
	if (p == "") next
	pkgs[p] = 1
	for (i = 3; i <= NF; i++) {
		q = rel($i)
		if (q == "") continue
		if ($1 == "I") { imp[p] = imp[p] " " q; hasmod[p] = 1 }
		else dep[p, q] = 1
	}
}
END {
	n = split(known, kl, "\n")
	for (i = 1; i <= n; i++) { k = trim(kl[i]); if (k != "" && k !~ /^#/) { gsub(/[ \t]+/, " ", k); isknown[k] = 1 } }
	n = split(rules, rl, "\n")
	for (i = 1; i <= n; i++) {
		r = trim(rl[i])
		if (r == "" || r ~ /^#/) continue
		if (split(r, f, / ; /) != 4) { print "layers: malformed rule: " r; bad = 1; continue }
		kind = trim(f[1]); from = trim(f[2]); to = trim(f[3]); why = trim(f[4])
		if (kind != "imports" && kind != "deps" && kind != "pure") { print "layers: unknown rule kind: " r; bad = 1; continue }
		for (p in pkgs) {
			if (!matches(p, from)) continue
			m = split(imp[p], im, " ")
			for (j = 1; j <= m; j++) {
				d = im[j]
				if (kind == "pure") {
					if (hasmod[d] && d ~ to) report(p, d, d, why " (" d " imports msync packages)")
					continue
				}
				if (d ~ to) report(p, d, d, why)
				if (kind != "deps") continue
				for (q in pkgs) if (((d, q) in dep) && q ~ to) report(p, d, q, why)
			}
		}
	}
	for (k in isknown) if (!(k in seen)) print "layers: note: known violation \"" k "\" no longer occurs: remove it from the list in scripts/layers.sh" > "/dev/stderr"
	exit bad
}' <<<"$listing" | sort
