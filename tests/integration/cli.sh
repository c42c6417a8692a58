#!/usr/bin/env bash
# cli.sh: the command-line behaviour a user relies on (fabvault(1)):
#   - --help of fabvault and of every command exits 0, prints the usage and
#     the exit status table;
#   - snapshot ids: 'latest', a 4- and an 8-digit prefix and the full 64-digit
#     id select the same snapshot, and an older prefix selects the older one;
#   - tags show in list and list --json;
#   - --exclude '*.log' (a name pattern) and --exclude /abs/dir (a path)
#     leave out exactly what they match;
#   - ls prints one line per entry, names with newline / tab / backslash
#     escaped;
#   - restore --include restores only that subtree and its ancestors (with
#     their stored metadata), with or without the leading '/', repeatable;
#   - restore --dry-run writes nothing and lists what it would restore;
#   - restore never writes through a symlink it finds in the target (where the
#     snapshot has a directory, above the restored tree, or at a file's name);
#   - without a terminal, snapshot, restore and check write nothing on stderr
#     when all is well; on a terminal (script(1)) snapshot shows a progress
#     line with "files", and -q silences it.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
repo=$T/repo src=$T/src
mkdir -p "$src/docs/sub" "$src/logs" "$src/cache/big" "$src/names" "$src/data"
echo "read me" >"$src/docs/readme.txt"
echo "deep" >"$src/docs/sub/deep.txt"
echo "log line" >"$src/logs/app.log"
echo "keep" >"$src/logs/keep.txt"
echo "top log" >"$src/top.log"
echo "not a log" >"$src/top.log.txt"
head -c 100000 /dev/urandom >"$src/cache/big/blob.bin"
echo "cache note" >"$src/cache.txt"
echo nl >"$src/names/new"$'\n'"line"
echo tab >"$src/names/tab"$'\t'"here"
echo bs >"$src/names/back\\slash"
head -c $((3 << 20)) /dev/urandom >"$src/data/file.bin"
touch -d @1500000000.123456789 "$src/docs" "$src/docs/sub"
chmod 0750 "$src/docs"

# --- help ----------------------------------------------------------------------------------
fv --help >"$T/help" || fail "fabvault --help failed"
grep -q 'Exit status' "$T/help" || fail "fabvault --help does not describe the exit status"
for cmd in init snapshot list ls restore check break-lock; do
	fv "$cmd" --help >"$T/help" 2>"$T/stderr" || fail "fabvault $cmd --help failed"
	grep -q "^Usage: fabvault $cmd" "$T/help" || fail "fabvault $cmd --help: no usage line"
	grep -q 'Exit status' "$T/help" || fail "fabvault $cmd --help does not describe the exit status"
	fv "$cmd" -h | cmp -s - "$T/help" || fail "fabvault $cmd -h differs from --help"
	grep -q "^  $cmd " <(fv --help) || fail "fabvault --help does not list $cmd"
done

# --- quiet without a terminal -----------------------------------------------------------------
fv_init "$repo" -q
fv snapshot "$repo" "$src" --tag first >"$T/out" 2>"$T/stderr"
[ ! -s "$T/stderr" ] || fail "snapshot without a terminal wrote on stderr: $(cat "$T/stderr")"
grep -q 'saved' "$T/out" || fail "snapshot printed no summary: $(cat "$T/out")"
fv restore "$repo" latest --target "$T/r0" >"$T/out" 2>"$T/stderr"
[ ! -s "$T/stderr" ] || fail "restore without a terminal wrote on stderr: $(cat "$T/stderr")"
fv check "$repo" >"$T/out" 2>"$T/stderr"
[ ! -s "$T/stderr" ] || fail "check without a terminal wrote on stderr: $(cat "$T/stderr")"
treecmp "$src" "$T/r0$src" || fail "restore of the first snapshot differs from the source"

# --- snapshot ids and tags --------------------------------------------------------------------
id1=$(fv list "$repo" --json | sed -n 's/^ *"id":"\([0-9a-f]*\)".*/\1/p')
assert_eq "${#id1}" 64 "length of the id in list --json"
fv ls "$repo" latest >"$T/ls1"
for spec in "$id1" "${id1:0:8}" "${id1:0:4}"; do
	fv ls "$repo" "$spec" | cmp -s - "$T/ls1" || fail "ls $spec differs from ls latest"
done
echo "added later" >"$src/docs/later.txt"
fv snapshot "$repo" "$src" -q -t nightly -t "two words"
fv ls "$repo" "${id1:0:8}" | cmp -s - "$T/ls1" || fail "ls of the first snapshot's prefix shows the second"
fv ls "$repo" latest >"$T/ls2"
grep -q -x -F "$src/docs/later.txt" "$T/ls2" || fail "latest is not the newest snapshot"
fv list "$repo" >"$T/list"
grep -q "^${id1:0:8} .*first" "$T/list" || fail "list does not show the first snapshot's tag: $(cat "$T/list")"
grep -q "nightly,two words *\$" "$T/list" || fail "list does not show the tags: $(cat "$T/list")"
fv list "$repo" --json >"$T/list.json"
for tag in nightly "two words"; do
	grep -q "\"$tag\"" "$T/list.json" || fail "list --json lacks the tag $tag: $(cat "$T/list.json")"
done

# --- ls escapes names ----------------------------------------------------------------------------
n_entries=$(find "$src" -mindepth 1 | wc -l) # no newline in names but one, counted below
n_entries=$((n_entries - 1))                  # find printed "new\nline" on two lines
fv ls "$repo" latest "$src" >"$T/ls"
assert_eq "$(wc -l <"$T/ls")" "$n_entries" "lines of ls under $src (one per entry)"
grep -q -x -F "$src/names/new\\nline" "$T/ls" || fail "ls does not show new\\nline escaped"
grep -q -x -F "$src/names/tab\\there" "$T/ls" || fail "ls does not show tab\\there escaped"
grep -q -x -F "$src/names/back\\\\slash" "$T/ls" || fail "ls does not show back\\\\slash escaped"

# --- excludes -----------------------------------------------------------------------------------------
fv snapshot "$repo" "$src" -q --exclude '*.log' --exclude "$src/cache"
fv ls "$repo" latest >"$T/ls"
for p in logs/app.log top.log cache cache/big/blob.bin; do
	grep -q -x -F "$src/$p" "$T/ls" && fail "excluded $p is in the snapshot"
done
for p in logs logs/keep.txt top.log.txt cache.txt docs/readme.txt data/file.bin; do
	grep -q -x -F "$src/$p" "$T/ls" || fail "$p, not excluded, is missing from the snapshot"
done
fv snapshot "$repo" "$src" -q # and the last one has everything again

# --- restore --include --------------------------------------------------------------------------
fv restore "$repo" latest --target "$T/inc" --include "$src/docs/sub" -q
[ -f "$T/inc$src/docs/sub/deep.txt" ] || fail "--include $src/docs/sub did not restore docs/sub/deep.txt"
want=. p=.
IFS=/ read -r -a parts <<<"${src#/}/docs/sub/deep.txt"
for c in "${parts[@]}"; do # the path and each of its ancestors, nothing else
	p=$p/$c
	want="$want $p"
done
assert_eq "$(cd "$T/inc" && find . | LC_ALL=C sort | tr '\n' ' ')" "$want " "what --include $src/docs/sub restored"
# the ancestors have their stored mode and time
assert_eq "$(stat -c '%a %y' "$T/inc$src/docs")" "$(stat -c '%a %y' "$src/docs")" "mode and mtime of the restored ancestor docs"
# without the leading /, twice
fv restore "$repo" latest --target "$T/inc2" --include "${src#/}/logs" --include "$src/docs/readme.txt" -q
for p in logs/app.log docs/readme.txt; do
	[ -f "$T/inc2$src/$p" ] || fail "two --include did not restore $p"
done
for p in docs/sub data; do
	[ ! -e "$T/inc2$src/$p" ] || fail "two --include restored $p, not asked for"
done

# --- restore --dry-run -----------------------------------------------------------------------------
fv restore "$repo" latest --target "$T/dry" --dry-run >"$T/dry.out"
[ ! -e "$T/dry" ] || [ -z "$(ls -A "$T/dry")" ] || fail "restore --dry-run wrote into its target"
for p in docs/readme.txt docs/sub/deep.txt data/file.bin logs/app.log; do
	grep -q -E "(^|/)${src#/}/$p\$" "$T/dry.out" || fail "restore --dry-run does not list $p"
done
fv restore "$repo" latest --target "$T/dry" --dry-run --include "$src/logs" >"$T/dry.out"
grep -q "logs/keep.txt\$" "$T/dry.out" || fail "restore --dry-run --include does not list logs/keep.txt"
grep -q "docs" "$T/dry.out" && fail "restore --dry-run --include $src/logs lists docs"
[ ! -e "$T/dry" ] || [ -z "$(ls -A "$T/dry")" ] || fail "restore --dry-run --include wrote into its target"

# --- symlinks in the target are never followed --------------------------------------------------------
mkdir "$T/outside"
# where the snapshot has a directory
mkdir -p "$T/t1$src"
ln -s "$T/outside" "$T/t1$src/docs"
fv restore "$repo" latest --target "$T/t1" -q
[ -z "$(ls -A "$T/outside")" ] || fail "restore wrote through the symlink docs: $(ls -A "$T/outside")"
[ ! -L "$T/t1$src/docs" ] || fail "restore left the symlink docs in place of the directory"
[ -d "$T/t1$src/docs" ] || fail "restore did not create the directory docs"
treecmp "$src" "$T/t1$src" || fail "restore over a symlinked directory differs from the source"
# above the restored tree: the first component of the stored path
top=${src#/}
top=${top%%/*}
mkdir "$T/t2"
ln -s "$T/outside" "$T/t2/$top"
fv restore "$repo" latest --target "$T/t2" -q
[ -z "$(ls -A "$T/outside")" ] || fail "restore wrote through the symlink $top: $(ls -A "$T/outside")"
treecmp "$src" "$T/t2$src" || fail "restore below a symlinked ancestor differs from the source"
# at a file's name, pointing to a file outside
echo "must stay" >"$T/victim"
mkdir -p "$T/t3$src/docs"
ln -s "$T/victim" "$T/t3$src/docs/readme.txt"
fv restore "$repo" latest --target "$T/t3" -q
assert_eq "$(cat "$T/victim")" "must stay" "the file a symlink in the target pointed to"
[ ! -L "$T/t3$src/docs/readme.txt" ] || fail "restore left the symlink at docs/readme.txt"
cmp "$T/t3$src/docs/readme.txt" "$src/docs/readme.txt"

# --- progress on a terminal ------------------------------------------------------------------------------
if command -v script >/dev/null; then
	head -c $((2 << 20)) /dev/urandom >"$src/data/new.bin"
	timeout 60 script -qec "$(printf '%q ' "$FV_BIN" snapshot "$repo" "$src")" /dev/null >"$T/tty.out" </dev/null ||
		fail "snapshot on a terminal failed: $(cat "$T/tty.out")"
	# the summary says "files" too: look for a line (ended by \r) other than it
	n=$(tr '\r' '\n' <"$T/tty.out" | grep -a 'files' | grep -a -c -v 'saved' || true)
	[ "$n" -gt 0 ] ||
		fail "no progress line with 'files' on a terminal: $(cat -v "$T/tty.out")"
	grep -a -q 'saved' "$T/tty.out" || fail "no summary on a terminal: $(cat -v "$T/tty.out")"
	timeout 60 script -qec "$(printf '%q ' "$FV_BIN" snapshot "$repo" "$src" -q)" /dev/null >"$T/tty.out" </dev/null ||
		fail "snapshot -q on a terminal failed: $(cat "$T/tty.out")"
	[ -z "$(tr -d '\r\n' <"$T/tty.out")" ] || fail "snapshot -q on a terminal printed: $(cat -v "$T/tty.out")"
fi
assert_exit 0 fv check "$repo" -q
