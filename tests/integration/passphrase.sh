#!/usr/bin/env bash
# passphrase.sh: where the passphrase comes from, and exit status 4 when it is
# wrong or missing (fabvault(1), PASSPHRASE and EXIT STATUS):
#   - a wrong passphrase: exit 4, "wrong passphrase", for every command that
#     opens the repository (list, ls, restore, check, snapshot), nothing stored;
#   - none at all and no terminal (no FABVAULT_PASSPHRASE, stdin /dev/null, a
#     new session without a controlling terminal): exit 4 and a message naming
#     the ways to give one, not a hang; init then creates nothing;
#   - --passphrase-file (trailing newlines ignored) and
#     $CREDENTIALS_DIRECTORY/fabvault-passphrase work, in the documented order
#     of precedence: --passphrase-file, FABVAULT_PASSPHRASE, credential;
#   - on a terminal (script(1)) the passphrase is asked for.
. "$(dirname "$0")/lib.sh"

need_cmd setsid

T=$(realpath "$T")
repo=$T/repo src=$T/src
mkdir "$src"
echo data >"$src/file"
export FABVAULT_PASSPHRASE=right-one
fv_init "$repo" -q
fv snapshot "$repo" "$src" -q
nsnap() {
	find "$repo/snapshots" -type f | wc -l
}
assert_eq "$(nsnap)" 1 "snapshots after the first"

# --- wrong ------------------------------------------------------------------------
export FABVAULT_PASSPHRASE=wrong-one
for cmd in "list $repo" "ls $repo latest" "restore $repo latest --target $T/out" "check $repo" \
	"snapshot $repo $src"; do
	# shellcheck disable=SC2086 # the words of cmd, no names with spaces here
	assert_exit 4 fv $cmd
	assert_stderr 'wrong passphrase'
done
assert_eq "$(nsnap)" 1 "snapshots after a snapshot with the wrong passphrase"
[ ! -e "$T/out" ] || [ -z "$(ls -A "$T/out")" ] || fail "restore with the wrong passphrase wrote into $T/out"

# --- missing, without a terminal ------------------------------------------------------
unset FABVAULT_PASSPHRASE
# setsid: a new session has no controlling terminal, even when this test is run
# by hand from one; the timeout turns a prompt that waits forever into a failure
assert_exit 4 timeout 30 setsid -w "$FV_BIN" list "$repo" </dev/null
assert_stderr 'passphrase is needed'
assert_stderr 'FABVAULT_PASSPHRASE'
assert_exit 4 timeout 30 setsid -w "$FV_BIN" snapshot "$repo" "$src" </dev/null
assert_eq "$(nsnap)" 1 "snapshots after a snapshot without a passphrase"
assert_exit 4 timeout 30 setsid -w "$FV_BIN" init "$T/repo2" --kdf interactive </dev/null
assert_stderr 'passphrase'
[ ! -e "$T/repo2/config" ] || fail "init without a passphrase created a repository"

# --- --passphrase-file --------------------------------------------------------------
printf 'right-one\n\n' >"$T/pass"
chmod 600 "$T/pass"
assert_exit 0 setsid -w "$FV_BIN" list "$repo" --passphrase-file "$T/pass" </dev/null
printf 'right-one' >"$T/pass-nonl"
assert_exit 0 fv ls "$repo" latest --passphrase-file "$T/pass-nonl"
printf 'wrong-one\n' >"$T/pass-wrong"
assert_exit 4 fv list "$repo" --passphrase-file "$T/pass-wrong"
assert_stderr 'wrong passphrase'
assert_exit 4 fv list "$repo" --passphrase-file "$T/no-such-file"
assert_stderr 'no-such-file'
# the file comes first
FABVAULT_PASSPHRASE=wrong-one assert_exit 0 fv list "$repo" --passphrase-file "$T/pass"
# a new repository made with a passphrase file opens with the same passphrase
assert_exit 0 fv_init "$T/repo3" -q --passphrase-file "$T/pass"
FABVAULT_PASSPHRASE=right-one assert_exit 0 fv list "$T/repo3"

# --- systemd credential ----------------------------------------------------------
mkdir "$T/cred"
printf 'right-one' >"$T/cred/fabvault-passphrase"
export CREDENTIALS_DIRECTORY=$T/cred
assert_exit 0 setsid -w "$FV_BIN" list "$repo" </dev/null
assert_exit 0 fv snapshot "$repo" "$src" -q
assert_eq "$(nsnap)" 2 "snapshots after a snapshot with the credential"
# FABVAULT_PASSPHRASE comes before the credential
FABVAULT_PASSPHRASE=wrong-one assert_exit 4 fv list "$repo"
printf 'wrong-one' >"$T/cred/fabvault-passphrase"
FABVAULT_PASSPHRASE=right-one assert_exit 0 fv list "$repo"
assert_exit 4 fv list "$repo"
assert_stderr 'wrong passphrase'
rm "$T/cred/fabvault-passphrase" # a credential directory without ours: as if none
assert_exit 4 timeout 30 setsid -w "$FV_BIN" list "$repo" </dev/null
assert_stderr 'passphrase is needed'
unset CREDENTIALS_DIRECTORY

# --- on a terminal --------------------------------------------------------------------
# script(1) runs the command on a new pseudo-terminal and passes our stdin to
# it; the pause lets the prompt turn echo off first (that discards typeahead).
if command -v script >/dev/null; then
	{
		sleep 2
		printf 'right-one\n'
	} | timeout 30 script -qec "$(printf '%q ' "$FV_BIN" list "$repo")" /dev/null >"$T/tty.out" ||
		fail "list with the passphrase typed on a terminal failed: $(cat "$T/tty.out")"
	grep -q -i 'passphrase' "$T/tty.out" || fail "no passphrase prompt on the terminal: $(cat "$T/tty.out")"
	rc=0
	{
		sleep 2
		printf 'wrong-one\n'
	} | timeout 30 script -qec "$(printf '%q ' "$FV_BIN" list "$repo")" /dev/null >"$T/tty.out" || rc=$?
	assert_eq "$rc" 4 "exit status of list with a wrong passphrase typed on a terminal"
fi
