#!/usr/bin/env bash
# usage.sh: usage errors exit 2 with a message on stderr and do nothing
# (fabvault(1), EXIT STATUS: "unknown command or option, missing argument,
# invalid snapshot id"): no command, an unknown command, unknown options,
# missing arguments, extra arguments, restore without --target, snapshot ids
# that are neither 'latest' nor 4..64 lower-case hex digits, bad option
# values of init. The repository is not changed by any of them.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
repo=$T/repo src=$T/src
mkdir "$src"
echo data >"$src/file"
fv_init "$repo" -q
fv snapshot "$repo" "$src" -q
state() {
	find "$repo" -printf '%p %s %T@\n' | sort
}
before=$(state)

# usage2 PHRASE ARGS...: fv ARGS exits 2 and stderr matches PHRASE
usage2() {
	local phrase=$1
	shift
	assert_exit 2 fv "$@"
	assert_stderr "$phrase"
}

usage2 'usage'
usage2 "unknown command 'frobnicate'" frobnicate
usage2 'unknown command' frobnicate "$repo"
usage2 "unrecognized option '--bogus'" list "$repo" --bogus
usage2 'unrecognized option|invalid option' snapshot "$repo" "$src" --bogus
usage2 'invalid option' list "$repo" -Z
usage2 'expected' list
usage2 'expected' list "$repo" extra
usage2 'expected' check "$repo" extra
usage2 'expected' ls "$repo"
usage2 'expected' snapshot "$repo"
usage2 'expected' init
usage2 'requires an argument|expected|missing' snapshot "$repo" "$src" --tag
usage2 'target' restore "$repo" latest
usage2 'target' restore "$repo" latest --dry-run
# snapshot ids: not hex, too short, upper case, too long
for spec in zz 12 abc xyz12345 ABCDEF12 "$(printf 'a%.0s' $(seq 1 65))" ''; do
	usage2 'not a snapshot id' ls "$repo" "$spec"
	usage2 'not a snapshot id' restore "$repo" "$spec" --target "$T/out"
done
[ ! -e "$T/out" ] || fail "restore with a usage error created its target"
# init: bad values, and nothing created
usage2 'encryption|unknown|invalid' init "$T/new1" --encryption rot13
usage2 'compression|zstd|invalid' init "$T/new2" --compression zstd,99
usage2 'kdf|invalid' init "$T/new3" --kdf cheap
usage2 'chunk|invalid' init "$T/new4" --chunk-sizes 512,1000,8192
for d in new1 new2 new3 new4; do
	[ ! -e "$T/$d/config" ] || fail "init with a bad option created a repository in $T/$d"
done

assert_eq "$(state)" "$before" "the repository after the usage errors"
fv --version >/dev/null || fail "--version failed"
