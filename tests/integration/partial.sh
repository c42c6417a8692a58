#!/usr/bin/env bash
# partial.sh: entries the backup cannot read are reported and skipped, and the
# snapshot is saved as partial with exit status 3 (fabvault(1), snapshot and
# EXIT STATUS). Root only: the repository and the source belong to uid 65534,
# and the snapshot runs as that user (setpriv), so that mode 0000 really
# keeps it out. The source holds a 0000 file, a 0200 file and a 0000
# directory next to readable files. Asserted:
#   - exit 3; each unreadable entry is named in a warning; "partial" is said;
#   - the snapshot exists and list --json marks it partial (an earlier
#     complete snapshot is not), snapshot --json says partial and errors 3;
#   - the readable files are in it and restore equal, with --verify;
#   - check passes; once the files are readable again the next snapshot is
#     complete (exit 0) and holds them.
. "$(dirname "$0")/lib.sh"

need_root
need_cmd setpriv
need_cmd python3

T=$(realpath "$T")
chmod 755 "$T"
repo=$T/repo src=$T/src
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
"${nobody[@]}" test -x "$T" || skip "uid 65534 cannot reach $T (set TMPDIR to a world-searchable directory)"

mkdir -p "$src/sub" "$src/locked"
echo "readable a" >"$src/a"
echo "readable b" >"$src/sub/b"
echo "secret" >"$src/sub/secret"
echo "write only" >"$src/write-only"
echo "inside" >"$src/locked/inside"
chown -R 65534:65534 "$src"
mkdir "$repo"
chown 65534:65534 "$repo"
"${nobody[@]}" "$FV_BIN" init "$repo" --kdf interactive -q

# a complete snapshot first
assert_exit 0 "${nobody[@]}" "$FV_BIN" snapshot "$repo" "$src" -q

chmod 0000 "$src/sub/secret" "$src/locked"
chmod 0200 "$src/write-only"
assert_exit 3 "${nobody[@]}" "$FV_BIN" snapshot "$repo" "$src" --json >"$T/snap.json"
for p in sub/secret write-only locked; do
	assert_stderr "$src/$p"
done
assert_stderr 'partial'
assert_stderr 'permission denied'
python3 - "$T/snap.json" <<-'EOF' || fail "snapshot --json: $(cat "$T/snap.json")"
	import json, sys
	s = json.load(open(sys.argv[1]))
	assert s["partial"] is True, s
	assert s["errors"] == 3, s
EOF
id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$T/snap.json")

fv list "$repo" --json >"$T/list.json"
python3 - "$T/list.json" "$id" <<-'EOF' || fail "list --json: $(cat "$T/list.json")"
	import json, sys
	snaps = json.load(open(sys.argv[1]))
	assert len(snaps) == 2, snaps
	assert snaps[0]["partial"] is False, snaps[0]
	assert snaps[1]["id"] == sys.argv[2], snaps[1]
	assert snaps[1]["partial"] is True, snaps[1]
EOF

fv ls "$repo" "$id" >"$T/ls.txt"
for p in a sub sub/b; do
	grep -q -x -F "$src/$p" "$T/ls.txt" || fail "$src/$p is not in the partial snapshot"
done
for p in sub/secret write-only locked/inside; do
	grep -q -x -F "$src/$p" "$T/ls.txt" && fail "unreadable $src/$p is listed in the partial snapshot"
done

mkdir "$T/out"
chown 65534:65534 "$T/out"
assert_exit 0 "${nobody[@]}" "$FV_BIN" restore "$repo" "$id" --target "$T/out" --verify -q
for p in a sub/b; do
	cmp "$T/out$src/$p" "$src/$p" || fail "$p does not restore equal"
done
[ ! -e "$T/out$src/sub/secret" ] || fail "an unreadable file was restored"
assert_exit 0 fv check "$repo" -q

# readable again: complete
chmod 0644 "$src/sub/secret" "$src/write-only"
chmod 0755 "$src/locked"
assert_exit 0 "${nobody[@]}" "$FV_BIN" snapshot "$repo" "$src" -q
fv ls "$repo" latest >"$T/ls.txt"
grep -q -x -F "$src/locked/inside" "$T/ls.txt" || fail "the next complete snapshot lacks locked/inside"
fv list "$repo" --json | python3 -c 'import json, sys; assert json.load(sys.stdin)[-1]["partial"] is False' ||
	fail "the complete snapshot after the partial one is marked partial"
