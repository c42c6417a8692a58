#!/usr/bin/env bash
# incremental.sh: a snapshot after a small change stores only the new chunks
# (fabvault(1): "a daily snapshot costs little more than what changed").
#
# Source: 20 MiB of (seeded, so every run chunks alike) random data in three
# files, 8 + 6 + 6 MiB, in a repository with the default chunk sizes (min
# 512 KiB, average 1 MiB, max 8 MiB).
#   1. the first snapshot stores all of it: ~20 MiB (random data does not
#      compress);
#   2. one byte of the 8 MiB file is changed and a 100-byte file added:
#      content-defined chunking re-cuts only around the change, so at most the
#      chunk holding that byte and the next one are new, and never more than
#      the 8 MiB file itself; typically 0.5..2 MiB. Asserted: new_bytes and the
#      repository's growth (du -sb) stay under 25% of the first snapshot, and
#      the change was seen (new_bytes >= 100);
#   3. nothing changed: < 64 KiB new (directory listings, snapshot, index);
#   4. a copy of a 6 MiB file under a new name: < 64 KiB new (deduplicated);
# and snapshots 1 and 2 restore to their own contents.
. "$(dirname "$0")/lib.sh"

need_cmd python3

T=$(realpath "$T")
src=$T/src repo=$T/repo
mkdir "$src"
python3 - "$src" <<-'EOF'
	import random, sys
	r = random.Random(20240607)
	for name, mib in (("a.bin", 8), ("b.bin", 6), ("c.bin", 6)):
	    with open(sys.argv[1] + "/" + name, "wb") as f:
	        for _ in range(mib):
	            f.write(r.randbytes(1 << 20))
EOF

fv_init "$repo" -q

# snap N: snapshot $src with --json into $T/snapN.json; prints nothing
snap() {
	fv snapshot "$repo" "$src" --json >"$T/snap$1.json" || fail "snapshot $1 failed"
}
# field N KEY: the number KEY of $T/snapN.json
field() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/snap$1.json" "$2"
}
repo_bytes() {
	du -sb "$repo" | cut -f1
}
mib() { # for messages
	awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'
}

# 1. everything is new
r0=$(repo_bytes)
snap 1
r1=$(repo_bytes)
stored1=$(field 1 stored_bytes)
new1=$(field 1 new_bytes)
echo "snapshot 1: new $(mib "$new1"), stored $(mib "$stored1"), repository +$(mib $((r1 - r0)))"
[ "$stored1" -ge $((20 << 20)) ] || fail "snapshot 1 stored $stored1 bytes, less than the 20 MiB of random data"
[ "$stored1" -le $((21 << 20)) ] || fail "snapshot 1 stored $stored1 bytes for 20 MiB of random data"
[ $((r1 - r0)) -ge "$stored1" ] || fail "the repository grew by $((r1 - r0)) bytes, less than stored_bytes $stored1"
limit=$((stored1 / 4))

# 2. one byte changed, one small file added
cp "$src/a.bin" "$T/a.orig"
printf 'Z' | dd of="$src/a.bin" bs=1 seek=$((4 << 20 | 12345)) conv=notrunc status=none
cmp -s "$src/a.bin" "$T/a.orig" && fail "the byte was not changed"
head -c 100 /dev/zero | tr '\0' 'n' >"$src/new.txt"
snap 2
r2=$(repo_bytes)
new2=$(field 2 new_bytes)
stored2=$(field 2 stored_bytes)
echo "snapshot 2: new $(mib "$new2"), stored $(mib "$stored2"), repository +$(mib $((r2 - r1)))"
[ "$new2" -ge 100 ] || fail "snapshot 2: new_bytes $new2: the changed byte or the new file was not stored"
[ "$new2" -lt "$limit" ] || fail "snapshot 2 after a 1-byte change: new_bytes $new2 >= 25% of the first snapshot ($limit)"
[ "$stored2" -lt "$limit" ] || fail "snapshot 2 after a 1-byte change: stored_bytes $stored2 >= $limit"
[ $((r2 - r1)) -lt "$limit" ] || fail "snapshot 2 after a 1-byte change: the repository grew by $((r2 - r1)) >= $limit bytes"

# 3. nothing changed
snap 3
r3=$(repo_bytes)
new3=$(field 3 new_bytes)
echo "snapshot 3 (unchanged): new $new3 B, stored $(field 3 stored_bytes) B, repository +$((r3 - r2)) B"
[ "$new3" -lt 65536 ] || fail "unchanged snapshot 3: new_bytes $new3 >= 64 KiB"
[ $((r3 - r2)) -lt 65536 ] || fail "unchanged snapshot 3: the repository grew by $((r3 - r2)) >= 64 KiB"

# 4. known content under a new name
cp "$src/b.bin" "$src/b-copy.bin"
snap 4
r4=$(repo_bytes)
new4=$(field 4 new_bytes)
echo "snapshot 4 (a copy of b.bin): new $new4 B, repository +$((r4 - r3)) B"
[ "$new4" -lt 65536 ] || fail "snapshot 4 with a copy of a 6 MiB file: new_bytes $new4 >= 64 KiB (not deduplicated)"
[ $((r4 - r3)) -lt 65536 ] || fail "snapshot 4 with a copy of a 6 MiB file: the repository grew by $((r4 - r3)) >= 64 KiB"

# each snapshot restores its own contents
id1=$(field 1 id) id2=$(field 2 id)
fv restore "$repo" "$id1" --target "$T/r1" --verify -q
fv restore "$repo" "$id2" --target "$T/r2" --verify -q
cmp "$T/r1$src/a.bin" "$T/a.orig" || fail "snapshot 1 does not restore the original a.bin"
cmp "$T/r2$src/a.bin" "$src/a.bin" || fail "snapshot 2 does not restore the changed a.bin"
[ ! -e "$T/r1$src/new.txt" ] || fail "snapshot 1 restores new.txt, added after it"
cmp "$T/r2$src/new.txt" "$src/new.txt" || fail "snapshot 2 does not restore new.txt"
for f in b.bin c.bin; do
	cmp "$T/r1$src/$f" "$src/$f" || fail "snapshot 1 does not restore $f"
	cmp "$T/r2$src/$f" "$src/$f" || fail "snapshot 2 does not restore $f"
done
assert_exit 0 fv check "$repo" -q
