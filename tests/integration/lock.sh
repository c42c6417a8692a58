#!/usr/bin/env bash
# lock.sh: the writer lock REPO/lock ("host pid starttime\n",
# docs/repository-format.md, "Lock"; fabvault(1), break-lock):
#   - held by another host: snapshot exits 7 naming the host, the pid and
#     break-lock, stores nothing and leaves the lock; readers (list, ls,
#     restore, check) still work; break-lock removes it, and the next snapshot
#     succeeds and releases its own lock;
#   - held by a live process of this host (right pid and start time): exit 7;
#   - left by a dead process of this host, or by a pid now reused by another
#     process (start time differs): taken over with a warning, exit 0;
#   - an unreadable lock file: exit 7 and a hint to break-lock;
#   - break-lock without a lock: exit 0.
. "$(dirname "$0")/lib.sh"

T=$(realpath "$T")
repo=$T/repo src=$T/src
mkdir "$src"
echo data >"$src/file"
fv_init "$repo" -q
fv snapshot "$repo" "$src" -q
host=$(uname -n) # gethostname(2)
nsnap() {
	find "$repo/snapshots" -type f | wc -l
}
no_lock_left() {
	[ ! -e "$repo/lock" ] || fail "$1: $repo/lock is left: $(cat "$repo/lock")"
}
no_lock_left "after a snapshot"

# --- another host ------------------------------------------------------------------------
printf 'otherhost 12345 1\n' >"$repo/lock"
assert_exit 7 fv snapshot "$repo" "$src"
assert_stderr 'otherhost'
assert_stderr '12345'
assert_stderr "break-lock"
assert_eq "$(nsnap)" 1 "snapshots after a snapshot of a locked repository"
assert_eq "$(cat "$repo/lock")" "otherhost 12345 1" "the other host's lock"
# readers take no lock
assert_exit 0 fv list "$repo" >/dev/null
assert_exit 0 fv ls "$repo" latest >/dev/null
assert_exit 0 fv restore "$repo" latest --target "$T/out" -q
assert_exit 0 fv check "$repo" -q
# break-lock, then a snapshot works
fv break-lock "$repo" >"$T/out.txt"
grep -q 'otherhost' "$T/out.txt" || fail "break-lock does not say whose lock it removed: $(cat "$T/out.txt")"
no_lock_left "after break-lock"
assert_exit 0 fv snapshot "$repo" "$src" -q
assert_eq "$(nsnap)" 2 "snapshots after break-lock"
no_lock_left "after the snapshot"
assert_exit 0 fv break-lock "$repo" -q # nothing to break: fine

# --- a live process of this host ---------------------------------------------------------
sleep 300 &
live=$!
on_exit "kill $live 2>/dev/null || true"
start=$(awk '{ print $22 }' "/proc/$live/stat")
printf '%s %d %s\n' "$host" "$live" "$start" >"$repo/lock"
assert_exit 7 fv snapshot "$repo" "$src"
assert_stderr "$live"
assert_stderr "$host"
assert_eq "$(nsnap)" 2 "snapshots while a live process holds the lock"
[ -e "$repo/lock" ] || fail "the lock of a live process was removed"

# --- that pid, reused: its start time differs --------------------------------------------
printf '%s %d %s\n' "$host" "$live" $((start + 1)) >"$repo/lock"
assert_exit 0 fv snapshot "$repo" "$src" -q
assert_stderr 'stale lock'
assert_eq "$(nsnap)" 3 "snapshots after taking over a lock of a reused pid"
no_lock_left "after taking over a lock of a reused pid"
kill "$live"
wait "$live" 2>/dev/null || true

# --- a dead process of this host ---------------------------------------------------------
sh -c 'exit 0' &
dead=$!
wait "$dead"
kill -0 "$dead" 2>/dev/null && fail "pid $dead is still running"
printf '%s %d %s\n' "$host" "$dead" 12345 >"$repo/lock"
assert_exit 0 fv snapshot "$repo" "$src" -q
assert_stderr 'stale lock'
assert_stderr "$dead"
assert_eq "$(nsnap)" 4 "snapshots after taking over a stale lock"
no_lock_left "after taking over a stale lock"

# --- garbage in the lock file --------------------------------------------------------------
printf 'garbage' >"$repo/lock"
assert_exit 7 fv snapshot "$repo" "$src"
assert_stderr 'break-lock'
assert_eq "$(nsnap)" 4 "snapshots with an unreadable lock"
assert_exit 0 fv break-lock "$repo" -q
no_lock_left "after break-lock of an unreadable lock"
assert_exit 0 fv snapshot "$repo" "$src" -q
assert_exit 0 fv check "$repo" -q
