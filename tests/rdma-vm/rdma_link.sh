#!/usr/bin/env bash
# tests/rdma-vm/rdma_link.sh: the RDMA link backend (transport/rdma.c) between
# two VMs with soft-RoCE, on both rails (tests/rdma-vm/rdma_link_test.c says
# what is checked).
#
# Run as `bash tests/rdma-vm/rdma_link.sh [REQUESTS_PER_RAIL]` with FV_BUILD
# (the meson build directory, with tests/rdma_link_test built) and optionally
# FV_SRC (repository root). Exits 0 only when the client reported PASS; any
# failure to reach RDMA (no VM, no rxe, no connection) is a failure, never a
# skip. Logs: $FV_BUILD/test-logs/rdma-vm-link/.
# Needs root (the kernel cache) and the packages in README.md.
set -euo pipefail

: "${FV_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FV_BUILD:?set FV_BUILD to the meson build directory}"
reqs=${1:-40}
bin=$FV_BUILD/tests/rdma_link_test
vm=$FV_SRC/tests/rdma-vm/vm.sh
log=$FV_BUILD/test-logs/rdma-vm-link

[[ $reqs =~ ^[1-9][0-9]*$ ]] || { echo "usage: rdma_link.sh [REQUESTS_PER_RAIL]" >&2; exit 2; }
[ -x "$bin" ] || { echo "rdma_link.sh: $bin is not built (meson compile -C $FV_BUILD)" >&2; exit 1; }
mkdir -p "$log"

"$vm" prepare

# The server runs until vm.sh stops it; the client's status is the result.
# The client also shows what each rail's rxe device carried (packets of
# port 1, sent + received), so that a run shows both rails were used.
# shellcheck disable=SC2016 # expanded in the guest
client='
pkts() {
	rdma statistic show link "$1/1" |
		awk "{ for (i = 1; i < NF; i++) if (\$i == \"sent_pkts\" || \$i == \"rcvd_pkts\") n += \$(i + 1) } END { print n + 0 }"
}
/fv/bin/rdma_link_test client '"$reqs"'
rc=$?
echo "rxe packets: $FV_RDMA_DEV0 (rail 0) $(pkts "$FV_RDMA_DEV0"), $FV_RDMA_DEV1 (rail 1) $(pkts "$FV_RDMA_DEV1")"
exit $rc
'
rc=0
"$vm" run --timeout 900 --log "$log" --file "$bin:/fv/bin/rdma_link_test" \
	--server '/fv/bin/rdma_link_test server' \
	--client "$client" || rc=$?

if [ "$rc" != 0 ]; then
	echo "rdma_link.sh: FAILED (vm.sh run exited $rc); logs in $log" >&2
	exit 1
fi
if ! grep -q '^RDMA LINK TEST: PASS' "$log/client.log"; then
	echo "rdma_link.sh: FAILED: no 'RDMA LINK TEST: PASS' in $log/client.log" >&2
	exit 1
fi
grep '^RDMA LINK TEST: ' "$log/client.log"
echo "rdma_link.sh: passed (logs in $log)"
