#!/usr/bin/env bash
# tests/rdma-vm/transport.sh: the whole transport over RDMA for real: two
# VMs with soft-RoCE (rdma_rxe), two rails (tests/rdma-vm/README.md).
# `fabvault fabric serve` listens on rdma://10.200.1.1 and rdma://10.200.2.1 in
# the server VM; in the client VM, tests/tools/tpcheck runs the same checks as
# over TCP (tests/integration/transport_tcp.sh): every request and bulk size,
# every byte checked, hundreds of requests in flight, then rail 1 is pulled
# out mid-stream (qemu `set_link r1 off` on the server's NIC) with no request
# failing and the rail coming back (`set_link r1 on`); then the same in
# encrypted mode, and `fabric ping` / `fabric bench` over both rails, whose
# figures are printed (TCG: they show that the path works, not its speed).
# The server runs in RDMA polling mode (--poll-us) through all of it, so that
# mode sees every check, the rail pull included; the client is event-driven,
# and a last ping polls on both sides.
# Fails, never skips, when RDMA cannot be reached.
set -euo pipefail
: "${FV_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FV_BUILD:?set FV_BUILD to the meson build directory}"
vm=$FV_SRC/tests/rdma-vm/vm.sh
log=$FV_BUILD/test-logs/rdma-vm-transport
fv=$FV_BUILD/tools/fabvault tp=$FV_BUILD/tests/tpcheck
for b in "$fv" "$tp"; do
	[ -x "$b" ] || { echo "transport.sh: $b is not built" >&2; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$log"
for n in a b; do
	"$fv" key gen-node --dir "$T/keys/$n" --name "$n" >/dev/null 2>&1
done
cp "$T/keys/b/node.pub" "$T/keys/a/authorized_peers"
cp "$T/keys/a/node.pub" "$T/keys/b/authorized_peers"

cat >"$T/server.sh" <<'SH'
set -e
exec /fv/bin/fabvault fabric serve --conf-dir /fv/keys/a --poll-us 200 \
	--listen "rdma://$FV_SERVER_ADDR0:7420,rdma://$FV_SERVER_ADDR1:7420"
SH
cat >"$T/client.sh" <<'SH'
set -e
K="--key /fv/keys/b/node.key --peers /fv/keys/b/authorized_peers"
P0=rdma://$FV_SERVER_ADDR0:7420 P1=rdma://$FV_SERVER_ADDR1:7420
ls -l /fv/keys/b/node.key
# the server may still be starting: wait until both rails answer
for i in $(seq 30); do
	/fv/bin/fabvault fabric ping --conf-dir /fv/keys/b --count 1 --timeout 2000 "$P0,$P1" >/dev/null 2>&1 && break
	sleep 1
done
echo "--- integrity (the RDMA default), rail 1 pulled out mid-stream"
/fv/bin/tpcheck $K --inflight 300 --dead-ms 3000 --down-path 1 \
	--down 'echo "FV-HOST: server set_link r1 off"' --up 'echo "FV-HOST: server set_link r1 on"' "$P0" "$P1"
echo "--- encrypted"
/fv/bin/tpcheck $K --mode encrypt --inflight 300 --dead-ms 3000 "$P0" "$P1"
echo "--- fabric ping and bench over rxe (TCG: figures show cost, not speed)"
/fv/bin/fabvault fabric ping --conf-dir /fv/keys/b --dead-time 3000 --count 50 --interval 0 "$P0,$P1"
/fv/bin/fabvault fabric bench --conf-dir /fv/keys/b --dead-time 3000 --seconds 2 --size 1048576 --inflight 8 "$P0,$P1"
echo "--- fabric ping with the client polling too"
/fv/bin/fabvault fabric ping --conf-dir /fv/keys/b --dead-time 3000 --count 50 --interval 0 --poll-us 200 "$P0,$P1"
echo "RDMA TRANSPORT TEST: PASS"
SH
"$vm" prepare
rc=0
"$vm" run --timeout 900 --log "$log" --file "$fv:/fv/bin/fabvault" --file "$tp:/fv/bin/tpcheck" \
	--file "$T/keys:/fv/keys" --file "$T/server.sh:/fv/server-cmd.sh" --file "$T/client.sh:/fv/client-cmd.sh" \
	--server 'sh /fv/server-cmd.sh' --client 'sh /fv/client-cmd.sh' || rc=$?
if [ "$rc" != 0 ] || ! grep -q 'RDMA TRANSPORT TEST: PASS' "$log/client.log"; then
	echo "transport.sh: FAILED (vm.sh run exited $rc); logs in $log" >&2
	exit 1
fi
echo "transport over RDMA: ok"
