#!/usr/bin/env bash
# nospace.sh: a full disk under the repository gives exit status 10 and a
# "no space" message, and leaves the repository valid (fabvault(1), EXIT
# STATUS). Root only: the repository lives on an 8 MiB tmpfs.
#   - a snapshot of 30 MiB of random data: exit 10; check passes; list shows
#     only the earlier snapshot; the space of the aborted snapshot is given
#     back (an aborted snapshot must not keep the disk full);
#   - with nothing deleted, a small snapshot then succeeds, and after the tmpfs
#     is grown (remount, size=64m) so does the 30 MiB one; check --read-data
#     passes and both restore with --verify;
#   - restore into a full filesystem: exit 10, "no space".
. "$(dirname "$0")/lib.sh"

need_root
need_cmd python3

T=$(realpath "$T")
mnt=$T/mnt repo=$T/mnt/repo
mkdir "$mnt" "$T/small" "$T/big"
mount -t tmpfs -o size=8m,mode=0700 fv-nospace "$mnt" 2>"$T/mount.err" ||
	skip "cannot mount a tmpfs: $(cat "$T/mount.err")"
on_exit "umount -l '$mnt' || true"

echo "a small file" >"$T/small/file"
python3 - "$T/big" <<-'EOF'
	import random, sys
	r = random.Random(7)
	for i in range(3):
	    with open("%s/random-%d.bin" % (sys.argv[1], i), "wb") as f:
	        for _ in range(10):
	            f.write(r.randbytes(1 << 20))
EOF

nsnap() {
	snapshots_count "$repo"
}
used() {
	du -sb "$repo" | cut -f1
}

fv_init "$repo" -q
assert_exit 0 fv snapshot "$repo" "$T/small" -q
assert_eq "$(nsnap)" 1 "snapshots before the disk fills"
used0=$(used)

# --- the disk fills during a snapshot --------------------------------------------------------
assert_exit 10 fv snapshot "$repo" "$T/big"
assert_stderr 'no space'
assert_exit 0 fv check "$repo" # warnings for leftovers are allowed
assert_eq "$(nsnap)" 1 "snapshots after a snapshot that ran out of space"
used1=$(used)
[ "$used1" -lt $((used0 + (1 << 20))) ] ||
	fail "the aborted snapshot left $((used1 - used0)) bytes in the repository (before: $used0)"

# --- with room again ---------------------------------------------------------------------------
echo "another small file" >"$T/small/file2"
assert_exit 0 fv snapshot "$repo" "$T/small" -q
mount -o remount,size=64m "$mnt"
assert_exit 0 fv snapshot "$repo" "$T/big" -q
assert_eq "$(nsnap)" 3 "snapshots once there is room"
assert_exit 0 fv check "$repo" --read-data -q
assert_exit 0 fv restore "$repo" latest --target "$T/out" --verify -q
treecmp "$T/big" "$T/out$T/big" || fail "the 30 MiB snapshot does not restore equal"
assert_exit 0 fv restore "$repo" "$(fv list "$repo" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[1]["id"])')" \
	--target "$T/out" --verify -q
treecmp "$T/small" "$T/out$T/small" || fail "the small snapshot does not restore equal"

# --- restore into a full filesystem ------------------------------------------------------------
mkdir "$mnt/target"
mount -o remount,size=$((($(df -k --output=used "$mnt" | tail -n 1) + 8 * 1024) * 1024)) "$mnt" # ~8 MiB free
assert_exit 10 fv restore "$repo" latest --target "$mnt/target"
assert_stderr 'no space'
