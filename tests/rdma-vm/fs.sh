#!/usr/bin/env bash
# tests/rdma-vm/fs.sh: the remote filesystem over RDMA for real, in two VMs
# with soft-RoCE on two rails (tests/rdma-vm/README.md). Both VMs boot the
# same initramfs, so both hold the same generated tree (tests/tools/gentree.sh)
# at /fv/tree: fabvault-exportd exports it in the server VM over
# rdma://10.200.1.1 and rdma://10.200.2.1; in the client VM fabvault-fs mounts
# it and the mount is compared with the client's own copy by `diff -r` and
# treecmp (type, mode, size, mtime ns, link targets, nlink); then a large
# file is read while rail 1 is pulled out (qemu `set_link r1 off`): the read
# completes with the right bytes. Fails, never skips, when RDMA cannot be
# reached.
set -euo pipefail
: "${FV_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FV_BUILD:?set FV_BUILD to the meson build directory}"
vm=$FV_SRC/tests/rdma-vm/vm.sh
log=$FV_BUILD/test-logs/rdma-vm-fs
fv=$FV_BUILD/tools/fabvault exportd=$FV_BUILD/fs/fabvault-exportd fs=$FV_BUILD/fs/fabvault-fs
tc=$FV_BUILD/tests/treecmp
for b in "$fv" "$exportd" "$fs" "$tc"; do
	[ -x "$b" ] || { echo "fs.sh: $b is not built" >&2; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$log"
for n in a b; do
	"$fv" key gen-node --dir "$T/keys/$n" --name "$n" >/dev/null 2>&1
done
cp "$T/keys/b/node.pub" "$T/keys/a/authorized_peers"
cp "$T/keys/a/node.pub" "$T/keys/b/authorized_peers"
# the tree: every file kind, but no sockets (an initramfs cannot hold one)
"$FV_SRC/tests/tools/gentree.sh" "$T/tree" --size small --no-acl >/dev/null
find "$T/tree" -type s -delete
# a large file to read while a rail is pulled out
head -c $((16 << 20)) /dev/urandom >"$T/tree/large.bin"

cat >"$T/server.sh" <<'SH'
exec /fv/bin/fabvault-exportd --export /fv/tree --conf-dir /fv/keys/a \
	--listen "rdma://$FV_SERVER_ADDR0:7420,rdma://$FV_SERVER_ADDR1:7420"
SH
cat >"$T/client.sh" <<'SH'
set -e
P="rdma://$FV_SERVER_ADDR0:7420+rdma://$FV_SERVER_ADDR1:7420"
mkdir -p /mnt/x
ok=0
for i in $(seq 30); do
	if /fv/bin/fabvault-fs -o "paths=$P,conf_dir=/fv/keys/b,timeout=120" "$FV_SERVER_ADDR0:/" /mnt/x; then
		ok=1
		break
	fi
	sleep 1
done
[ $ok = 1 ] || { echo "FAIL: fabvault-fs could not mount over RDMA"; exit 1; }
grep " /mnt/x " /proc/mounts
echo "--- diff -r"
diff -r /fv/tree /mnt/x
echo "--- treecmp"
/fv/bin/treecmp /fv/tree /mnt/x
echo "--- a large read while rail 1 is pulled out"
want=$(md5sum </fv/tree/large.bin)
md5sum </mnt/x/large.bin >/tmp/got &
reader=$!
sleep 1
echo "FV-HOST: server set_link r1 off"
wait $reader
got=$(cat /tmp/got)
echo "FV-HOST: server set_link r1 on"
[ "$got" = "$want" ] || { echo "FAIL: large.bin read over the mount differs ($got vs $want)"; exit 1; }
echo "--- still readable on one rail, then both"
sync
echo 3 >/proc/sys/vm/drop_caches
[ "$(md5sum </mnt/x/large.bin)" = "$want" ]
umount /mnt/x
echo "RDMA FS TEST: PASS"
SH
"$vm" prepare
rc=0
"$vm" run --timeout 900 --log "$log" --file "$exportd:/fv/bin/fabvault-exportd" --file "$fs:/fv/bin/fabvault-fs" \
	--file "$tc:/fv/bin/treecmp" --file "$T/keys:/fv/keys" --file "$T/tree:/fv/tree" \
	--file "$T/server.sh:/fv/server-cmd.sh" --file "$T/client.sh:/fv/client-cmd.sh" \
	--server 'sh /fv/server-cmd.sh' --client 'sh /fv/client-cmd.sh' || rc=$?
if [ "$rc" != 0 ] || ! grep -q 'RDMA FS TEST: PASS' "$log/client.log"; then
	echo "fs.sh: FAILED (vm.sh run exited $rc); logs in $log" >&2
	exit 1
fi
echo "fabvault-fs over RDMA: ok"
