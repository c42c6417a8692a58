#!/usr/bin/env bash
# notfound.sh: exit status 9 for what does not exist (fabvault(1), EXIT STATUS),
# with a message that names it, and nothing stored or written:
#   - snapshot of a missing source path (alone, or next to a good one): no new
#     snapshot, list unchanged;
#   - an unknown snapshot id (prefix or full 64 digits), for ls and restore;
#   - 'latest' in a repository without snapshots;
#   - ls of a path that is not in the snapshot;
#   - restore --include of a path that is not in the snapshot: nothing restored.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
repo=$T/repo src=$T/src
mkdir -p "$src/dir"
echo one >"$src/dir/one"
echo two >"$src/two"
fv_init "$repo" -q

assert_exit 9 fv ls "$repo" latest
assert_stderr 'no snapshots'
assert_exit 9 fv restore "$repo" latest --target "$T/out0"

fv snapshot "$repo" "$src" -q
fv list "$repo" --json >"$T/list.before"
nsnap() {
	find "$repo/snapshots" -type f | wc -l
}
assert_eq "$(nsnap)" 1 "snapshot files"

# --- missing source -------------------------------------------------------------------
assert_exit 9 fv snapshot "$repo" "$T/no-such-dir"
assert_stderr "$T/no-such-dir"
assert_exit 9 fv snapshot "$repo" "$src" "$T/no-such-dir" --json
assert_stderr "$T/no-such-dir"
assert_exit 9 fv snapshot "$repo" "$src/dir/no-such-file"
assert_eq "$(nsnap)" 1 "snapshot files after snapshots of missing paths"
fv list "$repo" --json >"$T/list.after"
cmp -s "$T/list.before" "$T/list.after" || fail "list changed after snapshots of missing paths"
[ -z "$(ls -A "$repo/tmp")" ] || fail "snapshots of missing paths left files in $repo/tmp"

# --- unknown snapshot ---------------------------------------------------------------------
id=$(fv list "$repo" --json | sed -n 's/^ *"id":"\([0-9a-f]*\)".*/\1/p')
assert_eq "${#id}" 64 "length of the id in list --json"
# an id that differs from the real one in its first digit
other=$(printf '%x' $(((16#${id:0:1} + 1) % 16)))${id:1}
for spec in "${other:0:8}" "${other:0:4}" "$other"; do
	assert_exit 9 fv ls "$repo" "$spec"
	assert_stderr "no snapshot $spec"
	assert_exit 9 fv restore "$repo" "$spec" --target "$T/out1"
done
[ ! -e "$T/out1" ] || [ -z "$(ls -A "$T/out1")" ] || fail "restore of an unknown snapshot wrote into its target"

# --- paths not in the snapshot ----------------------------------------------------------------
assert_exit 0 fv ls "$repo" latest "$src/dir"
assert_exit 9 fv ls "$repo" latest "$src/no-such-name"
assert_stderr 'no-such-name'
assert_exit 9 fv ls "$repo" latest "$src/dir/one/below-a-file"
assert_exit 9 fv ls "$repo" latest /no-such-top
assert_stderr 'no-such-top'

assert_exit 9 fv restore "$repo" latest --target "$T/out2" --include /no-such-top
assert_stderr 'no-such-top'
assert_exit 9 fv restore "$repo" latest --target "$T/out3" --include "$src/no-such-name"
assert_stderr 'no-such-name'
# an include that matches nothing is found before anything is written, even
# when its parent directories or other includes exist
for out in out2 out3; do
	[ ! -e "$T/$out" ] || [ -z "$(ls -A "$T/$out")" ] ||
		fail "restore with an --include that matches nothing wrote: $(cd "$T/$out" && find . | head)"
done
assert_exit 9 fv restore "$repo" latest --target "$T/out4" --include "$src/two" --include "$src/nope"
[ ! -e "$T/out4" ] || [ -z "$(ls -A "$T/out4")" ] ||
	fail "restore with one --include that matches nothing wrote: $(cd "$T/out4" && find . | head)"
# and the good include alone works
assert_exit 0 fv restore "$repo" latest --target "$T/out5" --include "$src/two" -q
cmp "$T/out5$src/two" "$src/two"
