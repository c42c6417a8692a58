#!/usr/bin/env bash
# nodirect.sh: a repository on a file system that refuses O_DIRECT (ramfs)
# works as on any other: pack files are then written through the page cache
# (repository-format.md, "Packs"). A snapshot of files that fill more than
# one pack and leave a partial last block, a second snapshot, check
# --read-data, and a restore with --verify that matches the source.
# Root only: the repository lives on a ramfs.
. "$(dirname "$0")/lib.sh"

need_root
need_cmd python3

T=$(realpath "$T")
mnt=$T/mnt repo=$T/mnt/repo
mkdir "$mnt" "$T/src"
mount -t ramfs -o mode=0700 fv-nodirect "$mnt" 2>"$T/mount.err" ||
	skip "cannot mount a ramfs: $(cat "$T/mount.err")"
on_exit "umount -l '$mnt' || true"
# the premise: this file system refuses O_DIRECT
python3 - "$mnt/probe" <<'PY' || skip "this ramfs accepts O_DIRECT: nothing to test"
import os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
except OSError:
    sys.exit(0)
sys.exit(1)
PY
rm -f "$mnt/probe"

# 40 MiB of random data in odd sizes (more than one 32 MiB pack), and text
python3 - "$T/src" <<'PY'
import random, sys
r = random.Random(5)
for i in range(5):
    with open("%s/random-%d.bin" % (sys.argv[1], i), "wb") as f:
        f.write(r.randbytes(8 * 1048576 + 4097 * i + 13))
with open("%s/log.txt" % sys.argv[1], "w") as f:
    for i in range(50000):
        f.write("line %d of the log %d\n" % (i, r.randrange(1000)))
PY

fv_init "$repo" -q
fv snapshot "$repo" "$T/src" -q
echo "one more line" >>"$T/src/log.txt"
fv snapshot "$repo" "$T/src" -q
fv check "$repo" --read-data -q
fv restore "$repo" latest --target "$T/r" --verify -q
diff -r "$T/src" "$T/r/${T#/}/src" || fail "the restore differs from the source"
echo "a repository on a file system without O_DIRECT: ok"
