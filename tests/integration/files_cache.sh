#!/usr/bin/env bash
# The files cache: an unchanged file is not read again, a changed one always
# is (content, same-size rewrite with the old mtime, new inode), and a cache
# that cannot be trusted (tampered, or naming chunks the repository no longer
# has) is ignored without harm. Files changed within a second of a snapshot's
# start are not cached (timestamp resolution).
. "$(dirname "$0")/lib.sh"
need_cmd python3

src=$T/src
mkdir -p "$src/d"
head -c 3000000 /dev/urandom >"$src/a"
head -c 2000000 /dev/urandom >"$src/d/b"
echo small >"$src/d/c"
sleep 1.2 # older than the one-second window of the first snapshot

fv_init "$T/repo"
snap() { fv snapshot "$T/repo" "$src" --json "$@" >"$T/out.json"; }

snap
assert_eq "$(json_field files_from_cache <"$T/out.json")" 0 "first snapshot reads everything"
assert_eq "$(json_field read_bytes <"$T/out.json")" 5000006 "first snapshot read bytes"

snap
assert_eq "$(json_field files_from_cache <"$T/out.json")" 3 "unchanged files come from the cache"
assert_eq "$(json_field read_bytes <"$T/out.json")" 0 "nothing is read when nothing changed"

# same size, mtime put back: the ctime still moves, so it is read again
python3 - "$src/a" <<'PY'
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.seek(1000)
    f.write(b"CHANGED!")
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
sleep 1.2
snap
assert_eq "$(json_field files_from_cache <"$T/out.json")" 2 "a same-size rewrite with the old mtime is not trusted"
assert_eq "$(json_field read_bytes <"$T/out.json")" 3000000 "only the changed file is read"
fv restore "$T/repo" latest --target "$T/r1" -q
cmp "$src/a" "$T/r1/${src#/}/a" || fail "restored content is not the new content"

# a new inode under the old name (an editor's save-by-rename)
cp -p "$src/d/b" "$T/b.new" && mv "$T/b.new" "$src/d/b"
sleep 1.2
snap
assert_eq "$(json_field read_bytes <"$T/out.json")" 2000000 "a file replaced by rename is read again"

# a tampered cache is ignored, with a warning, and the snapshot is right
cache=$(find "$XDG_CACHE_HOME/fabvault" -name files)
[ -f "$cache" ] || fail "no files cache written under \$XDG_CACHE_HOME"
printf 'X' | dd of="$cache" bs=1 seek=100 conv=notrunc status=none
fv snapshot "$T/repo" "$src" --json >"$T/out.json" 2>"$T/err"
grep -q "files cache" "$T/err" || fail "a damaged cache is not reported: $(cat "$T/err")"
assert_eq "$(json_field read_bytes <"$T/out.json")" 5000006 "a damaged cache is not used"
assert_eq "$(json_field errors <"$T/out.json")" 0 "a damaged cache is not an error of the snapshot"
snap
assert_eq "$(json_field read_bytes <"$T/out.json")" 0 "the cache is rebuilt"

# chunks that left the repository (as after a prune): the cache must not be trusted
rm -f "$T/repo/index/"* "$T/repo/snapshots/"*
snap
assert_eq "$(json_field files_from_cache <"$T/out.json")" 0 "entries naming chunks the index lacks are not used"
fv check "$T/repo" --read-data -q
fv restore "$T/repo" latest --target "$T/r2" --verify -q
diff -r "$src" "$T/r2/${src#/}" >/dev/null || fail "restore after a cache miss differs"

# a file changed just now is read again next time
echo fresh >"$src/d/c"
snap
snap
assert_eq "$(json_field read_bytes <"$T/out.json")" 6 "a file changed within a second of the snapshot is read again"

# a cache directory that cannot be used: a warning, and a correct snapshot
fv snapshot "$T/repo" "$src" --cache-dir /dev/null/cache --json >"$T/out.json" 2>"$T/err"
grep -q "files cache" "$T/err" || fail "an unusable --cache-dir is not reported: $(cat "$T/err")"
assert_eq "$(json_field errors <"$T/out.json")" 0 "an unusable cache directory is not an error of the snapshot"

# --no-cache reads everything
sleep 1.2
snap --no-cache
assert_eq "$(json_field read_bytes <"$T/out.json")" 5000006 "--no-cache reads every file"
