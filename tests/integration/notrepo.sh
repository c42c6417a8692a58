#!/usr/bin/env bash
# notrepo.sh: a path that is not a repository gives exit status 5, a newer
# format version gives 6 with "upgrade", and init refuses to overwrite
# (fabvault(1), EXIT STATUS; docs/repository-format.md, "config"):
#   - 5 for a missing directory, a directory of random files (one named config),
#     a regular file, an empty directory; for every command; the message says
#     "not a fabvault repository"; nothing is created in their place;
#   - 6 when the u32 format version at byte 8 of config is 2, for every
#     command, with "upgrade fabvault" in the message; nothing is written;
#   - init on a non-empty directory, an existing repository or a regular file
#     fails and changes nothing.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
src=$T/src
mkdir "$src"
echo data >"$src/file"

mkdir "$T/random"
for f in config keys data; do
	head -c 300 /dev/urandom >"$T/random/$f"
done
mkdir "$T/empty"
echo "just a file" >"$T/plainfile"

# tree_state DIR: every path with its size and mtime, to see that nothing changed
tree_state() {
	{ find "$1" -printf '%p %s %T@ %m\n' 2>/dev/null || true; } | sort
}

for r in "$T/missing" "$T/random" "$T/plainfile" "$T/empty"; do
	before=$(tree_state "$r")
	for cmd in list "ls @ latest" "restore @ latest --target $T/out" check "snapshot @ $src" break-lock; do
		# shellcheck disable=SC2086 # split the words of cmd (no names with spaces)
		set -- $cmd
		[ $# = 1 ] && set -- "$1" @
		args=("${@/#@/$r}") # REPO in place of @
		assert_exit 5 fv "${args[@]}"
		assert_stderr 'not a fabvault repository'
	done
	assert_eq "$(tree_state "$r")" "$before" "$r after the commands"
done
[ ! -e "$T/missing" ] || fail "a command created $T/missing"
[ ! -e "$T/out" ] || fail "restore from a non-repository created its target"

# --- a repository of a newer format version ---------------------------------------------
repo=$T/repo
fv_init "$repo" -q
fv snapshot "$repo" "$src" -q
[ "$(head -c 8 "$repo/config")" = FABVAULT ] || fail "config does not start with FABVAULT"
assert_eq "$(od -An -tu4 -j8 -N4 "$repo/config" | tr -d ' ')" 1 "config version"
printf '\002' | dd of="$repo/config" bs=1 seek=8 conv=notrunc status=none
before=$(tree_state "$repo")
for cmd in list "ls @ latest" "restore @ latest --target $T/out" check "check @ --read-data" "snapshot @ $src"; do
	# shellcheck disable=SC2086
	set -- $cmd
	[ $# = 1 ] && set -- "$1" @
	args=("${@/#@/$repo}")
	assert_exit 6 fv "${args[@]}"
	assert_stderr 'version'
	assert_stderr 'upgrade'
done
assert_eq "$(tree_state "$repo")" "$before" "the version-2 repository after the commands"
[ ! -e "$T/out" ] || fail "restore from a newer repository created its target"
printf '\001' | dd of="$repo/config" bs=1 seek=8 conv=notrunc status=none
assert_exit 0 fv check "$repo" -q

# --- init refuses what it would overwrite ----------------------------------------------------
mkdir "$T/nonempty"
echo "keep me" >"$T/nonempty/notes.txt"
for r in "$T/nonempty" "$repo" "$T/plainfile"; do
	before=$(tree_state "$r")
	rc=0
	fv init "$r" --kdf interactive -q 2>"$T/stderr" || rc=$?
	[ "$rc" != 0 ] || fail "init $r succeeded"
	[ -s "$T/stderr" ] || fail "init $r failed (exit $rc) without a message"
	assert_eq "$(tree_state "$r")" "$before" "$r after init"
done
assert_exit 1 fv init "$T/nonempty" --kdf interactive
assert_stderr 'not empty'
assert_exit 1 fv init "$repo" --kdf interactive
assert_stderr 'already a fabvault repository'
# a different passphrase must not have replaced the key
FABVAULT_PASSPHRASE=other assert_exit 1 fv init "$repo" --kdf interactive
assert_exit 0 fv list "$repo"
