#!/usr/bin/env bash
# fabvault-exportd and a client that misbehaves: an authenticated client
# (a fabvault key the server accepts) sending requests that are not the
# filesystem protocol (`fabvault fabric ping` speaks another protocol) gets
# EPROTO and loses its link, with a warning naming its key; a request of
# another protocol version is answered EPROTO and the link kept (the client
# can tell the user to upgrade); the server keeps serving a mount all along.
. "$(dirname "$0")/lib.sh"
need_cmd fusermount3
[ -e /dev/fuse ] || skip "needs /dev/fuse"
netns_pair
node_keys "$T" a b
EXPORTD=$FV_BUILD/fs/fabvault-exportd FS=$FV_BUILD/fs/fabvault-fs
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420
MNT=$T/mnt
mkdir -p "$MNT" "$T/src"
echo "still served" >"$T/src/f"
on_exit 'fusermount3 -u "$MNT" 2>/dev/null'

netns_check "$NS_A"
ip netns exec "$NS_A" "$EXPORTD" --export "$T/src" --listen "$P0,$P1" --conf-dir "$T/a" 2>>"$T/exportd.log" &
XPID=$!
on_exit "kill $XPID 2>/dev/null; sleep 0.2"
wait_for "$T/exportd.log" "exporting .* on .*10.200.2.1"

# a mount of the same client key, on the other path, to show it is not touched
netns_check "$NS_B"
nsenter --net="/run/netns/$NS_B" "$FS" -o "paths=$P1,conf_dir=$T/b,timeout=20" 10.200.1.1:/ "$MNT"
[ "$(cat "$MNT/f")" = "still served" ] || fail "the mount does not read the export"

echo "--- a request that is not the filesystem protocol: EPROTO, then the link is closed"
in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 1 --size 1 --timeout 3000 "$P0" >/dev/null 2>&1 || true
wait_for "$T/exportd.log" "malformed request from peer 'b' .*: answered EPROTO, closing its connection"
wait_for "$T/exportd.log" "closing the connection of peer 'b': malformed request"
kill -0 "$XPID" || fail "exportd died"

echo "--- a request of another protocol version: EPROTO, the link is kept"
in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 1 --size 2 --timeout 3000 "$P0" >/dev/null 2>&1 || true
wait_for "$T/exportd.log" "malformed request from peer 'b' \(op 1, version 0, 2 bytes\): answered EPROTO \(another protocol version\)"
[ "$(grep -c 'closing the connection of peer' "$T/exportd.log")" = 1 ] ||
	fail "a request of another version closed the link: $(grep 'closing the connection' "$T/exportd.log")"

echo "--- the mount still works"
echo "changed" >"$T/src/g"
[ "$(cat "$MNT/g")" = "changed" ] || fail "the mount stopped working after another link of its key was closed"
kill -0 "$XPID" || fail "exportd died"
echo "exportd and a misbehaving client: ok"
