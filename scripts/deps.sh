#!/usr/bin/env bash
# Installs the real tools msync's tests run against. Under CI a missing tool
# that cannot be installed is an error, never a silent skip.
set -euo pipefail
need=()
# rsync: Debian's current package (3.5.0 on bookworm-security) on PATH, and
# 3.2.7-1+deb12u6 unpacked beside it (RSYNC_327) for the interop matrix.
RSYNC_327=${RSYNC_327:-/opt/rsync-3.2.7-1+deb12u6/usr/bin/rsync}
rsync_ok() { local v; v=$(rsync --version 2>/dev/null) || return 1; [[ $v == *"version 3."[5-9]* ]]; }
rsync_ok || need+=(rsync)
command -v mtree >/dev/null || need+=(mtree-netbsd)
[ -x /usr/bin/time ] || need+=(time)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null || need+=(chromium) # renders the HTML report in a test
command -v setfacl >/dev/null || need+=(acl)         # sets the POSIX ACLs the tests copy
if [ ${#need[@]} -eq 0 ] && [ -x "$RSYNC_327" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${need[*]} and not root: install them (apt-get install ${need[*]})" >&2
	[ "${CI:-}" = true ] && exit 1
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$RSYNC_327" ]; then
	echo "deps: unpacking rsync 3.2.7-1+deb12u6 under ${RSYNC_327%/usr/bin/rsync}"
	tmp=$(mktemp -d)
	(cd "$tmp" && chmod 777 . && apt-get download -qq rsync=3.2.7-1+deb12u6 && dpkg -x rsync_3.2.7-1+deb12u6_*.deb "${RSYNC_327%/usr/bin/rsync}")
	rm -rf "$tmp"
	# Not "| head -1": under pipefail, rsync killed by SIGPIPE when head
	# exits first would fail the script (it did once, exit 141).
	v=$("$RSYNC_327" --version)
	echo "${v%%$'\n'*}"
fi
