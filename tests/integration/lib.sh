# shellcheck shell=bash
# lib.sh: helpers for integration tests; each tests/integration/*.sh starts with
#
#   . "$(dirname "$0")/lib.sh"
#
# and is run by tests/run with FV_BIN (the fabvault binary), FV_BUILD (the
# build directory) and FV_SRC (the repository root) set. A test exits 0 when
# it passes, 77 to be skipped (see skip), anything else when it fails. stdin
# is /dev/null and there is no controlling terminal, so nothing can prompt.
#
# Provides:
#   $T                      a fresh directory for this test, removed on exit
#                           (kept, and its path printed, with FV_KEEP=1)
#   fv ARGS...              run "$FV_BIN" ARGS...
#   fv_init REPO [ARGS...]  fv init REPO --kdf interactive ARGS... (cheap Argon2id)
#   assert_eq ACTUAL EXPECTED [WHAT]
#   assert_exit CODE CMD... run CMD, fail unless it exits CODE (its stderr is
#                           printed on mismatch and kept in $T/stderr either way)
#   fail MSG / skip MSG     end the test as failed / skipped (exit 77)
#   need_root, need_cmd CMD skip unless root / unless CMD exists
#   slow                    skip under `tests/run --quick` (FV_QUICK=1)
#   gentree DIR [ARGS...]   tests/tools/gentree.sh, --size small (the default)
#   treecmp [ARGS...] A B   tests/tools/treecmp.c, as built in $FV_BUILD/tests
#   reframe PACK OFFSET     tests/tools/reframe.c: the frame's checksum made
#                           to match its (damaged) payload again
#   on_exit CMD             run CMD (eval'd) at exit, before $T is removed
# FABVAULT_PASSPHRASE is test-passphrase (set it again to test another one);
# CREDENTIALS_DIRECTORY is unset so no ambient secret leaks in.

set -Eeuo pipefail
trap 'fv_err_trap $? "$BASH_COMMAND"' ERR

: "${FV_BIN:?FV_BIN is not set: run integration tests through tests/run}"
: "${FV_BUILD:?FV_BUILD is not set: run integration tests through tests/run}"
: "${FV_SRC:?FV_SRC is not set: run integration tests through tests/run}"

export FABVAULT_PASSPHRASE=test-passphrase
unset CREDENTIALS_DIRECTORY

T=$(mktemp -d "${TMPDIR:-/tmp}/fv-$(basename "$0" .sh).XXXXXX")
# each test has its own files cache (fabvault snapshot keeps it under $XDG_CACHE_HOME)
export XDG_CACHE_HOME=$T/.cache
fv_exit_cmds=()

on_exit() {
	fv_exit_cmds+=("$1")
}

fv_cleanup() {
	local rc=$? c
	set +e
	trap - ERR # a failing clean-up command is not a test failure
	trap '' HUP INT TERM # a timeout signals more than once: finish cleaning up
	for c in "${fv_exit_cmds[@]}"; do
		eval "$c"
	done
	if [ "${FV_KEEP:-0}" = 1 ]; then
		echo "kept test directory: $T" >&2
	else
		# entries of mode 0000 (and read-only directories) must be opened up first
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
	exit "$rc"
}
trap fv_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM # a timeout: clean up all the same

# file:line of the innermost caller outside lib.sh, for messages.
fv_where() {
	local i
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		[ "${BASH_SOURCE[i]}" = "${BASH_SOURCE[0]}" ] || break
	done
	echo "${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
}

# set -e ends the test at a failing command: say which one, and where.
fv_err_trap() {
	echo "FAIL: $(fv_where): exit $1: $2" >&2
}

fail() {
	echo "FAIL: $(fv_where): $*" >&2
	exit 1
}

skip() {
	echo "$*"
	exit 77
}

need_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}

need_cmd() {
	command -v "$1" >/dev/null || skip "needs $1"
}

slow() {
	[ "${FV_QUICK:-0}" != 1 ] || skip "slow test, skipped by --quick"
}

fv() {
	"$FV_BIN" "$@"
}

fv_init() {
	local repo=$1
	shift
	fv init "$repo" --kdf interactive "$@"
}

# json_field KEY: the value of KEY in the JSON object on stdin (python3).
json_field() {
	python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# snapshots_count REPO: how many snapshots `fabvault list` shows.
snapshots_count() {
	fv list "$1" --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}

assert_exit() {
	local want=$1 rc=0
	shift
	"$@" 2>"$T/stderr" || rc=$?
	if [ "$rc" != "$want" ]; then
		echo "--- stderr of: $*" >&2
		cat "$T/stderr" >&2
		echo "---" >&2
		fail "expected exit $want, got $rc: $*"
	fi
}

gentree() {
	"$FV_SRC/tests/tools/gentree.sh" "$@"
}

treecmp() {
	[ -x "$FV_BUILD/tests/treecmp" ] || fail "$FV_BUILD/tests/treecmp is not built (tests/meson.build)"
	"$FV_BUILD/tests/treecmp" "$@"
}

reframe() {
	[ -x "$FV_BUILD/tests/reframe" ] || fail "$FV_BUILD/tests/reframe is not built (tests/meson.build)"
	"$FV_BUILD/tests/reframe" "$@"
}

# assert_stderr ERE         fail unless the stderr kept by the last assert_exit
#                           matches ERE (grep -E, case-insensitive); used to
#                           check that a failure says what happened
assert_stderr() {
	grep -E -i -q -e "$1" "$T/stderr" && return 0
	echo "--- stderr:" >&2
	cat "$T/stderr" >&2
	echo "---" >&2
	fail "stderr does not match /$1/"
}

# netns_pair: two network namespaces of this test, $NS_A (server side) and
# $NS_B (client side), joined by two veth pairs, the two paths of the
# fabric: 10.200.1.1 (A) <-> 10.200.1.2 (B) and 10.200.2.1 <-> 10.200.2.2,
# MTU 9000. B's ends are $IF_B0 and $IF_B1 (take one down to cut a path).
# Removed at exit. Tests send only to these addresses, and only after
# in_ns has checked that the namespace exists.
netns_pair() {
	need_root
	need_cmd ip
	local id=$$
	NS_A=fvtA$id NS_B=fvtB$id IF_B0=fv${id}b0 IF_B1=fv${id}b1
	ip netns add "$NS_A" || skip "cannot create network namespaces here"
	on_exit "ip netns del $NS_A"
	ip netns add "$NS_B"
	on_exit "ip netns del $NS_B"
	local i
	for i in 0 1; do
		ip link add "fv${id}a$i" type veth peer name "fv${id}b$i"
		ip link set "fv${id}a$i" netns "$NS_A"
		ip link set "fv${id}b$i" netns "$NS_B"
		ip -n "$NS_A" addr add "10.200.$((i + 1)).1/24" dev "fv${id}a$i"
		ip -n "$NS_B" addr add "10.200.$((i + 1)).2/24" dev "fv${id}b$i"
		ip -n "$NS_A" link set "fv${id}a$i" mtu 9000 up
		ip -n "$NS_B" link set "fv${id}b$i" mtu 9000 up
	done
	ip -n "$NS_A" link set lo up
	ip -n "$NS_B" link set lo up
}

# netns_check NS: fail unless NS is a namespace this test made and exists.
netns_check() {
	case $1 in fvt[AB]$$) ;; *) fail "'$1' is not a network namespace of this test" ;; esac
	ip netns list | grep -qw "^$1" || fail "network namespace $1 does not exist"
}

# in_ns NS CMD...: run CMD inside network namespace NS, after checking that
# NS is one this test made (never the host's network). For a command in the
# background, call netns_check and then `ip netns exec NS CMD &` yourself, so
# that $! is the command's own pid (ip netns exec execs it) and a kill at
# exit reaches it.
in_ns() {
	local ns=$1
	shift
	netns_check "$ns"
	ip netns exec "$ns" "$@"
}

# node_keys DIR NAME...: a node key for each NAME in DIR/NAME, and each
# one's DIR/NAME/authorized_peers listing all the others.
node_keys() {
	local dir=$1 n m
	shift
	for n in "$@"; do
		fv key gen-node --dir "$dir/$n" --name "$n" >/dev/null 2>&1
	done
	for n in "$@"; do
		: >"$dir/$n/authorized_peers"
		for m in "$@"; do
			[ "$m" = "$n" ] || cat "$dir/$m/node.pub" >>"$dir/$n/authorized_peers"
		done
	done
}

# in_net_b CMD...: CMD in namespace B's network (netns_pair), but in this
# mount namespace (`ip netns exec` would give it a private one, and a FUSE
# mount made there would be seen by nobody else).
in_net_b() {
	netns_check "$NS_B"
	nsenter --net="/run/netns/$NS_B" "$@"
}

# wait_for FILE ERE [SECONDS]: wait until FILE has a line matching ERE.
wait_for() {
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		grep -E -q -e "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "--- $1:" >&2
	cat "$1" >&2 || true
	fail "no line matching /$2/ in $1 within ${3:-10} s"
}

# fs_mounted MNT LOG: wait up to 10 s until a FUSE filesystem is mounted at
# MNT; fail with LOG's content otherwise.
fs_mounted() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q " $1 fuse" /proc/self/mounts && return 0
		sleep 0.1
	done
	fail "fabvault-fs did not mount at $1: $(cat "$2")"
}

# fs_unmount MNT: unmount the FUSE filesystem at MNT (retried for 5 s while
# busy); fail if it stays mounted.
fs_unmount() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q " $1 fuse" /proc/self/mounts || return 0
		fusermount3 -u "$1" 2>/dev/null || true
		sleep 0.1
	done
	fail "$1 is still mounted"
}
