#!/usr/bin/env bash
# Gateways side by side (issue #19, part 1): tokenguard against a bare
# httputil.ReverseProxy, nginx, oauth2-proxy, Apache httpd + mod_oauth2 and
# HAProxy's jwt_verify, all on 127.0.0.1, in front of the same upstream,
# with the same tokens, request mix and load generator (./gateways, a Go
# program; wrk as a cross-check).
#
#   ./gateways.sh                 full run (under 10 minutes on 2 cores):
#                                 writes results/gateways.json and results/gateways.md
#   ./gateways.sh -check          CI: correctness pass + ~1 s per (gateway, scenario);
#   GATEWAYS_CHECK=1 ./gateways.sh    exit 1 on any wrong decision; writes nothing
#
# Any other argument goes to the Go driver (see `go run ./gateways -h`).
#
# It installs the peers it needs first: Debian packages nginx, haproxy,
# apache2, libapache2-mod-oauth2 and wrk (apt-get, with sudo when not
# root), and oauth2-proxy built from source (module proxy, its own module:
# not added to bench/go.mod) into a cache directory. A peer whose install
# fails is skipped LOUDLY: a row in the report saying why, and a line on
# stderr. Servers run as the current user, in the foreground, from config
# files in a temporary directory, on free loopback ports; the driver stops
# them all on exit, failure or ^C.
set -euo pipefail

cd "$(dirname "$0")"

O2P_VERSION=v7.15.6
O2P_MODULE=github.com/oauth2-proxy/oauth2-proxy/v7
CACHE_DIR=${GATEWAYS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenguard-bench}
DRIVER_TIMEOUT=${GATEWAYS_TIMEOUT:-900} # seconds; the driver's own bounds are tighter

check=${GATEWAYS_CHECK:-0}
args=()
for a in "$@"; do
	case "$a" in
	-check | --check) check=1 ;;
	*) args+=("$a") ;;
	esac
done
if [ "$check" = 1 ]; then
	args=(-check "${args[@]}")
fi

started=$(date +%s)
say() { echo "gateways.sh: $*" >&2; }
loud_skip() {
	echo "gateways.sh: ********************************************************" >&2
	echo "gateways.sh: SKIPPING $1: $2" >&2
	echo "gateways.sh: ********************************************************" >&2
	args+=(-skip "$1=$2")
}

work=$(mktemp -d "${TMPDIR:-/tmp}/gateways-sh-XXXXXX")
# The driver notes here the process groups of the servers it starts
# (nginx, Apache, HAProxy fork workers); should it die without stopping
# them, they are killed on the way out.
export GATEWAYS_PGID_FILE="$work/pgids"
cleanup() {
	if [ -f "$GATEWAYS_PGID_FILE" ]; then
		while read -r pg; do
			if [ -n "$pg" ] && kill -0 -- "-$pg" 2>/dev/null; then
				say "killing leftover process group $pg"
				kill -KILL -- "-$pg" 2>/dev/null || true
			fi
		done <"$GATEWAYS_PGID_FILE"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Debian packages ---------------------------------------------------
sudo_cmd=()
can_install=1
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo_cmd=(sudo -n)
	else
		can_install=0
	fi
fi

have_nginx() { [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; }
have_haproxy() { [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1; }
have_apache2() { [ -x /usr/sbin/apache2 ]; }
have_mod_oauth2() { [ -f /usr/lib/apache2/modules/mod_oauth2.so ]; }
have_wrk() { command -v wrk >/dev/null 2>&1; }

missing=()
have_nginx || missing+=(nginx)
have_haproxy || missing+=(haproxy)
have_apache2 || missing+=(apache2)
have_mod_oauth2 || missing+=(libapache2-mod-oauth2)
have_wrk || missing+=(wrk)

apt_install() {
	# Bounded: a stuck lock or mirror must not hang the run.
	DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "$@" \
		>>"$work/apt.log" 2>&1
}
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$can_install" = 1 ]; then
		say "installing ${missing[*]} (apt-get; log in $work/apt.log while running)"
		if ! apt_install "${missing[@]}"; then
			timeout 300 "${sudo_cmd[@]}" apt-get update -q >>"$work/apt.log" 2>&1 || true
			# One by one, so that one failure does not cost the others.
			for p in "${missing[@]}"; do apt_install "$p" || say "apt-get install $p failed: $(tail -n 3 "$work/apt.log" | tr '\n' ' ')"; done
		fi
	else
		say "cannot install ${missing[*]}: not root and no sudo"
	fi
fi
why_pkg="apt-get install failed or not permitted (not root, no sudo); see the message above"
have_nginx || loud_skip nginx "nginx not installed: $why_pkg"
have_haproxy || loud_skip haproxy "haproxy not installed: $why_pkg"
if ! have_apache2; then
	loud_skip mod_oauth2 "apache2 not installed: $why_pkg"
elif ! have_mod_oauth2; then
	loud_skip mod_oauth2 "libapache2-mod-oauth2 not installed: $why_pkg"
fi
if ! have_wrk; then
	say "********************************************************"
	say "wrk not installed ($why_pkg): NO wrk cross-check"
	say "********************************************************"
	args+=(-wrk-duration 0)
fi
have_nginx && args+=(-nginx "$(command -v nginx || echo /usr/sbin/nginx)")
have_haproxy && args+=(-haproxy "$(command -v haproxy || echo /usr/sbin/haproxy)")

# --- oauth2-proxy, built from source in its own module -------------------
o2p_bin="$CACHE_DIR/oauth2-proxy-$O2P_VERSION"
if [ ! -x "$o2p_bin" ]; then
	say "building oauth2-proxy $O2P_VERSION from source (cached in $CACHE_DIR; a cold build takes minutes)"
	mkdir -p "$CACHE_DIR"
	o2p_ok=0
	# Outside any module, so nothing touches bench/go.mod.
	if o2p_json=$(cd "$work" && GO111MODULE=on GOFLAGS=-mod=mod timeout 300 go mod download -json "$O2P_MODULE@$O2P_VERSION" 2>"$work/o2p.log"); then
		o2p_dir=$(printf '%s\n' "$o2p_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
		if [ -n "$o2p_dir" ] && (cd "$o2p_dir" && GOFLAGS=-mod=mod timeout 900 go build -trimpath \
			-ldflags "-X $O2P_MODULE/pkg/version.VERSION=$O2P_VERSION" -o "$o2p_bin.tmp" . ) >>"$work/o2p.log" 2>&1; then
			mv "$o2p_bin.tmp" "$o2p_bin"
			o2p_ok=1
		fi
	fi
	if [ "$o2p_ok" != 1 ]; then
		say "oauth2-proxy build failed: $(tail -n 5 "$work/o2p.log" | tr '\n' ' ')"
	fi
fi
if [ -x "$o2p_bin" ]; then
	args+=(-oauth2-proxy "$o2p_bin")
else
	loud_skip oauth2-proxy "go build of $O2P_MODULE@$O2P_VERSION failed (module proxy unreachable or build error)"
fi

# --- the driver ------------------------------------------------------------
say "building the driver (./gateways)"
go build -o "$work/gateways" ./gateways
say "setup took $(($(date +%s) - started)) s; running the driver"
# In the background, so that a signal to this script is handled at once:
# the driver gets SIGINT, stops every server it started and exits. timeout
# bounds the whole run (--foreground: stay in this process group, so a ^C
# at the terminal reaches the driver directly too).
set +e
timeout --foreground --signal=INT --kill-after=30 "$DRIVER_TIMEOUT" "$work/gateways" "${args[@]}" &
driver=$!
trap 'kill -INT "$driver" 2>/dev/null' INT TERM
wait "$driver"
rc=$?
while kill -0 "$driver" 2>/dev/null; do
	wait "$driver"
	rc=$?
done
trap - INT TERM
set -e
say "done in $(($(date +%s) - started)) s (exit $rc)"
exit "$rc"
