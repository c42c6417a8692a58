#!/usr/bin/env bash
# roundtrip.sh: what is backed up comes back exactly. A tree with every kind
# of entry (tests/tools/gentree.sh: empty and 1-byte files, a 64 MiB sparse
# file, unicode / newline / space / invalid UTF-8 names, 30-deep directories,
# mode 0000 entries and foreign owners as root, dangling and absolute
# symlinks, a hardlink group, a FIFO, xattrs) is snapshotted and restored, and
#   - diff -r --no-dereference and treecmp (type, mode, owner, size, mtime in
#     ns, link targets, hardlink groups, xattrs) find the copy equal; sockets
#     are stored as entries but not recreated (like tar), so the one allowed
#     difference is the missing socket;
#   - the restored sparse files are still sparse;
#   - restore --verify and check --read-data exit 0;
#   - restoring again over the first restore gives the same result.
# Once per repository variant: default (xchacha20-poly1305, zstd),
# --encryption none (no passphrase needed at all), --compression none, and
# aes256gcm where the CPU has AES instructions.
. "$(dirname "$0")/lib.sh"

need_cmd python3 # gentree.sh
need_cmd diff

T=$(realpath "$T") # a snapshot stores resolved absolute paths
src=$T/src
gentree "$src"
[ -p "$src/special/fifo" ] || fail "gentree made no FIFO"

# expect_equal A B WHAT: treecmp and diff find no difference between trees A
# and B other than A's socket (special/socket), which restore does not create.
expect_equal() {
	local a=$1 b=$2 what=$3 out rc
	rc=0
	out=$(treecmp "$a" "$b" 2>&1) || rc=$?
	[ "$rc" -le 1 ] || fail "$what: treecmp failed (exit $rc): $out"
	out=$(printf '%s\n' "$out" | grep -v -x -F 'only in A: special/socket' || true)
	[ -z "$out" ] || fail "$what: treecmp found differences:"$'\n'"$out"
	[ "$rc" = 0 ] || [ -S "$a/special/socket" ] || fail "$what: treecmp exit $rc with no difference shown"

	rc=0
	out=$(LC_ALL=C diff -r --no-dereference "$a" "$b" 2>&1) || rc=$?
	[ "$rc" -le 1 ] || fail "$what: diff -r failed (exit $rc):"$'\n'"$out"
	# diff does not compare special files; it names each one: not a difference
	out=$(printf '%s\n' "$out" |
		grep -v -x -E "File .* is a (fifo|character special file|block special file) while file .* is a (fifo|character special file|block special file)" |
		grep -v -x -F "Only in $a/special: socket" || true)
	[ -z "$out" ] || fail "$what: diff -r found differences:"$'\n'"$out"
}

# blocks FILE: bytes allocated to FILE
blocks() {
	local b u
	read -r b u < <(stat -c '%b %B' -- "$1")
	echo $((b * u))
}

# roundtrip NAME INIT_ARGS...: a repository made with INIT_ARGS, one snapshot
# of $src, restore, compare, verify, check; then restore over it again.
roundtrip() {
	local name=$1 repo=$T/repo-$1 out=$T/out-$1
	shift
	echo "--- $name: init $*"
	fv_init "$repo" -q "$@"
	fv snapshot "$repo" "$src" -q
	fv ls "$repo" latest --json >"$T/ls.json"
	grep -q '"type":"socket"' "$T/ls.json" || fail "$name: the socket is not in the snapshot"

	assert_exit 0 fv restore "$repo" latest --target "$out" --verify -q
	local copy=$out${src}
	[ -d "$copy" ] || fail "$name: restore did not create $copy"
	expect_equal "$src" "$copy" "$name"

	# holes stay holes: the 64 MiB image holds 3 x 256 KiB of data
	local f size alloc
	for f in sparse/big.img sparse/all-hole.img sparse/tail-hole.img; do
		size=$(stat -c %s "$copy/$f")
		alloc=$(blocks "$copy/$f")
		[ $((alloc * 8)) -lt "$size" ] ||
			fail "$name: $f is not sparse after restore: $alloc bytes allocated for $size"
		[ "$alloc" -le $(($(blocks "$src/$f") + (1 << 20))) ] ||
			fail "$name: $f: $alloc bytes allocated, the source has $(blocks "$src/$f")"
	done

	assert_exit 0 fv check "$repo" --read-data -q

	# a second restore into the same target replaces every entry (files,
	# hardlinks, symlinks, the FIFO, modes 0000) and ends the same
	assert_exit 0 fv restore "$repo" latest --target "$out" --verify -q
	expect_equal "$src" "$copy" "$name, restored twice"
	rm -rf "$out" 2>/dev/null || { chmod -R u+rwx "$out" && rm -rf "$out"; }
}

roundtrip default
(
	unset FABVAULT_PASSPHRASE # an unencrypted repository needs none
	roundtrip noenc --encryption none
)
roundtrip nocomp --compression none
if grep -qw aes /proc/cpuinfo 2>/dev/null; then
	roundtrip aes --encryption aes256gcm
fi
echo "all variants restored equal"
