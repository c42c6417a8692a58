#!/usr/bin/env bash
# parallel_read.sh: restore and check --read-data read data with --threads N
# workers (default: one per online CPU); the number of threads changes
# nothing users see:
#   - restore with --threads 1 and --threads 4 gives the same tree (contents,
#     types, modes, mtimes in ns, xattrs, hardlink groups: treecmp), equal to
#     the source; sparse files keep the same holes (same allocated blocks);
#     hardlinks are one inode; --verify passes;
#   - more files than the restore keeps open at once (256), a file of many
#     chunks spread over two packs;
#   - two damaged blobs that only unsealing finds: check --read-data with 1
#     and 4 threads prints the same report, naming the pack, the blobs and the
#     files, and exits 8; restore with 1 and 4 threads names the damaged
#     files and pack the same way, exits 8 and does not hang; the other
#     files are restored equal;
#   - a missing pack: restore with 4 threads exits 8 without hanging;
#   - bad --threads values (0, -1, abc, huge, empty) are usage errors
#     (exit 2) naming the option, and restore then creates no target.
. "$(dirname "$0")/lib.sh"

need_cmd python3 # gentree.sh
need_cmd timeout

T=$(realpath "$T") # a snapshot stores resolved absolute paths
src=$T/src repo=$T/repo
srcrel=${src#/}
gentree "$src"
python3 - "$src" <<-'EOF'
	import os, random, sys
	root, r = sys.argv[1], random.Random(7)
	os.makedirs(os.path.join(root, "small"))
	for i in range(600):  # more than the files a restore keeps open
	    with open(os.path.join(root, "small", "f%03d" % i), "wb") as f:
	        f.write(r.randbytes(r.randrange(1, 5000)))
	with open(os.path.join(root, "many-chunks.bin"), "wb") as f:
	    f.write(r.randbytes(6 << 20))
EOF
fv_init "$repo" --chunk-sizes 64,128,1024 -q
fv snapshot "$repo" "$src" -q
# a second snapshot adds a pack: the file's chunks now live in two packs
python3 -c 'import random, sys; open(sys.argv[1], "ab").write(random.Random(8).randbytes(3 << 20))' \
	"$src/many-chunks.bin"
fv snapshot "$repo" "$src" -q
[ "$(find "$repo/packs" -type f | wc -l)" -ge 2 ] || fail "expected at least two packs"

# blocks FILE: bytes allocated to FILE
blocks() {
	local b u
	read -r b u < <(stat -c '%b %B' -- "$1")
	echo $((b * u))
}

# same_tree A B WHAT: treecmp finds no difference but A's socket (restore
# does not create sockets).
same_tree() {
	local out rc=0
	out=$(treecmp "$1" "$2" 2>&1) || rc=$?
	[ "$rc" -le 1 ] || fail "$3: treecmp failed (exit $rc): $out"
	out=$(printf '%s\n' "$out" | grep -v -x -F 'only in A: special/socket' || true)
	[ -z "$out" ] || fail "$3: treecmp found differences:"$'\n'"$out"
}

# --- restore: 1 thread and 4 threads give the same tree ------------------------------
for n in 1 4; do
	assert_exit 0 timeout 300 "$FV_BIN" restore "$repo" latest --target "$T/out$n" --threads "$n" --verify -q
	same_tree "$src" "$T/out$n$src" "restore --threads $n"
done
out1=$T/out1$src out4=$T/out4$src
rc=0
diff_out=$(treecmp "$out1" "$out4" 2>&1) || rc=$?
[ "$rc" = 0 ] || fail "restores with 1 and 4 threads differ (treecmp exit $rc):"$'\n'"$diff_out"
# diff does not compare special files; it names each one: not a difference
diff_out=$(LC_ALL=C diff -r --no-dereference "$out1" "$out4" 2>&1 | grep -v -E ' is a (fifo|character special file|block special file) while ' || true)
[ -z "$diff_out" ] || fail "diff -r finds the restores with 1 and 4 threads different:"$'\n'"$diff_out"

# holes: the same blocks allocated with 1 and 4 threads, and still sparse
for f in sparse/big.img sparse/all-hole.img sparse/tail-hole.img; do
	a1=$(blocks "$out1/$f") a4=$(blocks "$out4/$f") size=$(stat -c %s "$out4/$f")
	assert_eq "$a4" "$a1" "$f: bytes allocated with 4 threads (1 thread: $a1)"
	[ $((a4 * 8)) -lt "$size" ] || fail "$f is not sparse after restore with 4 threads: $a4 of $size bytes"
done

# hardlinks: one inode, three names
for o in "$out1" "$out4"; do
	ino=$(stat -c %i "$o/hard/a/first")
	assert_eq "$(stat -c %i "$o/hard/b/second")" "$ino" "$o: hardlink hard/b/second"
	assert_eq "$(stat -c %h "$o/hard/a/first")" 3 "$o: link count of hard/a/first"
done

# the default (online CPUs) restores the same
assert_exit 0 timeout 300 "$FV_BIN" restore "$repo" latest --target "$T/outd" -q
rc=0
treecmp "$out1" "$T/outd$src" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 0 "treecmp of restores with 1 thread and the default"
rm -rf "$T/out4" "$T/outd"

# --- check --read-data: 1 and 4 threads -----------------------------------------------
for n in 1 4; do
	assert_exit 0 timeout 300 "$FV_BIN" check "$repo" --read-data --threads "$n" -q
done

# --- damaged data frames ---------------------------------------------------------------
# reseal_damage PACK K...: flip a payload byte of the pack's large frames
# number K (0 = the first frame of over 100 KB: random data, not a tree) and
# write a matching frame checksum (XXH3-64 of the payload, seeded with its
# length; libxxhash through ctypes), so the frame scan finds nothing and only
# reading the data (unseal) sees the damage.
reseal_damage() {
	python3 - "$@" <<-'EOF'
		import ctypes, ctypes.util, struct, sys
		lib = ctypes.util.find_library("xxhash")
		if not lib:
		    sys.exit("libxxhash not found")
		xxh = ctypes.CDLL(lib).XXH3_64bits_withSeed
		xxh.restype, xxh.argtypes = ctypes.c_uint64, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
		f = open(sys.argv[1], "r+b")
		want, off, k = {int(a) for a in sys.argv[2:]}, 16, 0
		while want:
		    f.seek(off)
		    n = struct.unpack("<I", f.read(4))[0]
		    if n > 100000 and k in want:
		        payload = bytearray(f.read(n))
		        payload[10] ^= 0xFF
		        f.seek(off + 4)
		        f.write(payload + struct.pack("<Q", xxh(bytes(payload), n, n)))
		        want.discard(k)
		    off, k = off + 4 + n + 8, k + (n > 100000)
	EOF
}
w=$T/w
cp -a "$repo" "$w"
pack=$(cd "$w" && find packs -type f | sort | head -n 1)
reseal_damage "$w/$pack" 0 3
assert_exit 0 fv check "$w" # the frames still scan clean

for n in 1 4; do
	rc=0
	timeout 300 "$FV_BIN" check "$w" --read-data --threads "$n" >"$T/check$n.out" 2>&1 || rc=$?
	assert_eq "$rc" 8 "exit status of check --read-data --threads $n of a damaged pack"
	grep -qF "$pack" "$T/check$n.out" || fail "check --threads $n does not name $pack: $(cat "$T/check$n.out")"
	grep -qE "blob [0-9a-f]{16}" "$T/check$n.out" || fail "check --threads $n names no blob: $(cat "$T/check$n.out")"
done
diff "$T/check1.out" "$T/check4.out" >&2 || fail "check --read-data reports differently with 1 and 4 threads"
grep -qF "failed authentication" "$T/check4.out" || fail "check --read-data does not say what is wrong: $(cat "$T/check4.out")"
[ "$(grep -c "blob [0-9a-f]\{16\} in $pack" "$T/check4.out")" = 2 ] ||
	fail "check --read-data should name two damaged blobs of $pack: $(cat "$T/check4.out")"
victims=$(grep -oE "$srcrel/[^:]*: [0-9]+ of [0-9]+ content chunks" "$T/check4.out" |
	sed -E "s|^$srcrel/||; s|: [0-9]+ of [0-9]+ content chunks$||" | sort -u)
[ -n "$victims" ] || fail "check names no damaged file: $(cat "$T/check4.out")"
echo "damaged: two blobs of $pack, in: $(tr '\n' ' ' <<<"$victims")"

for n in 1 4; do
	rc=0
	timeout 300 "$FV_BIN" restore "$w" latest --target "$T/bad$n" --threads "$n" >"$T/restore$n.out" 2>&1 || rc=$?
	[ "$rc" != 124 ] || fail "restore --threads $n of a damaged repository hangs"
	assert_eq "$rc" 8 "exit status of restore --threads $n of a damaged repository"
	while IFS= read -r v; do
		grep -qF "$srcrel/$v" "$T/restore$n.out" ||
			fail "restore --threads $n does not name the damaged $v: $(cat "$T/restore$n.out")"
	done <<<"$victims"
	grep -qiE "not restored: .*$pack" "$T/restore$n.out" ||
		fail "restore --threads $n does not say which pack is damaged: $(cat "$T/restore$n.out")"
done
diff <(sort "$T/restore1.out") <(sort "$T/restore4.out") >&2 ||
	fail "restore of a damaged repository reports differently with 1 and 4 threads"
# everything else is intact
while IFS= read -r -d '' f; do
	r=${f#"$src"/}
	! grep -qxF "$r" <<<"$victims" || continue
	cmp -s "$f" "$T/bad4$src/$r" || fail "restore --threads 4: intact file $r not restored equal"
done < <(find "$src" -type f -print0)
rm -rf "$T/bad1" "$T/bad4"

# --- a missing pack ------------------------------------------------------------------------
rm "$w/$pack"
rc=0
timeout 300 "$FV_BIN" restore "$w" latest --target "$T/gone" --threads 4 >"$T/gone.out" 2>&1 || rc=$?
[ "$rc" != 124 ] || fail "restore --threads 4 with a missing pack hangs"
assert_eq "$rc" 8 "exit status of restore --threads 4 with a missing pack"
grep -qF "missing" "$T/gone.out" || fail "restore with a missing pack does not say so: $(cat "$T/gone.out")"
rm -rf "$T/gone"

# --- bad --threads values ---------------------------------------------------------------------
for v in 0 -1 abc 99999999999999999999 65 "" 4x; do
	assert_exit 2 fv restore "$repo" latest --target "$T/never" --threads "$v"
	assert_stderr "--threads"
	[ ! -e "$T/never" ] || fail "restore --threads '$v' created its target"
	assert_exit 2 fv check "$repo" --read-data --threads "$v"
	assert_stderr "--threads"
done
assert_exit 2 fv restore "$repo" latest --target "$T/never" --threads
fv restore --help | grep -q -- "--threads N" || fail "restore --help does not list --threads"
fv check --help | grep -q -- "--threads N" || fail "check --help does not list --threads"
echo "restore and check --read-data give the same results with 1 and 4 threads"
