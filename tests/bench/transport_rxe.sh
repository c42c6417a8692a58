#!/usr/bin/env bash
# transport_rxe.sh [--seconds S] [--count N] [--size BYTES] [--inflight N] [--fabvault BIN] [--keep]
#
# The transport over RDMA, measured where this machine can run RDMA at all:
# two qemu VMs (TCG, Debian's kernel, soft-RoCE rdma_rxe) joined by two rails
# (tests/rdma-vm/vm.sh; rail 0 10.200.1.0/24, rail 1 10.200.2.0/24, carried
# by qemu socket networks on 127.0.0.1; nothing else is sent anywhere). In
# one boot, the client VM measures against the server VM:
#   ib_write_bw / ib_send_lat   perftest over rxe0 (rdma_cm): the ceiling of
#                               the emulated RDMA device
#   iperf3, tcp ping-pong       the plain TCP ceiling over the same rail
#   fabric bench/ping rdma      fabvault over rail 0, over both rails, and
#                               (ping) in RDMA polling mode on both sides
#                               (--poll-us 100000: a round trip under TCG
#                               takes tens of milliseconds, so a shorter
#                               window would never see a completion)
#   fabric bench/ping tcp       fabvault's TCP backend over rail 0
# and prints a table with the ratios: fabvault RDMA against perftest and
# against fabvault TCP, fabvault TCP against iperf3 / the ping-pong.
#
# Under TCG every figure is slow, and soft-RoCE (which does in software what
# the ConnectX-7 does in silicon) is slower than the guest's TCP: the figures
# show that the path works and what it costs relative to TCP and to perftest
# there, not what two DGX Sparks reach (docs/performance.md says that).
# Integrity mode throughout (the RDMA default). One boot, one sample per
# figure: TCG time is the budget.
#
# fabvault is $FV_BIN, --fabvault BIN, or built in build-release/ of this tree;
# tcp_pingpong is the one beside it (BUILD/tests/tcp_pingpong). Needs root, qemu,
# the kernel cache of tests/rdma-vm/vm.sh (`vm.sh prepare`), perftest and iperf3
# on the host (their binaries are copied into the VMs). Never run by CI.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
vm=$src/tests/rdma-vm/vm.sh

usage() {
	echo "usage: transport_rxe.sh [--seconds S] [--count N] [--size BYTES] [--inflight N] [--fabvault BIN] [--keep]" >&2
	exit 2
}

seconds=3 count=200 size=1048576 inflight=8 keep=0 fv=${FV_BIN:-}
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
	--count) [ $# -ge 2 ] || usage; count=$2; shift 2 ;;
	--size) [ $# -ge 2 ] || usage; size=$2; shift 2 ;;
	--inflight) [ $# -ge 2 ] || usage; inflight=$2; shift 2 ;;
	--fabvault) [ $# -ge 2 ] || usage; fv=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
done
for v in "$seconds" "$count" "$size" "$inflight"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
[ "$(id -u)" = 0 ] || { echo "transport_rxe.sh: needs root (qemu, kernel cache)" >&2; exit 1; }
if [ -z "$fv" ]; then
	[ -d "$src/build-release" ] || meson setup "$src/build-release" --buildtype=release >/dev/null
	ninja -C "$src/build-release" tools/fabvault tests/tcp_pingpong >/dev/null
	fv=$src/build-release/tools/fabvault
fi
pp=$(dirname "$fv")/../tests/tcp_pingpong
for b in "$fv" "$pp"; do
	[ -x "$b" ] || { echo "transport_rxe.sh: $b is not built" >&2; exit 1; }
done
for c in ib_write_bw ib_send_lat iperf3 qemu-system-x86_64; do
	command -v "$c" >/dev/null || { echo "transport_rxe.sh: $c is missing (apt-get install perftest iperf3 qemu-system-x86)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/fabvault-rxe.XXXXXX)
cleanup() { [ "$keep" = 1 ] && echo "work directory kept: $work" || rm -rf "$work"; }
trap cleanup EXIT
for n in a b; do
	"$fv" key gen-node --dir "$work/keys/$n" --name "rxe-$n" >/dev/null 2>&1
done
cp "$work/keys/b/node.pub" "$work/keys/a/authorized_peers"
cp "$work/keys/a/node.pub" "$work/keys/b/authorized_peers"

# Server VM: fabvault event-driven (7420) and polling (7421) on both rails, TCP
# on rail 0 (7422), the ping-pong, iperf3, and perftest servers started again
# after each run (a perftest server serves one test).
# (perftest's server must be given the client's size, duration and count.)
cat >"$work/server.sh" <<SH
S=$seconds N=$count B=$size
SH
cat >>"$work/server.sh" <<'SH'
A0=$FV_SERVER_ADDR0 A1=$FV_SERVER_ADDR1
/fv/bin/fabvault fabric serve --conf-dir /fv/keys/a \
	--listen "rdma://$A0:7420,rdma://$A1:7420,tcp://$A0:7422" 2>/tmp/serve.log &
/fv/bin/fabvault fabric serve --conf-dir /fv/keys/a --poll-us 100000 \
	--listen "rdma://$A0:7421" 2>/tmp/serve-poll.log &
/fv/bin/tcp_pingpong server "$A0:7430" >/dev/null 2>&1 &
/fv/bin/iperf3 -s -B "$A0" -p 7431 >/dev/null 2>&1 &
(while :; do /fv/bin/ib_write_bw -R -d rxe0 -p 7432 -F -s "$B" -D "$S" >/dev/null 2>&1 || sleep 0.2; done) &
(while :; do /fv/bin/ib_send_lat -R -d rxe0 -p 7433 -F -s 64 -n "$N" >/dev/null 2>&1 || sleep 0.2; done) &
wait
SH

# Client VM: each measurement prints one line "FVB NAME VALUE [VALUE2]" (or
# "FVB NAME fail") for the host to read off the console.
cat >"$work/client.sh" <<SH
S=$seconds N=$count B=$size I=$inflight
SH
cat >>"$work/client.sh" <<'SH'
A0=$FV_SERVER_ADDR0 A1=$FV_SERVER_ADDR1
FV="/fv/bin/fabvault"
K="--conf-dir /fv/keys/b --dead-time 5000"
for i in $(seq 60); do
	$FV fabric ping $K --count 1 --timeout 2000 "rdma://$A0:7420" >/dev/null 2>&1 && break
	sleep 1
done
# py EXPR: evaluate EXPR on the JSON in /tmp/out (no python in the VM: awk)
field() { tr ',{}[]' '\n\n\n\n\n' </tmp/out | awk -F: -v k="\"$1\"" '$1 ~ k { gsub(/[ "]/, "", $2); print $2; exit }'; }
ping_m() { # NAME PATH [OPTIONS]
	local name=$1 path=$2
	shift 2
	if $FV fabric ping $K --count "$N" --interval 0 --size 64 --json "$@" "$path" >/tmp/out 2>/tmp/err &&
		[ "$(field ok)" = "$N" ]; then
		echo "FVB $name $(field p50_us) $(field p99_us)"
	else
		echo "FVB $name fail"; tail -n 3 /tmp/err
	fi
}
bench_m() { # NAME PATHS
	if $FV fabric bench $K --seconds "$S" --size "$B" --inflight "$I" --json "$2" >/tmp/out 2>/tmp/err &&
		[ "$(field errors)" = 0 ]; then
		# the last measurement is the one over all the paths given
		echo "FVB $1 $(tr ',{}[]' '\n\n\n\n\n' </tmp/out | awk -F: '$1 ~ /"gbytes_per_s"/ { v = $2 } END { gsub(/ /, "", v); print v }')"
	else
		echo "FVB $1 fail"; tail -n 3 /tmp/err
	fi
}
# perftest prints its result table on stdout; the line after the header
if /fv/bin/ib_write_bw -R -d rxe0 -p 7432 -F -s "$B" -D "$S" "$A0" >/tmp/out 2>/tmp/err; then
	# BW average is in MiB/s (perftest's MB = 2^20 bytes)
	echo "FVB ib_write_bw $(awk '/BW average/ { getline; print $4 * 1048576 / 1e9; exit }' /tmp/out)"
else
	echo "FVB ib_write_bw fail"; tail -n 3 /tmp/err
fi
sleep 1
if /fv/bin/ib_send_lat -R -d rxe0 -p 7433 -F -s 64 -n "$N" "$A0" >/tmp/out 2>/tmp/err; then
	# t_typical (the median) and the 99% percentile, in microseconds
	echo "FVB ib_send_lat $(awk '/t_typical/ { getline; print $5, $8; exit }' /tmp/out)"
else
	echo "FVB ib_send_lat fail"; tail -n 3 /tmp/err
fi
if /fv/bin/iperf3 -c "$A0" -p 7431 -t "$S" -R -J >/tmp/out 2>/tmp/err; then
	echo "FVB iperf3 $(tr ',{}' '\n\n\n' </tmp/out | awk -F: '$1 ~ /"bits_per_second"/ { v = $2 } END { print v / 8e9 }')"
else
	echo "FVB iperf3 fail"; tail -n 3 /tmp/err
fi
if /fv/bin/tcp_pingpong client "$A0:7430" --size 64 --count "$N" --warmup 50 --json >/tmp/out 2>/tmp/err; then
	echo "FVB pingpong $(field p50_us) $(field p99_us)"
else
	echo "FVB pingpong fail"; tail -n 3 /tmp/err
fi
bench_m bench_rdma "rdma://$A0:7420"
bench_m bench_rdma2 "rdma://$A0:7420,rdma://$A1:7420"
bench_m bench_tcp "tcp://$A0:7422"
ping_m ping_rdma "rdma://$A0:7420"
ping_m ping_rdma_poll "rdma://$A0:7421" --poll-us 100000
ping_m ping_tcp "tcp://$A0:7422" --mode integrity
echo "FVB done"
SH

echo "transport_rxe.sh: booting two VMs (TCG; a few minutes); work directory $work" >&2
"$vm" prepare >/dev/null
t0=$(date +%s)
rc=0
"$vm" run --timeout 1200 --log "$work/logs" \
	--file "$fv:/fv/bin/fabvault" --file "$pp:/fv/bin/tcp_pingpong" --file "$work/keys:/fv/keys" \
	--file "$(command -v ib_write_bw):/fv/bin/ib_write_bw" --file "$(command -v ib_send_lat):/fv/bin/ib_send_lat" \
	--file "$(command -v iperf3):/fv/bin/iperf3" \
	--server "sh /fv/server-cmd.sh" --client "sh /fv/client-cmd.sh" \
	--file "$work/server.sh:/fv/server-cmd.sh" --file "$work/client.sh:/fv/client-cmd.sh" >"$work/vm.out" 2>&1 || rc=$?
if [ "$rc" != 0 ] || ! grep -q 'FVB done' "$work/logs/client.log"; then
	echo "transport_rxe.sh: the VMs did not finish (vm.sh exited $rc); the client console ends with:" >&2
	tail -n 30 "$work/logs/client.log" >&2
	keep=1
	exit 1
fi

commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=clean
GIT_OPTIONAL_LOCKS=0 git -C "$src" diff --quiet HEAD 2>/dev/null || dirty=dirty
python3 - "$work/logs/client.log" "$commit" "$dirty" "$fv" "$seconds" "$count" "$size" "$inflight" "$(($(date +%s) - t0))" <<'PY'
import re, sys
log, commit, dirty, fv, secs, count, size, inflight, took = sys.argv[1:]
r = {}
for line in open(log, errors="replace"):
    m = re.search(r"FVB (\S+) (.*)$", line)
    if m and m.group(1) != "done":
        v = m.group(2).split()
        r[m.group(1)] = None if not v or v[0] == "fail" else [float(x) for x in v[:2]]
def g(k, i=0):
    return r.get(k)[i] if r.get(k) else None
def bw(k):
    return "fail" if g(k) is None else "%.3f GB/s" % g(k)
def lat(k):
    v = r.get(k)
    return "fail" if not v or len(v) < 2 else "%.0f / %.0f us" % (v[0], v[1])
def ratio(a, b):
    return "" if not a or not b else "%.2fx" % (a / b)
print("fabvault %s (%s tree) %s over soft-RoCE (rdma_rxe) in two qemu TCG VMs" % (commit, dirty, fv))
print("rail 0 10.200.1.x, rail 1 10.200.2.x (qemu socket networks); integrity mode; one sample each")
print("bench: %s s, %s B bulk, %s in flight; ping: %s round trips of 64 B back to back" % (secs, size, inflight, count))
print("ratio: fabvault / reference (throughput: higher is better; latency p50: lower is better)")
print()
print("%-34s %-18s %-28s %s" % ("measurement", "value", "reference", "ratio"))
print("-" * 92)
rows = [
    ("ib_write_bw (perftest), rail 0", bw("ib_write_bw"), "", ""),
    ("fabric bench rdma, rail 0", bw("bench_rdma"), "ib_write_bw", ratio(g("bench_rdma"), g("ib_write_bw"))),
    ("fabric bench rdma, both rails", bw("bench_rdma2"), "fabric bench rdma, rail 0", ratio(g("bench_rdma2"), g("bench_rdma"))),
    ("iperf3, rail 0", bw("iperf3"), "", ""),
    ("fabric bench tcp, rail 0", bw("bench_tcp"), "iperf3", ratio(g("bench_tcp"), g("iperf3"))),
    ("  rdma against tcp", "", "fabric bench tcp", ratio(g("bench_rdma"), g("bench_tcp"))),
    ("ib_send_lat 64 B (perftest)", lat("ib_send_lat"), "", ""),
    ("fabric ping rdma (p50 / p99)", lat("ping_rdma"), "ib_send_lat", ratio(g("ping_rdma"), g("ib_send_lat"))),
    ("fabric ping rdma, polling", lat("ping_rdma_poll"), "ib_send_lat", ratio(g("ping_rdma_poll"), g("ib_send_lat"))),
    ("tcp ping-pong 64 B", lat("pingpong"), "", ""),
    ("fabric ping tcp", lat("ping_tcp"), "tcp ping-pong", ratio(g("ping_tcp"), g("pingpong"))),
    ("  rdma against tcp", "", "fabric ping tcp", ratio(g("ping_rdma"), g("ping_tcp"))),
]
for row in rows:
    print("%-34s %-18s %-28s %s" % row)
print()
print("%s s in all (two VM boots included)" % took)
missing = [k for k, v in r.items() if v is None]
if missing:
    print("FAILED: " + ", ".join(missing))
    sys.exit(1)
PY
