#!/usr/bin/env bash
# Installs the real tools msync's tests run against. Under CI a missing tool
# that cannot be installed is an error, never a silent skip.
set -euo pipefail
need=()
command -v rsync >/dev/null || need+=(rsync)
command -v mtree >/dev/null || need+=(mtree-netbsd)
[ -x /usr/bin/time ] || need+=(time)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null || need+=(chromium) # renders the HTML report in a test
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${need[*]} and not root: install them (apt-get install ${need[*]})" >&2
	[ "${CI:-}" = true ] && exit 1
	exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
