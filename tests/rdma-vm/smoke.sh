#!/usr/bin/env bash
# tests/rdma-vm/smoke.sh: rping between two VMs over rail 0 and over rail 1.
#
# Run as `bash tests/rdma-vm/smoke.sh` with FV_SRC (repository root) and
# FV_BUILD (build directory) set; exits 0 only when both rails carried an
# rping of 5 RDMA round trips, each rail's rxe device counted the packets and
# the other rail's did not (so the traffic really took that rail).
# Logs: $FV_BUILD/test-logs/rdma-vm-smoke/ (a temporary directory without FV_BUILD).
# Needs root (the kernel cache) and the packages in README.md; never skips.
set -euo pipefail

: "${FV_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
if [ -n "${FV_BUILD:-}" ]; then
	log=$FV_BUILD/test-logs/rdma-vm-smoke
else
	log=$(mktemp -d "${TMPDIR:-/tmp}/fv-rdma-vm-smoke.XXXXXX")
fi
vm=$FV_SRC/tests/rdma-vm/vm.sh

"$vm" prepare

# One rping server a rail; exit non-zero unless both served their client.
# shellcheck disable=SC2016 # expanded in the guest
server='
rping -s -a "$FV_SERVER_ADDR1" -v -C 5 >/tmp/rail1.log 2>&1 &
p1=$!
rping -s -a "$FV_SERVER_ADDR0" -v -C 5
rc0=$?
wait $p1
rc1=$?
sed "s/^/rail1: /" /tmp/rail1.log
echo "rping servers: rail0 $rc0 rail1 $rc1"
[ $rc0 = 0 ] && [ $rc1 = 0 ]
'

# For each rail: rping -c (retried while the server may not listen yet) must
# exit 0, print 5 ping lines, and raise the rail's rxe sent/received counters.
# shellcheck disable=SC2016 # expanded in the guest
client='
pkts() { # DEV: sent+received packets of rxe DEV port 1
	rdma statistic show link "$1/1" |
		awk "{ for (i = 1; i < NF; i++) if (\$i == \"sent_pkts\" || \$i == \"rcvd_pkts\") n += \$(i + 1) } END { print n + 0 }"
}
for rail in 0 1; do
	eval "addr=\$FV_SERVER_ADDR$rail dev=\$FV_RDMA_DEV$rail"
	other=$FV_RDMA_DEV0
	[ "$rail" = 1 ] || other=$FV_RDMA_DEV1
	before=$(pkts "$dev")
	before_other=$(pkts "$other")
	try=1
	while :; do
		rc=0
		rping -c -a "$addr" -v -C 5 >/tmp/out 2>&1 || rc=$?
		sed "s/^/rail$rail try$try: /" /tmp/out
		n=$(grep -c "ping data: rdma-ping-" /tmp/out || true)
		[ "$rc" = 0 ] && [ "$n" = 5 ] && break
		[ $try -lt 15 ] || { echo "SMOKE FAIL: rail $rail ($addr): rping -c exit $rc, $n/5 pings"; exit 1; }
		try=$((try + 1))
		sleep 1
	done
	after=$(pkts "$dev")
	after_other=$(pkts "$other")
	echo "rail $rail: $dev packets $before -> $after, $other packets $before_other -> $after_other"
	[ "$after" -gt "$before" ] || { echo "SMOKE FAIL: rail $rail: $dev counted no packets"; exit 1; }
	[ "$after_other" = "$before_other" ] || { echo "SMOKE FAIL: rail $rail: traffic on $other too"; exit 1; }
	echo "SMOKE OK: rail $rail ($addr via $dev)"
done
'

"$vm" run --timeout 240 --log "$log" --server "$server" --client "$client"
for rail in 0 1; do
	grep -q "^SMOKE OK: rail $rail " "$log/client.log" ||
		{ echo "smoke.sh: no 'SMOKE OK: rail $rail' in $log/client.log" >&2; exit 1; }
done
echo "smoke.sh: rping passed on rail 0 and rail 1 (logs in $log)"
