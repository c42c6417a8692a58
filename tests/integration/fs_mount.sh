#!/usr/bin/env bash
# The remote filesystem mounted the way an admin does it: `mount -t fabvault`
# (mount(8) runs /sbin/mount.fabvault), an fstab line like the one in
# fabvault-fs(8) (`clu:/ /mnt/clu fabvault ro,_netdev,x-systemd.automount,
# paths=...`) and `umount`. mount(8) looks for its helpers in /sbin only, so
# the test puts a wrapper there that runs this build's mount.fabvault, and
# only when no mount.fabvault is installed (it is removed at exit).
. "$(dirname "$0")/lib.sh"
need_cmd fusermount3
need_cmd mount
need_cmd umount
[ -e /dev/fuse ] || skip "needs /dev/fuse"
[ -e /sbin/mount.fabvault ] && skip "a mount.fabvault is installed in /sbin: not replacing it"
netns_pair
node_keys "$T" a b
EXPORTD=$FV_BUILD/fs/fabvault-exportd HELPER=$FV_BUILD/fs/mount.fabvault
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420
MNT=$T/mnt
mkdir -p "$MNT" "$T/src/sub"
echo "memories" >"$T/src/sub/m.json"
head -c 3000000 /dev/urandom >"$T/src/big"

printf '#!/bin/sh\nexec %q "$@"\n' "$HELPER" >/sbin/mount.fabvault
chmod 755 /sbin/mount.fabvault
on_exit 'rm -f /sbin/mount.fabvault'
on_exit 'umount "$MNT" 2>/dev/null'

netns_check "$NS_A"
ip netns exec "$NS_A" "$EXPORTD" --export "$T/src" --listen "$P0,$P1" --conf-dir "$T/a" 2>>"$T/exportd.log" &
on_exit "kill $! 2>/dev/null; sleep 0.2"
wait_for "$T/exportd.log" "exporting .* on .*10.200.2.1"

mounted_ro() {
	grep -q " $MNT fuse.fabvault ro," /proc/self/mounts || fail "$1: not mounted read-only at $MNT: $(grep "$MNT" /proc/self/mounts)"
	cmp -s "$T/src/big" "$MNT/big" || fail "$1: $MNT/big differs from the export's"
	[ "$(cat "$MNT/sub/m.json")" = memories ] || fail "$1: $MNT/sub/m.json is wrong"
}
unmounted() {
	umount "$MNT" || fail "$1: umount $MNT failed"
	! grep -q " $MNT " /proc/self/mounts || fail "$1: still mounted after umount"
}
OPTS="paths=$P0+$P1,conf_dir=$T/b,timeout=20"

echo "--- mount -t fabvault, umount"
in_net_b mount -t fabvault -o "ro,$OPTS" 10.200.1.1:/ "$MNT"
mounted_ro "mount -t fabvault"
unmounted "mount -t fabvault"

echo "--- an fstab line (_netdev, x-systemd.*, nofail are for mount(8) and systemd, not fabvault-fs)"
printf 'clu:/ %s fabvault ro,_netdev,x-systemd.automount,nofail,%s 0 0\n' "$MNT" "$OPTS" >"$T/fstab"
in_net_b mount --fstab "$T/fstab" "$MNT"
mounted_ro "fstab"
unmounted "fstab"

echo "--- mount -t fabvault passes fabvault-fs's exit status and message on"
assert_exit 11 in_net_b mount -t fabvault -o "paths=tcp://10.200.1.1:7999,conf_dir=$T/b" 10.200.1.1:/ "$MNT"
assert_stderr 'connection refused'
! grep -q " $MNT " /proc/self/mounts || fail "mounted although the peer is unreachable"
assert_exit 2 in_net_b mount -t fabvault -o "$OPTS,no_such_option" 10.200.1.1:/ "$MNT"
assert_stderr 'no_such_option'
echo "mount -t fabvault and fstab: ok"
