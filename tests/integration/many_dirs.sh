#!/usr/bin/env bash
# many_dirs.sh: a snapshot of many directories stores their listings later
# than it walks them (docs/repository-format.md, "Snapshot pipeline"), and
# that changes nothing but the speed:
#   - a tree of 300 directories (nested up to 4 deep) holding 12,000 small
#     files, some larger files cut into many chunks, empty directories and
#     duplicates across directories (more entries than the walker holds back
#     at once, so its listings are stored in several rounds), snapshotted with
#     --threads 1, 2 and 4 into one repository: after the first, the others
#     add no data and no listing but those of the source's ancestors, ls
#     --long --json is the same in all three, and each restores equal to the
#     source (treecmp, diff -r);
#   - the same tree snapshotted with the files cache (a second run reads
#     nothing, adds nothing but the ancestors' listings) lists the same;
#   - a file that grows while it is read, among those directories, is read 3
#     times and then stored flagged inconsistent with a warning (fabvault(1));
#     the other files of the run are stored whole, and check and restore
#     accept the snapshot.
. "$(dirname "$0")/lib.sh"

need_cmd python3
need_cmd diff

T=$(realpath "$T") # a snapshot stores resolved absolute paths
src=$T/src
python3 - "$src" <<-'EOF2'
	import os, random, sys
	r = random.Random(5)
	root = sys.argv[1]
	dirs = [root]
	for i in range(300):
	    parent = dirs[r.randrange(len(dirs))] if len(dirs) > 1 and r.random() < 0.6 else root
	    if parent.count(os.sep) - root.count(os.sep) >= 4:
	        parent = root
	    d = os.path.join(parent, "d%03d" % i)
	    os.makedirs(d)
	    dirs.append(d)
	shared = b"the same few bytes in many directories\n" * 30
	for i in range(12000):
	    d = dirs[1 + r.randrange(len(dirs) - 1)] if i % 97 else dirs[1 + i % 5]
	    with open(os.path.join(d, "f%05d.json" % i), "wb") as f:
	        if i % 11 == 0:
	            f.write(shared)
	        else:
	            f.write(b'{"id": %d, "v": "%s"}\n' % (i, r.randbytes(r.randrange(0, 600)).hex().encode()))
	rnd = r.randbytes(3 << 20)
	for k in range(4):
	    with open(os.path.join(dirs[1 + 40 * k], "big%d.bin" % k), "wb") as f:
	        f.write(rnd if k % 2 else rnd[::-1])
	for k in range(3):
	    os.makedirs(os.path.join(dirs[2 + k], "empty"))
EOF2
nfiles=$(find "$src" -type f | wc -l)
assert_eq "$nfiles" 12004 "files generated"

# snap THREADS [ARGS...]: a snapshot of $src into $T/repo; its JSON in $T/snap.json
snap() {
	local n=$1
	shift
	fv snapshot "$T/repo" "$src" --threads "$n" --json "$@" >"$T/snap.json"
}
field() {
	json_field "$1" <"$T/snap.json"
}

fv_init "$T/repo" --chunk-sizes 64,128,1024 -q
first=''
for n in 1 2 4; do
	snap "$n" --no-cache
	echo "--threads $n: $(field files) files, $(field new_blobs) new blobs, $(field new_bytes) new bytes"
	assert_eq "$(field files)" 12004 "files stored with --threads $n"
	if [ -z "$first" ]; then
		first=$n
	else
		# only the 3 ancestors' listings (/, $TMPDIR, $T) may be new
		blobs=$(field new_blobs) bytes=$(field new_bytes)
		[ "$blobs" -le 3 ] && [ "$bytes" -lt 65536 ] ||
			fail "--threads $n after --threads $first: $blobs new blobs, $bytes new bytes"
	fi
	assert_exit 0 fv restore "$T/repo" latest --target "$T/out$n" --verify -q
	out=$(treecmp "$src" "$T/out$n$src" 2>&1) || fail "--threads $n: treecmp: $out"
	LC_ALL=C diff -r --no-dereference "$src" "$T/out$n$src" || fail "--threads $n: diff -r found differences"
	rm -rf "$T/out$n"
done
assert_exit 0 fv check "$T/repo" --read-data -q

ids=$(fv list "$T/repo" --json | python3 -c 'import json, sys; print(*(s["id"] for s in json.load(sys.stdin)))')
read -r -a id <<<"$ids"
[ "${#id[@]}" = 3 ] || fail "expected 3 snapshots, got: $ids"
ls_of() {
	fv ls "$T/repo" "$1" "$src" --long --json
}
want=$(ls_of "${id[0]}")
for i in 1 2; do
	[ "$(ls_of "${id[$i]}")" = "$want" ] || fail "ls --long differs between snapshots 1 and $((i + 1))"
done

# --- with the files cache: the second run reads nothing, lists the same ------
snap 2
snap 2
[ "$(field new_blobs)" -le 3 ] || fail "an unchanged snapshot (files cache) stored $(field new_blobs) new blobs"
[ "$(ls_of latest)" = "$want" ] || fail "ls --long of the files-cache snapshot differs"

# --- a file that grows while it is read ------------------------------------------
grow=$src/d010/growing.log
head -c $((24 << 20)) /dev/urandom >"$grow"
python3 - "$grow" <<-'EOF2' &
	import os, sys, time
	fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
	while True:
	    os.write(fd, b"one more line\n" * 64)
	    time.sleep(0.0005)
EOF2
writer=$!
on_exit "kill $writer 2>/dev/null || true"
while [ "$(stat -c %s "$grow")" = $((24 << 20)) ]; do sleep 0.01; done # it grows
assert_exit 0 fv snapshot "$T/repo" "$src" --threads 4 --no-cache -q
assert_stderr 'growing.log.*changed while being read \(3 tries\); stored as inconsistent'
kill "$writer"
wait "$writer" 2>/dev/null || true
assert_exit 0 fv check "$T/repo" --read-data -q
assert_exit 0 fv restore "$T/repo" latest --target "$T/out-grow" --verify -q
size=$(stat -c %s "$T/out-grow$grow")
[ "$size" -ge $((24 << 20)) ] || fail "the growing file restored with $size bytes, fewer than it had"
# everything else is whole
rm "$T/out-grow$grow" "$grow"
LC_ALL=C diff -r --no-dereference "$src" "$T/out-grow$src" || fail "the other files of the growing-file run differ"
