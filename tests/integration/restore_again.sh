#!/usr/bin/env bash
# restore_again.sh: restoring into a target that already holds an earlier
# restore replaces what is there ("Existing files of the same name are
# replaced", fabvault(1)) for an ordinary user too, even where the earlier
# restore left read-only directories (0555, 0500) and read-only files (0444,
# 0400): the result equals the newer snapshot, exit 0. Run as uid 65534 via
# setpriv when the test runs as root (root ignores permissions, which would
# hide the problem), as the current user otherwise.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
chmod 755 "$T"
w=$T/w
mkdir "$w"
as_user=()
if [ "$(id -u)" = 0 ]; then
	need_cmd setpriv
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	"${as_user[@]}" test -x "$T" || skip "uid 65534 cannot reach $T (set TMPDIR to a world-searchable directory)"
	chown 65534:65534 "$w"
fi
src=$w/src repo=$w/repo out=$w/out
run() { # run ARGS...: fabvault as the test user
	"${as_user[@]}" "$FV_BIN" "$@"
}
own() { # the test user owns everything under $w
	[ ${#as_user[@]} = 0 ] || chown -R 65534:65534 "$w"
}

mkdir -p "$src/ro-dir" "$src/rx-dir/sub" "$src/rw"
echo "one" >"$src/ro-dir/file"
echo "two" >"$src/rx-dir/sub/file"
echo "three" >"$src/rx-dir/ro-file"
echo "four" >"$src/rw/ro-file"
chmod 0444 "$src/rw/ro-file"
chmod 0400 "$src/rx-dir/ro-file"
chmod 0555 "$src/ro-dir"
chmod 0500 "$src/rx-dir"
own
run init "$repo" --kdf interactive -q
run snapshot "$repo" "$src" -q
assert_exit 0 run restore "$repo" latest --target "$out" -q
treecmp "$src" "$out$src" || fail "the first restore differs from the source"

# the same snapshot again over it
assert_exit 0 run restore "$repo" latest --target "$out" --verify -q
treecmp "$src" "$out$src" || fail "the same snapshot restored again differs from the source"

# a newer snapshot, with changes inside the read-only directories
chmod u+w "$src/ro-dir" "$src/rx-dir" "$src/rw/ro-file"
echo "one, changed" >"$src/ro-dir/file"
echo "new" >"$src/ro-dir/new"
echo "four, changed" >"$src/rw/ro-file"
chmod 0444 "$src/rw/ro-file"
chmod 0555 "$src/ro-dir"
chmod 0500 "$src/rx-dir"
own
run snapshot "$repo" "$src" -q
assert_exit 0 run restore "$repo" latest --target "$out" --verify -q
treecmp "$src" "$out$src" || fail "the newer snapshot restored over the older one differs from the source"
