#!/usr/bin/env bash
# make demo: a small migration from start to finish on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
M=$PWD/bin/msync
D=$PWD/demo
rm -rf "$D"
mkdir -p "$D"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "1. the old host's data: homes, darcs repos, mailman, exim spool" \
	"$M" bench gen "$D/oldhost" --scale 0.05 --seed 7
step "2. initial copy while the old host stays live" \
	"$M" initial "$D/oldhost" "$D/newhost" --state "$D/state" --stats
step "3. a day passes on the old host: mail arrives, queues churn, users edit" \
	"$M" bench mutate "$D/oldhost" --seed 7 --round 1
set +e
step "4. catch-up pass: only the changes move (itemized like rsync -i)" \
	bash -c "'$M' catchup '$D/oldhost' '$D/newhost' --state '$D/state' -i --stats --delta always | grep -v '^\*deleting\|^>f+++' | head -40"
set -e
step "5. downtime: final pass, which must prove the source stayed quiet" \
	"$M" catchup --final "$D/oldhost" "$D/newhost" --state "$D/state" --stats
step "6. verify before switching DNS (exit 0 only when identical)" \
	"$M" verify "$D/oldhost" "$D/newhost"
echo
echo "== 7. a damaged copy: one byte flipped at the destination, size and mtime kept"
f=$(find "$D/newhost/mailman/archives" -name '*.mbox' -type f | head -1)
touch -r "$f" "$D/ref"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
touch -r "$D/ref" "$f"
set +e
"$M" verify "$D/oldhost" "$D/newhost" >"$D/verify.txt"
rc=$?
set -e
head -1 "$D/verify.txt"
tail -1 "$D/verify.txt"
echo "verify exit status: $rc"
[ "$rc" = 1 ] || { echo "demo: verify should have failed"; exit 1; }
echo
echo "pass history: $D/state/passes.jsonl ($(wc -l < "$D/state/passes.jsonl") passes)"
