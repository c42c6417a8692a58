#!/usr/bin/env bash
# fabvault-fs and small files (docs/protocol.md, OPEN_INLINE): a file that
# fits an OPEN reply is read in one request (exportd's request counters: one
# OPEN_INLINE per file of a tar, no READ, no RELEASE), and most of them are
# opened ahead of tar (fabvault-fs's log), in a tree of many small
# directories from the first file of each on, while a listing alone opens
# nothing; files of 0 B, 1 B,
# exactly the inline limit, one byte more and 1 MiB read back byte-identical,
# whole and at offsets across the limit; a file rewritten on the server with
# other bytes of the same size is seen after the attribute timeout; a file
# truncated or grown on the server between open and read gives exactly the
# server's bytes once the attribute timeout passed; and a server without
# OPEN_INLINE (an old one) still serves the mount, at OPEN + READ + RELEASE.
. "$(dirname "$0")/lib.sh"
need_cmd fusermount3
need_cmd tar
[ -e /dev/fuse ] || skip "needs /dev/fuse"
netns_pair
node_keys "$T" a b
EXPORTD=$FV_BUILD/fs/fabvault-exportd FS=$FV_BUILD/fs/fabvault-fs
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420
MNT=$T/mnt SRC=$T/src
LIMIT=65448 # FV_FS_MAX_INLINE: 65,536 less the reply's 88 fixed bytes
N=300       # small files for the round-trip count
D=40 K=5    # directories of K small files each (memories/YYYY/MM/DD)
[ "${FV_QUICK:-0}" = 1 ] && N=100 D=20

XPID='' FPID=''
on_exit 'fusermount3 -u "$MNT" 2>/dev/null; [ -z "$FPID" ] || kill "$FPID" 2>/dev/null'
on_exit '[ -z "$XPID" ] || kill "$XPID" 2>/dev/null; sleep 0.2'

# start_exportd [ENV=VALUE...]: a fresh exportd (its counters at zero), -v
# so that it logs the requests it served when it stops
start_exportd() {
	netns_check "$NS_A"
	: >"$T/exportd.log"
	env "$@" ip netns exec "$NS_A" "$EXPORTD" -v --export "$SRC" --listen "$P0,$P1" --conf-dir "$T/a" \
		2>>"$T/exportd.log" &
	XPID=$!
	wait_for "$T/exportd.log" "exporting .* on .*10.200.2.1"
}
# stop_exportd: stop it; its "requests served" line is in $T/served
stop_exportd() {
	kill "$XPID"
	wait "$XPID" 2>/dev/null || true
	XPID=''
	grep 'requests served:' "$T/exportd.log" >"$T/served" || fail "exportd logged no request counts: $(cat "$T/exportd.log")"
}
# served OP: how many OP requests the stopped exportd served
served() {
	local n
	n=$(grep -o " $1=[0-9]*" "$T/served" | cut -d= -f2 || true)
	echo "${n:-0}"
}
mount_fs() {
	nsenter --net="/run/netns/$NS_B" "$FS" -d -o "paths=$P0+$P1,conf_dir=$T/b,attr_timeout=1,entry_timeout=1,timeout=20" \
		10.200.1.1:/ "$MNT" 2>"$T/fs.log" &
	FPID=$!
	fs_mounted "$MNT" "$T/fs.log"
}
unmount_fs() {
	fs_unmount "$MNT"
	wait "$FPID" 2>/dev/null || true
	FPID=''
}
# tar_count WHAT [DIR]: tar DIR (default small) through a fresh mount of a
# fresh exportd, check the bytes, and leave the counters in $T/served
tar_count() {
	local dir=${2:-small}
	mount_fs
	tar cf - -C "$MNT/$dir" . | tar xf - -C "$T/out-$1"
	unmount_fs
	stop_exportd
	diff -r "$SRC/$dir" "$T/out-$1" >/dev/null || fail "$1: the tar of $dir differs"
	echo "$1: $(cut -d: -f2- <"$T/served" | sed 's/^ *//')"
	grep -o 'opened [0-9]* files ahead, [0-9]* of them used' "$T/fs.log" || true
	echo "$1: FUSE requests from the kernel: $(grep -o 'opcode: [A-Z]*' "$T/fs.log" | sort | uniq -c | tr -s ' \n' ' ')"
}

mkdir -p "$SRC/small" "$MNT" "$T/out-inline" "$T/out-old" "$T/out-dirs"
# the memory system's files: JSON of a few KiB
for ((i = 0; i < N; i++)); do
	head -c $((RANDOM % 6000 + 1)) /dev/urandom | base64 -w 0 >"$SRC/small/f$i.json"
done
for ((d = 0; d < D; d++)); do
	mkdir -p "$SRC/dirs/d$d"
	for ((i = 0; i < K; i++)); do
		head -c $((RANDOM % 3000 + 1)) /dev/urandom | base64 -w 0 >"$SRC/dirs/d$d/m$i.json"
	done
done
: >"$SRC/empty"
printf x >"$SRC/one"
head -c $((LIMIT - 1)) /dev/urandom >"$SRC/limit-1"
head -c $LIMIT /dev/urandom >"$SRC/limit"
head -c $((LIMIT + 1)) /dev/urandom >"$SRC/limit+1"
head -c 1048576 /dev/urandom >"$SRC/mib"
sleep 1.2

echo "--- a tar of $N small files: one request each (OPEN_INLINE), no READ, no RELEASE"
start_exportd
tar_count inline
# opening ahead may ask for a few files more than tar opens (8 at most at
# the end of a listing, or again when a reply grew old)
n=$(served OPEN_INLINE)
[ "$n" -ge "$N" ] && [ "$n" -le $((N + N / 10)) ] || fail "$n OPEN_INLINE requests for $N files"
used=$(grep -o 'opened [0-9]* files ahead, [0-9]* of them used' "$T/fs.log" | cut -d' ' -f5)
[ "${used:-0}" -ge $((N * 3 / 4)) ] || fail "only ${used:-0} of $N files were opened ahead of tar: $(grep 'ahead' "$T/fs.log")"
assert_eq "$(served OPEN)" 0 "OPEN requests"
assert_eq "$(served READ)" 0 "READ requests"
assert_eq "$(served RELEASE)" 0 "RELEASE requests"

echo "--- $D directories of $K small files: opened ahead from the first file of each"
# The first small file of a listing is expected: it and the files after it
# are asked for at once when tar opens it, so no file of a directory waits
# on its own round trip (before, the first two of every directory did and
# were not counted as used).
start_exportd
tar_count dirs dirs
n=$(served OPEN_INLINE)
[ "$n" -ge $((D * K)) ] && [ "$n" -le $((D * K + D * K / 10)) ] || fail "$n OPEN_INLINE requests for $((D * K)) files"
used=$(grep -o 'opened [0-9]* files ahead, [0-9]* of them used' "$T/fs.log" | cut -d' ' -f5)
[ "${used:-0}" -ge $((D * (K - 1))) ] ||
	fail "only ${used:-0} of $((D * K)) files in $D directories were opened ahead of tar: $(grep 'ahead' "$T/fs.log")"
assert_eq "$(served OPEN)" 0 "OPEN requests"

echo "--- listing alone (ls -lR, find) opens nothing ahead"
# (the first files of a listing are asked for at READDIRPLUS only within
# attr_timeout of an open answered from an open ahead: a tar, not a listing)
start_exportd
mount_fs
ls -lR "$MNT/dirs" >/dev/null
assert_eq "$(find "$MNT/dirs" -type f -size -8k | wc -l)" $((D * K)) "files found"
unmount_fs
stop_exportd
assert_eq "$(served OPEN_INLINE)" 0 "OPEN_INLINE requests for a listing"

echo "--- a server without OPEN_INLINE (as before it): the mount falls back to OPEN, READ, RELEASE"
start_exportd FABVAULT_EXPORTD_NO_OPEN_INLINE=1
tar_count old
assert_eq "$(served OPEN_INLINE)" 1 "OPEN_INLINE requests to an old server (the first, answered ENOSYS)"
assert_eq "$(served OPEN)" "$N" "OPEN requests to an old server"
assert_eq "$(served READ)" "$N" "READ requests to an old server"

echo "--- 0 B, 1 B, the limit - 1, the limit, the limit + 1, 1 MiB: byte-identical"
start_exportd
mount_fs
for f in empty one limit-1 limit limit+1 mib; do
	cmp "$SRC/$f" "$MNT/$f" || fail "$f differs"
	assert_eq "$(stat -c %s "$MNT/$f")" "$(stat -c %s "$SRC/$f")" "size of $f"
done
# reads at offsets across the end of the inline bytes, each on a fresh open
for f in limit limit+1 mib; do
	for off in 0 1 65400 $((LIMIT - 1)) $LIMIT $((LIMIT + 1)) 131000; do
		a=$(dd if="$SRC/$f" bs=1 skip=$off count=100 status=none | md5sum)
		b=$(dd if="$MNT/$f" bs=1 skip=$off count=100 status=none | md5sum)
		assert_eq "$b" "$a" "$f: 100 bytes at $off"
	done
done
# and through one open file, in 1000-byte reads (the page cache dropped first)
echo 3 >/proc/sys/vm/drop_caches
cmp <(dd if="$MNT/limit+1" bs=1000 status=none) "$SRC/limit+1" || fail "limit+1 read in 1000-byte pieces differs"

echo "--- a file rewritten on the server, same size, other bytes: seen after attr_timeout"
head -c 3000 /dev/zero | tr '\0' A >"$SRC/rewritten"
sleep 1.5
cmp "$SRC/rewritten" "$MNT/rewritten" || fail "rewritten (first version) differs"
head -c 3000 /dev/zero | tr '\0' B >"$SRC/rewritten"
sleep 1.5
cmp "$SRC/rewritten" "$MNT/rewritten" || fail "rewritten file: the old bytes after attr_timeout"

echo "--- a file truncated or grown on the server between open and read"
head -c 5000 /dev/urandom >"$SRC/shrinks"
head -c 3000 /dev/urandom >"$SRC/grows"
sleep 1.5
exec 3<"$MNT/shrinks" 4<"$MNT/grows" # opened: the whole files came inline
head -c 1000 /dev/urandom >"$SRC/shrinks" # the same file, truncated and written again
head -c 4000 /dev/urandom >>"$SRC/grows"
sleep 1.5
cat <&3 >"$T/shrinks.read"
cat <&4 >"$T/grows.read"
exec 3<&- 4<&-
assert_eq "$(stat -c %s "$T/shrinks.read")" 1000 "bytes read from a file rewritten with 1000 bytes after its open"
cmp "$T/shrinks.read" "$SRC/shrinks" || fail "a file rewritten shorter after its open: stale bytes"
assert_eq "$(stat -c %s "$T/grows.read")" 7000 "bytes read from a file grown to 7000 after its open"
cmp "$T/grows.read" "$SRC/grows" || fail "a file grown after its open: wrong bytes"
unmount_fs
stop_exportd
echo "fabvault-fs and small files: ok"
