#!/usr/bin/env bash
# make demo: a small migration from start to finish on this machine, run
# from a plan file, ending with the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
M=$PWD/bin/msync
D=$PWD/demo
rm -rf "$D"
mkdir -p "$D"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "1. the old host's data: homes, darcs repos, mailman, exim spool" \
	"$M" bench gen "$D/oldhost" --scale 0.05 --seed 7
step "2. a plan: one dataset per area, each with its class (see $D/plan.toml)" \
	"$M" plan init "$D/oldhost" --dest "$D/newhost" -o "$D/plan.toml"
step "3. initial copy while the old host stays live (datasets two at a time)" \
	"$M" initial --plan "$D/plan.toml" -q
for r in 1 2 3; do
	step "4.$r. time passes on the old host: mail arrives, queues churn, users edit" \
		"$M" bench mutate "$D/oldhost" --seed 7 --round "$r"
	step "4.$r. catch-up pass: only the changes move" \
		"$M" catchup --plan "$D/plan.toml" 2>/dev/null
done
step "5. how the diff shrinks, pass after pass" \
	"$M" status --plan "$D/plan.toml" --only mailman-archives --only exim
step "6. before announcing the window: how long would the final pass take if it started now?" \
	"$M" estimate --plan "$D/plan.toml"
"$M" bench mutate "$D/oldhost" --seed 7 --round 4 >/dev/null
step "7. downtime: the final pass, which must prove the source stayed quiet" \
	"$M" catchup --final --plan "$D/plan.toml"
step "8. verify before switching DNS (exit 0 only when identical)" \
	"$M" verify --plan "$D/plan.toml"
echo
echo "== 9. a damaged copy: one byte flipped at the destination, size and mtime kept"
f=$(find "$D/newhost/mailman/archives" -name '*.mbox' -type f -print -quit)
touch -r "$f" "$D/ref"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
touch -r "$D/ref" "$f"
set +e
"$M" verify --plan "$D/plan.toml" --only mailman-archives >"$D/verify.txt"
rc=$?
set -e
head -1 "$D/verify.txt"
tail -1 "$D/verify.txt"
echo "verify exit status: $rc"
[ "$rc" = 1 ] || { echo "demo: verify should have failed"; exit 1; }
rel=${f#"$D/newhost/"}
cp -p "$D/oldhost/$rel" "$f"
step "10. repaired; verify again" \
	"$M" verify --plan "$D/plan.toml" --only mailman-archives -q
step "11. the report: datasets, convergence chart, final window, verdicts" \
	"$M" report --plan "$D/plan.toml" -o "$D/report.html"
echo
echo "open $D/report.html in a browser"
