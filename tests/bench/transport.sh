#!/usr/bin/env bash
# transport.sh [--runs N] [--seconds S] [--size BYTES] [--inflight N] [--count N]
#              [--msg-size BYTES] [--json FILE] [--keep] [--no-pin] [--fabvault BIN]
#
# The transport benchmark: fabvault's TCP backend against the plain network,
# in one run, over ONE veth pair (MTU 9000) between two network namespaces
# that the script makes itself (A 10.200.9.1/24, B 10.200.9.2/24) and removes
# on exit. Servers run in A, clients in B; nothing is sent to any other
# address. Each run of the --runs (default 3) measures, in turn:
#   iperf3               one TCP stream, `iperf3 -c 10.200.9.1 -t S -R -J`: the ceiling
#                        (-R: A sends, B receives, the direction of bench's bulk)
#   bench integrity      `fabvault fabric bench --mode integrity` (XXH3 trailers)
#   bench encrypt        `fabvault fabric bench --mode encrypt` (AEAD)
#                        both with --size (default 1 MiB) bulk replies, --inflight
#                        (default 16) requests in flight, for --seconds (default 5)
#   tcp ping-pong        tests/bench/tcp_pingpong.c: one message of --msg-size
#                        (default 64) bytes echoed, TCP_NODELAY, blocking sockets,
#                        --count (default 10000) round trips after 1000 of warm-up
#   ping integrity/encrypt  `fabvault fabric ping --interval 0 --size 64 --count N`
# with the order rotated from run to run. The two latency measurements run
# as on two hosts with a CPU each: every server thread is moved to CPU 0
# (taskset -a -p) and the client runs on CPU 1, for the ping-pong and for
# fabric ping alike. Unpinned, a round trip on this 2-vCPU VM is either ~10
# us (the scheduler put both ends on one CPU: no wake-up crosses CPUs) or
# ~80 us (each end on its own idle CPU, woken through the hypervisor), at
# random from run to run and tool to tool, and the ratio says nothing; with
# --no-pin they run unpinned all the same. Prints a table of medians (and
# every run's figure), the ratios and the issue's targets, MET or NOT MET:
#   bench integrity >= 70% of iperf3, bench encrypt >= 35% of iperf3,
#   fabric ping p50 <= 1.5x the plain TCP ping-pong's p50 (in each mode).
# --json FILE writes the same as JSON, every sample included.
#
# fabvault is $FV_BIN, --fabvault BIN, or built as a release build in
# build-release/ of this source tree; tcp_pingpong is $PP_BIN, or the one
# beside that fabvault (BUILD/tests/tcp_pingpong), or built in build-release/.
# The work directory (keys, logs) is a new /tmp/fabvault-transport.* removed at
# the end unless --keep. Needs root, ip (iproute2), iperf3, python3.
# Never run by tests/run or CI.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)

usage() {
	echo "usage: transport.sh [--runs N] [--seconds S] [--size BYTES] [--inflight N] [--count N]" >&2
	echo "                    [--msg-size BYTES] [--json FILE] [--keep] [--no-pin] [--fabvault BIN]" >&2
	exit 2
}

runs=3 seconds=5 size=1048576 inflight=16 count=10000 msg=64 json='' keep=0 fv=${FV_BIN:-} pp=${PP_BIN:-} pin=1
while [ $# -gt 0 ]; do
	case $1 in
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
	--seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
	--size) [ $# -ge 2 ] || usage; size=$2; shift 2 ;;
	--inflight) [ $# -ge 2 ] || usage; inflight=$2; shift 2 ;;
	--count) [ $# -ge 2 ] || usage; count=$2; shift 2 ;;
	--msg-size) [ $# -ge 2 ] || usage; msg=$2; shift 2 ;;
	--json) [ $# -ge 2 ] || usage; json=$2; shift 2 ;;
	--fabvault) [ $# -ge 2 ] || usage; fv=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--no-pin) pin=0; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || usage
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage # iperf3 -t takes whole seconds
[[ $size =~ ^[1-9][0-9]*$ ]] || usage
[[ $inflight =~ ^[1-9][0-9]*$ ]] || usage
[[ $count =~ ^[1-9][0-9]*$ ]] || usage
if ! [[ $msg =~ ^[1-9][0-9]*$ ]] || [ "$msg" -gt 65536 ]; then usage; fi
[ -z "$json" ] || json=$(realpath -m "$json")

# --- what the bench needs -----------------------------------------------------------------
[ "$(id -u)" = 0 ] || { echo "transport.sh: makes network namespaces: run it as root" >&2; exit 2; }
missing=()
for c in python3:python3 iperf3:iperf3 ip:iproute2; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "transport.sh: missing packages: ${missing[*]}; install them with" >&2
	echo "  apt-get install -y ${missing[*]}" >&2
	exit 2
fi
if [ -z "$fv" ] || { [ -z "$pp" ] && ! [ -x "$(dirname "$fv")/../tests/tcp_pingpong" ]; }; then
	[ -f "$src/build-release/build.ninja" ] || meson setup -Dbuildtype=release "$src/build-release" "$src" >/dev/null
	ninja -C "$src/build-release" >/dev/null
	fv=${fv:-$src/build-release/tools/fabvault}
fi
pp=${pp:-$(dirname "$fv")/../tests/tcp_pingpong}
[ -x "$pp" ] || pp=$src/build-release/tests/tcp_pingpong
[ -x "$fv" ] || { echo "transport.sh: $fv is not an executable fabvault" >&2; exit 2; }
[ -x "$pp" ] || { echo "transport.sh: $pp is not an executable tcp_pingpong" >&2; exit 2; }
fv=$(realpath "$fv") pp=$(realpath "$pp")

# --- the work directory, the namespaces and the servers ---------------------------------------
work=$(mktemp -d /tmp/fabvault-transport.XXXXXX)
id=$$
NS_A=fvbA$id NS_B=fvbB$id IF_A=fvb${id}a IF_B=fvb${id}b
ADDR_A=10.200.9.1 ADDR_B=10.200.9.2
P_IPERF=5201 P_FV=7420 P_PP=7421
servers=() # pids of the servers we started
made_ns=()

cleanup() {
	local rc=$? p n
	set +e
	trap '' HUP INT TERM
	for p in "${servers[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${servers[@]}"; do
		wait "$p" 2>/dev/null
	done
	for n in "${made_ns[@]}"; do
		ip netns del "$n"
	done
	if [ "$keep" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# check_ns NS: fail unless NS is one this script made and it exists, so that
# nothing is ever sent on the host's network. in_ns NS CMD...: CMD inside NS,
# checked first.
check_ns() {
	case $1 in "$NS_A" | "$NS_B") ;; *) echo "transport.sh: '$1' is not our namespace" >&2; exit 1 ;; esac
	ip netns list | grep -qw "^$1" || { echo "transport.sh: namespace $1 does not exist" >&2; exit 1; }
}
in_ns() {
	check_ns "$1"
	ip netns exec "$@"
}

ip netns add "$NS_A" || { echo "transport.sh: cannot create network namespaces here" >&2; exit 2; }
made_ns+=("$NS_A")
ip netns add "$NS_B"
made_ns+=("$NS_B")
ip link add "$IF_A" type veth peer name "$IF_B"
ip link set "$IF_A" netns "$NS_A"
ip link set "$IF_B" netns "$NS_B"
ip -n "$NS_A" addr add "$ADDR_A/24" dev "$IF_A"
ip -n "$NS_B" addr add "$ADDR_B/24" dev "$IF_B"
ip -n "$NS_A" link set "$IF_A" mtu 9000 up
ip -n "$NS_B" link set "$IF_B" mtu 9000 up
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
# the client side must reach A over the veth and nothing else
in_ns "$NS_B" ip -o route get "$ADDR_A" | grep -q "dev $IF_B" ||
	{ echo "transport.sh: $ADDR_A is not reached through $IF_B in $NS_B" >&2; exit 1; }

mkdir -p "$work/logs"
for n in a b; do
	"$fv" key gen-node --dir "$work/$n" --name "bench-$n" >"$work/logs/key-$n.log" 2>&1
done
cp "$work/b/node.pub" "$work/a/authorized_peers"
cp "$work/a/node.pub" "$work/b/authorized_peers"

# wait_for FILE ERE: until FILE has a line matching ERE (10 s at most)
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -E -q -e "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "transport.sh: no line matching /$2/ in $1 within 10 s; it has:" >&2
	cat "$1" >&2
	exit 1
}

# Servers start as plain commands, not through the in_ns function: ip netns exec
# execs the command, so $! is the server itself (the one cleanup kills).
check_ns "$NS_A"
ip netns exec "$NS_A" iperf3 -s --forceflush -B "$ADDR_A" -p "$P_IPERF" >"$work/logs/iperf3-server.log" 2>&1 &
servers+=($!)
ip netns exec "$NS_A" "$fv" fabric serve -v --conf-dir "$work/a" --listen "tcp://$ADDR_A:$P_FV" \
	2>"$work/logs/serve.log" &
servers+=($!)
ip netns exec "$NS_A" "$pp" server "$ADDR_A:$P_PP" >"$work/logs/pingpong-server.log" 2>&1 &
servers+=($!)
wait_for "$work/logs/serve.log" "listening on tcp://$ADDR_A:$P_FV"
wait_for "$work/logs/pingpong-server.log" "listening on"
wait_for "$work/logs/iperf3-server.log" "Server listening"

# --- what was measured with what ------------------------------------------------------------
results=$work/results # lines: WHAT RUN VALUE [VALUE2]; VALUE "fail" when it failed
meta=$work/meta       # lines: KEY VALUE
: >"$results"
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=clean
GIT_OPTIONAL_LOCKS=0 git -C "$src" diff --quiet HEAD 2>/dev/null || dirty=dirty
# the build type, if the binary is in a meson build directory
bt=$(python3 -c 'import json, sys
try:
    print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))
except Exception:
    print("unknown")' "$(dirname "$fv")/../meson-info/intro-buildoptions.json")
# libsodium picks AES-256-GCM when the CPU has AES-NI and PCLMUL, else ChaCha20-Poly1305
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then cipher=AES-256-GCM; else cipher=ChaCha20-Poly1305; fi
{
	echo "commit $commit"
	echo "tree $dirty"
	echo "fabvault_bin $fv"
	echo "fabvault_version $("$fv" --version | awk '{print $2}')"
	echo "fabvault_buildtype $bt"
	echo "pingpong_bin $pp"
	echo "iperf3_version $(iperf3 --version | head -n 1 | awk '{print $2}')"
	echo "kernel $(uname -r)"
	echo "cpu $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
	echo "nproc $(nproc)"
	echo "cipher $cipher"
	echo "runs $runs"
	echo "seconds $seconds"
	echo "size $size"
	echo "inflight $inflight"
	echo "count $count"
	echo "msg $msg"
	echo "link veth $ADDR_B -> $ADDR_A, MTU 9000"
	echo "pin $pin"
	echo "loadavg_start $(cut -d' ' -f1 /proc/loadavg)"
} >"$meta"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
t_start=$(date +%s)
log "fabvault $("$fv" --version | awk '{print $2}') $commit ($dirty tree, $bt build) $fv"
log "tcp_pingpong $pp; iperf3 $(iperf3 --version | head -n 1 | awk '{print $2}'); kernel $(uname -r)"
log "namespaces $NS_A ($ADDR_A) <-> $NS_B ($ADDR_B), veth MTU 9000; work directory $work"

# --- the measurements ------------------------------------------------------------------------
# Each one appends "WHAT RUN VALUE [VALUE2]" to $results, or "WHAT RUN fail" and the log's tail.
# py EXPR FILE: evaluate EXPR with j = the JSON in FILE
py() { python3 -c 'import json, sys; j = json.load(open(sys.argv[2])); print(eval(sys.argv[1]))' "$@"; }

record() { # WHAT LOG CMD...: run CMD, its stdout to LOG.json, stderr to LOG.err
	local what=$1 l=$work/logs/run$run-$2
	shift 2
	local rc=0
	"$@" >"$l.json" 2>"$l.err" || rc=$?
	[ "$rc" != 0 ] || return 0
	echo "$what $run fail" >>"$results"
	echo "  $what FAILED (exit status $rc); $l.err ends with:"
	tail -n 5 "$l.err" | sed 's/^/    /'
	return 1
}

m_iperf3() {
	local l=$work/logs/run$run-iperf3.json v
	record iperf3 iperf3 in_ns "$NS_B" iperf3 -c "$ADDR_A" -p "$P_IPERF" -t "$seconds" -R -J || return 0
	v=$(py 'j["end"]["sum_received"]["bits_per_second"] / 8e9' "$l")
	echo "iperf3 $run $v $(py 'j["end"]["sum_sent"].get("retransmits", 0)' "$l")" >>"$results"
	printf '  %-18s %8.3f GB/s\n' iperf3 "$v"
}

m_bench() { # MODE
	local l=$work/logs/run$run-bench-$1.json v
	record "bench_$1" "bench-$1" in_ns "$NS_B" "$fv" fabric bench --conf-dir "$work/b" --mode "$1" \
		--seconds "$seconds" --size "$size" --inflight "$inflight" --json "tcp://$ADDR_A:$P_FV" || return 0
	if [ "$(py 'j[0]["errors"]' "$l")" != 0 ]; then
		echo "bench_$1 $run fail" >>"$results"
		echo "  bench $1 FAILED: $(py 'j[0]["errors"]' "$l") requests failed"
		return 0
	fi
	v=$(py 'j[0]["gbytes_per_s"]' "$l")
	echo "bench_$1 $run $v" >>"$results"
	printf '  %-18s %8.3f GB/s\n' "bench $1" "$v"
}

# pinned CMD...: CMD on CPU 1 with every thread of the servers on CPU 0, then
# the servers free again (nothing done with --no-pin or on one CPU)
pinned() {
	local p rc=0
	if [ "$pin" = 0 ] || [ "$(nproc)" -lt 2 ]; then
		"$@"
		return
	fi
	for p in "${servers[@]}"; do taskset -a -p -c 0 "$p" >/dev/null; done
	(taskset -p -c 1 $BASHPID >/dev/null && "$@") || rc=$?
	for p in "${servers[@]}"; do taskset -a -p -c "0-$(($(nproc) - 1))" "$p" >/dev/null; done
	return $rc
}

m_pingpong() {
	local l=$work/logs/run$run-pingpong.json p50 p99
	record pingpong pingpong pinned in_ns "$NS_B" "$pp" client "$ADDR_A:$P_PP" --size "$msg" --count "$count" \
		--warmup 1000 --json || return 0
	p50=$(py 'j["p50_us"]' "$l") p99=$(py 'j["p99_us"]' "$l")
	echo "pingpong $run $p50 $p99" >>"$results"
	printf '  %-18s p50 %7.1f us  p99 %7.1f us\n' "tcp ping-pong" "$p50" "$p99"
}

m_ping() { # MODE
	local l=$work/logs/run$run-ping-$1.json p50 p99
	record "ping_$1" "ping-$1" pinned in_ns "$NS_B" "$fv" fabric ping --conf-dir "$work/b" --mode "$1" \
		--count "$count" --interval 0 --size "$msg" --json "tcp://$ADDR_A:$P_FV" || return 0
	if [ "$(py 'j[0].get("ok")' "$l")" != "$count" ]; then
		echo "ping_$1 $run fail" >>"$results"
		echo "  ping $1 FAILED: $(py 'j[0]' "$l")"
		return 0
	fi
	p50=$(py 'j[0]["p50_us"]' "$l") p99=$(py 'j[0]["p99_us"]' "$l")
	echo "ping_$1 $run $p50 $p99" >>"$results"
	printf '  %-18s p50 %7.1f us  p99 %7.1f us\n' "ping $1" "$p50" "$p99"
}

steps=("m_iperf3" "m_bench integrity" "m_bench encrypt" "m_pingpong" "m_ping integrity" "m_ping encrypt")
for run in $(seq 1 "$runs"); do
	# the measurements take turns going first
	k=$(((run - 1) % ${#steps[@]}))
	order=("${steps[@]:k}" "${steps[@]:0:k}")
	log "run $run/$runs"
	for s in "${order[@]}"; do
		$s
	done
done
sessions_int=$(grep -c 'connected (integrity only)' "$work/logs/serve.log" || true)
sessions_enc=$(grep -c 'connected (encrypted)' "$work/logs/serve.log" || true)
{
	echo "sessions_integrity $sessions_int"
	echo "sessions_encrypted $sessions_enc"
	echo "loadavg_end $(cut -d' ' -f1 /proc/loadavg)"
	echo "elapsed_s $(($(date +%s) - t_start))"
} >>"$meta"

# --- the report ----------------------------------------------------------------------------------
python3 - "$results" "$meta" "$json" <<'PY'
import json, statistics, sys

res_path, meta_path, json_path = sys.argv[1:4]
meta = dict(l.split(" ", 1) for l in open(meta_path).read().splitlines())
runs = int(meta["runs"])
samples = {}  # what -> [(value, value2) or None]
for line in open(res_path):
    f = line.split()
    samples.setdefault(f[0], []).append(None if f[2] == "fail" else tuple(float(x) for x in f[2:]))

def med(what, i=0):
    v = [s[i] for s in samples.get(what, []) if s is not None]
    return statistics.median(v) if v else None

def runs_of(what, i=0, fmt="%.2f"):
    return " ".join("fail" if s is None else fmt % s[i] for s in samples.get(what, []))

ceiling = med("iperf3")
pp50, pp99 = med("pingpong"), med("pingpong", 1)
rows = []

def row(what, label, unit, value, p99=None, ref=None, ref_name=None, target=None, kind=None, fmt="%.2f"):
    r = {"what": what, "label": label, "unit": unit, "median": value, "median_p99": p99,
         "runs": [None if s is None else list(s) for s in samples.get(what, [])],
         "failed_runs": sum(s is None for s in samples.get(what, []))}
    if ref is not None and value is not None and target is not None:
        ratio = value / ref
        met = ratio >= target if kind == "min" else ratio <= target
        r.update(ratio=ratio, target=target, target_kind=kind, ref=ref_name, met=met)
    elif target is not None:
        r.update(ratio=None, target=target, target_kind=kind, ref=ref_name, met=None)
    r["_runs_text"] = runs_of(what, 0, fmt)
    rows.append(r)

msg, sz = meta["msg"], int(meta["size"])
row("iperf3", "iperf3, 1 TCP stream", "GB/s", ceiling)
row("bench_integrity", "fabric bench integrity", "GB/s", med("bench_integrity"), ref=ceiling,
    ref_name="iperf3", target=0.70, kind="min")
row("bench_encrypt", "fabric bench encrypt", "GB/s", med("bench_encrypt"), ref=ceiling,
    ref_name="iperf3", target=0.35, kind="min")
row("pingpong", "tcp ping-pong %s B" % msg, "us", pp50, pp99, fmt="%.1f")
row("ping_integrity", "fabric ping integrity %s B" % msg, "us", med("ping_integrity"),
    med("ping_integrity", 1), ref=pp50, ref_name="tcp ping-pong p50", target=1.5, kind="max", fmt="%.0f")
row("ping_encrypt", "fabric ping encrypt %s B" % msg, "us", med("ping_encrypt"), med("ping_encrypt", 1),
    ref=pp50, ref_name="tcp ping-pong p50", target=1.5, kind="max", fmt="%.0f")

def num(v, unit):
    if v is None:
        return "fail"
    return "%.3f" % v if unit == "GB/s" else "%.1f" % v

def verdict(r):
    if "target" not in r:
        return ""
    if r["target_kind"] == "min":
        t = ">= %d%% of iperf3" % round(r["target"] * 100)
        got = "?" if r["ratio"] is None else "%.0f%%" % (r["ratio"] * 100)
    else:
        t = "p50 <= %gx ping-pong" % r["target"]
        got = "?" if r["ratio"] is None else "%.2fx" % r["ratio"]
    return "%-7s %-22s %s" % (got, t, "?" if r["met"] is None else "MET" if r["met"] else "NOT MET")

print()
print("fabvault %s %s (%s tree, %s build) %s" % (meta["fabvault_version"], meta["commit"], meta["tree"],
                                                 meta["fabvault_buildtype"], meta["fabvault_bin"]))
print("iperf3 %s; tcp_pingpong %s; kernel %s; %s cores (%s); cipher %s (from the CPU flags)" % (
    meta["iperf3_version"], meta["pingpong_bin"], meta["kernel"], meta["nproc"], meta["cpu"], meta["cipher"]))
print("%s; bench: %s s, %d KiB bulk, %s in flight; ping: %s round trips of %s B, back to back%s" % (
    meta["link"], meta["seconds"], sz // 1024, meta["inflight"], meta["count"], msg,
    " (servers on CPU 0, clients on CPU 1)" if meta.get("pin") == "1" else " (unpinned)"))
print("median of %d run(s); GB/s = 10^9 bytes/s of payload; latency in microseconds (p50 / p99);"
      " load average %s at the start, %s at the end" % (runs, meta["loadavg_start"], meta["loadavg_end"]))
print()
hdr = "%-28s %-17s %-22s %s" % ("measurement", "median", "runs", "ratio   target                 verdict")
print(hdr)
print("-" * len(hdr))
for r in rows:
    if r["unit"] == "GB/s":
        m = "%s GB/s" % num(r["median"], "GB/s")
    else:
        m = "%s / %s us" % (num(r["median"], "us"), num(r["median_p99"], "us"))
    print(("%-28s %-17s %-22s %s" % (r["label"], m, r["_runs_text"], verdict(r))).rstrip())
for r in rows:
    if r["failed_runs"]:
        print("note: %s failed in %d of %d runs (median of the others)" % (r["label"], r["failed_runs"], runs))
si, se = int(meta["sessions_integrity"]), int(meta["sessions_encrypted"])
print("server sessions seen: %d integrity only, %d encrypted (expected %d and %d)" % (si, se, 2 * runs, 2 * runs))
verdicts = [r["met"] for r in rows if "target" in r]
print()
print("targets: %d MET, %d NOT MET%s; %s s in all" % (
    sum(v is True for v in verdicts), sum(v is False for v in verdicts),
    ", %d unknown (a measurement failed)" % sum(v is None for v in verdicts) if None in verdicts else "",
    meta["elapsed_s"]))

if json_path:
    for r in rows:
        del r["_runs_text"]
    out = {"meta": meta, "rows": rows,
           "samples": {k: [None if s is None else list(s) for s in v] for k, v in samples.items()}}
    with open(json_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("JSON written to %s" % json_path)
PY
