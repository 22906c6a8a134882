#!/usr/bin/env bash
# Tests scripts/layers.sh: it must fail, naming each offending import, on a
# fixture module that breaks the rules; pass when those are listed as known
# (noting a listed pair that no longer occurs); and fail on this module under
# a rule it breaks. Run by `make vet`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fix=$here/testdata/layers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "layers_test: $*" >&2; exit 1; }

# 1. Every violation of the fixture, named, and a failing exit.
LAYERS_KNOWN=/dev/null "$here/layers.sh" "$fix" >"$tmp/out" 2>&1 && fail "fixture passed; want a failure"
diff -u "$fix/want.txt" "$tmp/out" || fail "fixture: output differs from $fix/want.txt"

# 2. Listed as known, they pass; a listed pair that is gone is noted.
printf 'delta sync/engine\nsync/scan transport/remote\nverify internal/cli\nmanifest gone/pkg\n' >"$tmp/known"
LAYERS_KNOWN=$tmp/known "$here/layers.sh" "$fix" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "fixture with its violations known failed"; }
grep -q '^layers: note: known violation "manifest gone/pkg" no longer occurs' "$tmp/out" || { cat "$tmp/out"; fail "no note for a stale known violation"; }
[ "$(grep -vc '^layers: note:' "$tmp/out")" -eq 0 ] || { cat "$tmp/out"; fail "unexpected output with every violation known"; }

# 3. This module under a rule it breaks (cmd/msync imports internal/cli).
echo 'imports ; ^cmd/msync$ ; ^internal/cli$ ; a rule that must fail' >"$tmp/rule"
LAYERS_RULES=$tmp/rule "$here/layers.sh" "$here/.." >"$tmp/out" 2>&1 && fail "a rule this module breaks passed"
grep -qx 'layers: cmd/msync imports internal/cli: a rule that must fail' "$tmp/out" || { cat "$tmp/out"; fail "the broken rule's import not named"; }

# 4. A malformed rule is an error, not a silent pass.
echo 'imports ; ^cmd/msync$' >"$tmp/rule"
LAYERS_RULES=$tmp/rule "$here/layers.sh" "$fix" >"$tmp/out" 2>&1 && fail "a malformed rule passed"
grep -q '^layers: malformed rule' "$tmp/out" || { cat "$tmp/out"; fail "malformed rule not named"; }
echo "layers_test: ok"
