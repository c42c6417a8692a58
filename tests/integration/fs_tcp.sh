#!/usr/bin/env bash
# fabvault-fs over TCP between two network namespaces (two paths): the mount
# shows the exported tree exactly (diff -r, treecmp: stat fields, xattrs,
# hardlinks), stays read-only, serves many readers at once, sees a change on
# the server after the attribute timeout, survives the server's restart (open
# files and all), gives st_ino that survive a remount (a second `fabvault
# snapshot` reads nothing), gives its nodes back at unmount (exportd's
# descriptors return to what an idle server holds), and fails with the
# documented exit status and a clear message for each way a mount can fail.
. "$(dirname "$0")/lib.sh"
need_cmd fusermount3
[ -e /dev/fuse ] || skip "needs /dev/fuse"
netns_pair
node_keys "$T" a b
# c knows the server's key, but the server does not know c's
fv key gen-node --dir "$T/c" --name c >/dev/null 2>&1
cp "$T/a/node.pub" "$T/c/authorized_peers"
EXPORTD=$FV_BUILD/fs/fabvault-exportd FS=$FV_BUILD/fs/fabvault-fs HELPER=$FV_BUILD/fs/mount.fabvault
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420
MNT=$T/mnt

on_exit 'fusermount3 -u "$MNT" 2>/dev/null'

gentree "$T/src"
mkdir -p "$T/src/many-dirs/d"{00..39} # each known directory holds a descriptor in exportd
sleep 1.2 # older than the files cache's one-second window
mkdir "$MNT"

start_exportd() {
	netns_check "$NS_A" # then without a subshell, so that $! is exportd
	ip netns exec "$NS_A" "$EXPORTD" --export "$T/src" --listen "$P0,$P1" --conf-dir "$T/a" 2>>"$T/exportd.log" &
	XPID=$!
	echo "$XPID" >"$T/exportd.pid" # also when started from a subshell
	wait_for "$T/exportd.log" "exporting .* on .*10.200.2.1"
}
start_exportd
on_exit 'kill "$(cat "$T/exportd.pid")" 2>/dev/null; sleep 0.2'

# exportd_fds: the descriptors exportd holds now
exportd_fds() {
	find "/proc/$XPID/fd" -mindepth 1 -maxdepth 1 | wc -l
}
# fds_back WHAT: after an unmount, exportd's descriptors return within 5 s to
# at most what an idle exportd holds (FD_IDLE) and a slack of 3: fabvault-fs
# gave back every node it knew
fds_back() {
	local i n
	for ((i = 0; i < 50; i++)); do
		n=$(exportd_fds)
		[ "$n" -le $((FD_IDLE + 3)) ] && return 0
		sleep 0.1
	done
	fail "$1: exportd holds $n descriptors, $FD_IDLE when idle: the nodes were not given back at unmount"
}
FD_IDLE=$(exportd_fds)

OPTS="paths=$P0+$P1,conf_dir=$T/b,attr_timeout=1,entry_timeout=1,timeout=20"

echo "--- mount errors: exit status and message"
assert_exit 2 "$FS" -o "$OPTS,bogus_option" 10.200.1.1:/ "$MNT"
assert_exit 2 "$FS" -o "$OPTS,timeout=soon" 10.200.1.1:/ "$MNT"
assert_exit 2 "$FS" -o "$OPTS,poll_us=-1" 10.200.1.1:/ "$MNT"
assert_stderr "poll_us wants a whole number"
assert_exit 2 "$FS" -o "$OPTS" 10.200.1.1:/
assert_exit 9 "$FS" -o "$OPTS" 10.200.1.1:/ "$T/nonexistent"
assert_stderr 'mountpoint .* No such file'
assert_exit 11 in_net_b "$FS" -o "paths=tcp://10.200.1.1:7999,conf_dir=$T/b" 10.200.1.1:/ "$MNT"
assert_stderr 'connection refused'
assert_exit 12 in_net_b "$FS" -o "paths=$P0,conf_dir=$T/c" 10.200.1.1:/ "$MNT"
assert_stderr 'key not authorized'

echo "--- mount through mount.fabvault (daemon): the exit status is the mount's"
in_net_b "$HELPER" 10.200.1.1:/ "$MNT" -o "ro,_netdev,x-systemd.automount,nofail,$OPTS"
grep -q " $MNT fuse.fabvault ro," /proc/self/mounts || fail "not mounted read-only at $MNT: $(grep "$MNT" /proc/self/mounts)"
assert_exit 1 in_net_b "$FS" -o "$OPTS" 10.200.1.1:/ "$MNT"
assert_stderr 'is busy'
fs_unmount "$MNT"

echo "--- mount in the foreground; the tree is the export's"
in_net_b true
nsenter --net="/run/netns/$NS_B" "$FS" -f -o "$OPTS" 10.200.1.1:/ "$MNT" 2>"$T/fs.log" &
FPID=$!
on_exit 'kill $FPID 2>/dev/null'
fs_mounted "$MNT" "$T/fs.log"
# tree_diff: diff -r of the export and the mount, but for the lines diff
# prints for special files (it cannot compare a FIFO's contents)
tree_diff() {
	diff -r --no-dereference "$T/src" "$MNT" 2>&1 | grep -E -v ' is a (fifo|socket|character special file|block special file) while file ' || true
}
tree_diff >"$T/diff.out"
[ ! -s "$T/diff.out" ] || {
	head -n 20 "$T/diff.out"
	fail "diff -r differs"
}
treecmp "$T/src" "$MNT" >"$T/treecmp.out" || {
	head -n 20 "$T/treecmp.out"
	fail "treecmp differs"
}
# inode numbers are the server's (use_ino)
f=$(find "$T/src" -type f -size +100k | head -n 1)
assert_eq "$(stat -c %i "$MNT/${f#"$T/src/"}")" "$(stat -c %i "$f")" "st_ino"

echo "--- read-only"
! touch "$MNT/newfile" 2>/dev/null || fail "a file was created on a read-only mount"
! mkdir "$MNT/newdir" 2>/dev/null || fail "a directory was made on a read-only mount"

echo "--- 8 readers at once"
mapfile -t files < <(cd "$T/src" && find . -type f -size +1k -perm -u=r | head -n 8)
[ "${#files[@]}" -ge 4 ] || fail "gentree made too few files"
pids=()
for f in "${files[@]}" "${files[@]}"; do
	cmp "$T/src/$f" "$MNT/$f" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a concurrent read differs"
done
# a large file read sequentially (read-ahead) and at random offsets
head -c 30000000 /dev/urandom >"$T/src/large"
sleep 1.5
cmp "$T/src/large" "$MNT/large" || fail "large file differs"
for off in 29999000 7 1048575 20000000 3; do
	a=$(dd if="$T/src/large" bs=1 skip=$off count=4000 status=none | md5sum)
	b=$(dd if="$MNT/large" bs=1 skip=$off count=4000 status=none | md5sum)
	assert_eq "$b" "$a" "read at $off"
done

echo "--- a change on the server is seen after attr_timeout"
echo "first" >"$T/src/changing"
sleep 1.5
assert_eq "$(cat "$MNT/changing")" "first" "new file"
echo "second, longer" >"$T/src/changing"
sleep 1.5
assert_eq "$(cat "$MNT/changing")" "second, longer" "changed file"

echo "--- the server restarts: the mount recovers, open files too"
exec 3<"$MNT/large"
dd bs=1000 count=1 status=none <&3 >/dev/null
kill "$XPID"
wait "$XPID" 2>/dev/null || true
sleep 1
start_exportd
# an open file: its handle is gone on the new server (EBADF, reopened)
a=$(dd if="$T/src/large" bs=1000 skip=1 count=100 status=none | md5sum)
b=$(dd bs=1000 count=100 status=none <&3 | md5sum)
exec 3<&-
assert_eq "$b" "$a" "read from a file opened before the restart"
# known nodes: their ids are unknown to the new server (ESTALE, found again)
cmp "$T/src/large" "$MNT/large" || fail "read after the restart differs"
ls -l "$MNT/" >/dev/null
[ -z "$(tree_diff)" ] || fail "tree after the restart differs: $(tree_diff | head -n 5)"

echo "--- the server gone for a while: operations wait and complete"
kill "$XPID"
wait "$XPID" 2>/dev/null || true
(sleep 3 && start_exportd) &
rs=$!
cmp "$T/src/large" "$MNT/large" || fail "read across an outage differs"
wait $rs
XPID=$(cat "$T/exportd.pid")

echo "--- fabvault snapshot of the mount, twice, remounted in between: nothing read the second time"
rm -f "$T/src/changing" "$T/src/large"
sleep 1.5
fv_init "$T/repo"
fv snapshot "$T/repo" "$MNT" --json >"$T/s1.json"
[ "$(json_field read_bytes <"$T/s1.json")" -gt 0 ] || fail "the first snapshot read nothing"
[ "$(exportd_fds)" -gt $((FD_IDLE + 40)) ] || fail "exportd holds $(exportd_fds) descriptors while the tree is walked: expected one per directory"
kill "$FPID"
wait "$FPID" 2>/dev/null || true
fs_unmount "$MNT"
fds_back "after the first mount (the server restarted under it)"
in_net_b "$FS" -o "$OPTS" 10.200.1.1:/ "$MNT"
fv snapshot "$T/repo" "$MNT" --json >"$T/s2.json"
assert_eq "$(json_field read_bytes <"$T/s2.json")" 0 "second snapshot read bytes"
assert_eq "$(json_field errors <"$T/s2.json")" 0 "second snapshot errors"
fs_unmount "$MNT"
fds_back "after the second mount"
echo "fabvault-fs over TCP: ok"
