#!/usr/bin/env bash
# fabvault-exportd --forget-after: a client that crashes never gives its
# nodes and open files back; once no client has been connected for the
# given time, exportd forgets them (its descriptors return to what an idle
# server holds, and it says so in one line). A live client that was cut off
# for longer than that finds everything again when the network returns: a
# file it held open reads on, the tree is whole (this part waits for the
# server's 30 s link idle time). A bad value is a usage error (exit 2).
# --handles-per-client holds through a mount.
. "$(dirname "$0")/lib.sh"
need_cmd fusermount3
[ -e /dev/fuse ] || skip "needs /dev/fuse"
EXPORTD=$FV_BUILD/fs/fabvault-exportd FS=$FV_BUILD/fs/fabvault-fs

echo "--- bad values"
assert_exit 2 "$EXPORTD" --export / --listen tcp://127.0.0.1:1 --forget-after soon
assert_stderr 'forget-after takes seconds'
assert_exit 2 "$EXPORTD" --export / --listen tcp://127.0.0.1:1 --forget-after -1
printf 'export = /\nlisten = tcp://127.0.0.1:1\nforget_after = 1h\n' >"$T/bad.conf"
assert_exit 2 "$EXPORTD" --config "$T/bad.conf"
assert_stderr 'bad.conf'

netns_pair
node_keys "$T" a b
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420
MNT=$T/mnt
on_exit 'fusermount3 -u "$MNT" 2>/dev/null'
gentree "$T/src"
mkdir -p "$T/src/many-dirs/d"{00..39} # each known directory holds a descriptor in exportd
head -c 5000000 /dev/urandom >"$T/src/large"
mkdir "$MNT"

netns_check "$NS_A"
ip netns exec "$NS_A" "$EXPORTD" --export "$T/src" --listen "$P0,$P1" --conf-dir "$T/a" \
	--forget-after 2 --handles-per-client 5 2>>"$T/exportd.log" &
XPID=$!
on_exit 'kill $XPID 2>/dev/null; sleep 0.2'
wait_for "$T/exportd.log" "exporting .* on .*10.200.2.1"
exportd_fds() {
	find "/proc/$XPID/fd" -mindepth 1 -maxdepth 1 | wc -l
}
FD_IDLE=$(exportd_fds)
OPTS="paths=$P0+$P1,conf_dir=$T/b,attr_timeout=1,entry_timeout=1,timeout=30"

# mount_fg: fabvault-fs in the foreground (its pid in FPID), mounted
mount_fg() {
	in_net_b true
	nsenter --net="/run/netns/$NS_B" "$FS" -f -o "$OPTS" 10.200.1.1:/ "$MNT" 2>>"$T/fs.log" &
	FPID=$!
	fs_mounted "$MNT" "$T/fs.log"
}

echo "--- a client crashes with nodes known and a file open: exportd forgets them"
mount_fg
on_exit 'kill $FPID 2>/dev/null'
find "$MNT" -type d >/dev/null
exec 3<"$MNT/large"
dd bs=1000 count=1 status=none <&3 >/dev/null
held=$(exportd_fds)
[ "$held" -gt $((FD_IDLE + 40)) ] || fail "exportd holds $held descriptors with the tree walked (idle: $FD_IDLE)"
kill -9 "$FPID"
wait "$FPID" 2>/dev/null || true
exec 3<&-
fs_unmount "$MNT"
# not before the time has passed without a client...
sleep 0.5
[ "$(exportd_fds)" -gt $((FD_IDLE + 40)) ] || fail "exportd forgot the nodes at once, not after --forget-after"
# ...then within a few seconds of it
for ((i = 0; i < 80; i++)); do
	grep -q 'no client connected for' "$T/exportd.log" && [ "$(exportd_fds)" -le $((FD_IDLE + 3)) ] && break
	sleep 0.1
done
grep -qE 'no client connected for [0-9]+ s: forgot [0-9]+ node\(s\) and closed 1 open file\(s\)' "$T/exportd.log" ||
	fail "no line about the forgotten nodes and file: $(tail -n 5 "$T/exportd.log")"
[ "$(exportd_fds)" -le $((FD_IDLE + 3)) ] ||
	fail "exportd still holds $(exportd_fds) descriptors, $FD_IDLE when idle"

echo "--- a live client cut off for longer: everything works when the network returns"
mount_fg
find "$MNT" -type d >/dev/null
exec 3<"$MNT/large"
dd bs=1000 count=1 status=none <&3 >/dev/null
lines=$(grep -c 'no client connected for' "$T/exportd.log")
netns_check "$NS_B"
ip -n "$NS_B" link set "$IF_B0" down
ip -n "$NS_B" link set "$IF_B1" down
# the server notices a silent link after its idle time (30 s), then waits 2 s
for ((i = 0; i < 450; i++)); do
	[ "$(grep -c 'no client connected for' "$T/exportd.log")" -gt "$lines" ] && break
	sleep 0.1
done
[ "$(grep -c 'no client connected for' "$T/exportd.log")" -gt "$lines" ] ||
	fail "exportd did not forget the nodes of a client cut off: $(tail -n 5 "$T/exportd.log")"
ip -n "$NS_B" link set "$IF_B0" up
ip -n "$NS_B" link set "$IF_B1" up
a=$(dd if="$T/src/large" bs=1000 skip=1 count=100 status=none | md5sum)
b=$(dd bs=1000 count=100 status=none <&3 | md5sum)
exec 3<&-
assert_eq "$b" "$a" "read from a file opened before the server forgot it"
diff -r --no-dereference "$T/src" "$MNT" 2>&1 |
	grep -E -v ' is a (fifo|socket|character special file|block special file) while file ' >"$T/diff.out" || true
[ ! -s "$T/diff.out" ] || fail "tree differs after the server forgot it: $(head -n 5 "$T/diff.out")"

echo "--- --handles-per-client 5: a sixth file held open is EMFILE, one closed makes room"
# The kernel sends FUSE's RELEASE after close() returns, without waiting
# for it, so the room a close makes (here, and after diff -r above) reaches
# the server a moment later: opens that must succeed retry EMFILE for 5 s.
python3 - "$MNT/large" <<'PY' || fail "the per-client handle limit does not hold through the mount"
import errno, sys, time
def open_soon(path):
    deadline = time.monotonic() + 5
    while True:
        try:
            return open(path, "rb")
        except OSError as e:
            if e.errno != errno.EMFILE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
fs = [open_soon(sys.argv[1]) for _ in range(5)]
try:
    open(sys.argv[1], "rb")
    sys.exit("a sixth open succeeded")
except OSError as e:
    if e.errno != errno.EMFILE:
        sys.exit("a sixth open failed with %s, not EMFILE" % e)
fs.pop().close()
open_soon(sys.argv[1]).close()
PY
kill "$FPID"
wait "$FPID" 2>/dev/null || true
fs_unmount "$MNT"
echo "fabvault-exportd --forget-after and --handles-per-client: ok"
