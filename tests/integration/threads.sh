#!/usr/bin/env bash
# threads.sh: `fabvault snapshot --threads N` (fabvault(1)): the number of
# worker threads changes the speed, never the result.
#   - one source (tests/tools/gentree.sh plus files cut into many chunks,
#     duplicated within the tree) snapshotted with --threads 1 and
#     --threads 4 into two repositories restores byte-identical with
#     identical metadata (treecmp, diff -r) to the source and to each other;
#   - into one repository, --threads 4 after --threads 1 adds no data (same
#     chunks, same ids; only the listings of the source's ancestors, whose
#     mtimes move as this test works in their directories, may be new), and
#     ls --long --json lists the source the same in both snapshots;
#   - within one run, copies of a file that are in flight on different
#     workers at once are stored once: new_bytes is the size of one copy
#     (plus the directory listings);
#   - source paths that are files, given out of order, restore equal (their
#     listing is sorted while their chunks may be in flight);
#   - a file that keeps changing while it is read is read 3 times, then
#     stored flagged inconsistent with a warning; check and restore accept it;
#   - a snapshot with 16 threads killed with SIGKILL at random moments
#     (FV_THREADS_SEED) leaves a repository that check --read-data accepts,
#     and the next run completes and restores equal;
#   - bad --threads values (0, -1, abc, 65, huge, empty) exit 2 (usage) with a
#     message naming --threads, and change nothing.
. "$(dirname "$0")/lib.sh"

need_cmd python3
need_cmd diff

T=$(realpath "$T") # a snapshot stores resolved absolute paths
src=$T/src
gentree "$src"
# chunks of 64..1024 KiB (repositories below): these files are many chunks
python3 - "$src/big" <<-'EOF2'
	import os, random, sys
	r = random.Random(11)
	os.makedirs(sys.argv[1])
	rnd = r.randbytes(6 << 20)
	txt = b"".join(b"%08x vector %d payload %s\n" % (r.getrandbits(32), i, b"xyz" * (i % 17)) for i in range(120000))
	for name, data in (("random.bin", rnd), ("text.log", txt)):
	    for copy in range(3):
	        with open(os.path.join(sys.argv[1], "%s.%d" % (name, copy)), "wb") as f:
	            f.write(data)
EOF2

# expect_equal A B WHAT: as in roundtrip.sh: no difference but A's socket,
# which restore does not create.
expect_equal() {
	local a=$1 b=$2 what=$3 out rc
	rc=0
	out=$(treecmp "$a" "$b" 2>&1) || rc=$?
	[ "$rc" -le 1 ] || fail "$what: treecmp failed (exit $rc): $out"
	out=$(printf '%s\n' "$out" | grep -v -x -F 'only in A: special/socket' || true)
	[ -z "$out" ] || fail "$what: treecmp found differences:"$'\n'"$out"
	rc=0
	out=$(LC_ALL=C diff -r --no-dereference "$a" "$b" 2>&1) || rc=$?
	[ "$rc" -le 1 ] || fail "$what: diff -r failed (exit $rc):"$'\n'"$out"
	out=$(printf '%s\n' "$out" |
		grep -v -x -E "File .* is a (fifo|character special file|block special file) while file .* is a (fifo|character special file|block special file)" |
		grep -v -x -F "Only in $a/special: socket" || true)
	[ -z "$out" ] || fail "$what: diff -r found differences:"$'\n'"$out"
}

# snap REPO THREADS [ARGS...]: a snapshot of $src read in full; its JSON in $T/snap.json
snap() {
	local repo=$1 n=$2
	shift 2
	fv snapshot "$repo" "$src" --threads "$n" --no-cache --json "$@" >"$T/snap.json"
}
field() {
	json_field "$1" <"$T/snap.json"
}

# no_new_data WHAT: the last snapshot stored at most the ancestors' listings
no_new_data() {
	local blobs bytes
	blobs=$(field new_blobs) bytes=$(field new_bytes)
	[ "$blobs" -le 3 ] && [ "$bytes" -lt 65536 ] ||
		fail "$1: $blobs new blobs, $bytes new bytes; expected only the 3 ancestor listings at most"
}

# --- the same source with 1 and with 4 threads ----------------------------------
for n in 1 4; do
	fv_init "$T/repo$n" --chunk-sizes 64,128,1024 -q
	snap "$T/repo$n" "$n"
	echo "--threads $n: $(field files) files, $(field bytes) bytes, $(field new_blobs) new blobs, $(field new_bytes) new bytes"
	assert_exit 0 fv check "$T/repo$n" --read-data -q
	assert_exit 0 fv restore "$T/repo$n" latest --target "$T/out$n" --verify -q
	expect_equal "$src" "$T/out$n$src" "--threads $n restored against the source"
done
expect_equal "$T/out1$src" "$T/out4$src" "restores of --threads 1 and --threads 4"

# --- dedup across runs with different thread counts -----------------------------
snap "$T/repo1" 4
no_new_data "--threads 4 after --threads 1"
snap "$T/repo4" 1
no_new_data "--threads 1 after --threads 4"
snap "$T/repo1" 3
no_new_data "a third snapshot, --threads 3"
ls_of() {
	fv ls "$T/repo1" "$1" "$src" --long --json
}
ids=$(fv list "$T/repo1" --json | python3 -c 'import json, sys; print(*(s["id"] for s in json.load(sys.stdin)))')
read -r id1 id4 _ <<<"$ids"
[ "$(ls_of "$id1")" = "$(ls_of "$id4")" ] || fail "ls --long differs between the --threads 1 and --threads 4 snapshots"
assert_exit 0 fv check "$T/repo1" --read-data -q

# --- copies in flight at once are stored once -----------------------------------
# the three copies of each file in big/ are read one after the other, so
# their chunks are on different workers at the same time
one_copy=$(($(stat -c %s "$src/big/random.bin.0") + $(stat -c %s "$src/big/text.log.0")))
fv_init "$T/repo-dup" --chunk-sizes 64,128,1024 -q
fv snapshot "$T/repo-dup" "$src/big" --threads 8 --no-cache --json >"$T/snap.json"
assert_eq "$(field bytes)" $((3 * one_copy)) "bytes of big/"
# new bytes: one copy of each file's chunks, and the directory listings
nb=$(field new_bytes)
[ "$nb" -ge "$one_copy" ] && [ "$nb" -lt $((one_copy + 65536)) ] ||
	fail "big/ (three copies of each file, $one_copy bytes for one): $nb new bytes"
assert_exit 0 fv restore "$T/repo-dup" latest --target "$T/out-dup" --verify -q
diff -r "$src/big" "$T/out-dup$src/big" || fail "big/ does not restore equal"

# --- source paths that are files, named out of order ---------------------------
# their directory's listing is sorted while their last chunks may still be
# on the workers: each chunk id must land in its own file's entry
fv_init "$T/repo-files" --chunk-sizes 64,128,1024 -q
files=(text.log.2 random.bin.1 random.bin.0)
fv snapshot "$T/repo-files" "${files[@]/#/$src/big/}" --threads 4 --no-cache -q
assert_exit 0 fv check "$T/repo-files" --read-data -q
assert_exit 0 fv restore "$T/repo-files" latest --target "$T/out-files" --verify -q
for f in "${files[@]}"; do
	cmp "$src/big/$f" "$T/out-files$src/big/$f" || fail "source file $f does not restore equal"
done

# --- a file that changes while it is read ----------------------------------------
# re-read up to 3 times (each time its chunks from the last try are waited
# for before its chunk list is dropped), then stored flagged inconsistent
mkdir "$T/busy"
head -c $((32 << 20)) /dev/zero >"$T/busy/file"
python3 - "$T/busy/file" <<-'EOF2' &
	import os, sys, time
	fd, i = os.open(sys.argv[1], os.O_WRONLY), 0
	while True:
	    os.pwrite(fd, b"change %d" % i, (i * 7919) % (32 << 20))
	    i += 1
	    time.sleep(0.0005)
EOF2
writer=$!
on_exit "kill $writer 2>/dev/null || true"
fv_init "$T/repo-busy" --chunk-sizes 64,128,1024 -q
assert_exit 0 fv snapshot "$T/repo-busy" "$T/busy" --threads 4 --no-cache -q
assert_stderr 'changed while being read \(3 tries\); stored as inconsistent'
kill "$writer"
wait "$writer" 2>/dev/null || true
assert_exit 0 fv check "$T/repo-busy" --read-data -q
assert_exit 0 fv restore "$T/repo-busy" latest --target "$T/out-busy" --verify -q
[ "$(stat -c %s "$T/out-busy$T/busy/file")" = $((32 << 20)) ] || fail "the inconsistent file restored with another size"

# --- SIGKILL during a snapshot with many threads --------------------------------
repo=$T/repo-kill
fv_init "$repo" --chunk-sizes 64,128,1024 -q
# how long a run takes when all its data is stored already (the shortest
# kind, as after the first round that completes): kills are aimed within it
fv_init "$T/scratch" --chunk-sizes 64,128,1024 -q
fv snapshot "$T/scratch" "$src" --threads 16 --no-cache -q
t0=${EPOCHREALTIME/./}
fv snapshot "$T/scratch" "$src" --threads 16 --no-cache -q
run_ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
rm -rf "$T/scratch"
RANDOM=${FV_THREADS_SEED:-77}
echo "seed ${FV_THREADS_SEED:-77}"
mid=0
for round in 1 2 3 4 5 6; do
	delay_ms=$((round == 1 ? 0 : run_ms * (RANDOM % 900) / 1000))
	"$FV_BIN" snapshot "$repo" "$src" --threads 16 --no-cache -q 2>"$T/kill.err" &
	pid=$!
	sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$?
	case $rc in
	137) mid=$((mid + 1)) ;;
	0) ;;
	*) cat "$T/kill.err" >&2; fail "round $round: snapshot exited $rc before the kill" ;;
	esac
	assert_exit 0 fv check "$repo" --read-data
	echo "round $round: killed after $delay_ms ms of ~$run_ms (exit $rc); check OK"
done
[ "$mid" -ge 4 ] || fail "only $mid of 6 kills landed while the snapshot ran"
assert_exit 0 fv snapshot "$repo" "$src" --threads 16 --no-cache -q
assert_exit 0 fv check "$repo" --read-data -q
assert_exit 0 fv restore "$repo" latest --target "$T/out-kill" --verify -q
expect_equal "$src" "$T/out-kill$src" "the snapshot after the killed ones"

# --- bad values -------------------------------------------------------------------
state() {
	find "$T/repo4" -printf '%p %s %T@\n' | sort
}
before=$(state)
for v in 0 -1 abc 65 99999999999999999999 '' 2x; do
	assert_exit 2 fv snapshot "$T/repo4" "$src" --threads "$v"
	assert_stderr "threads.*1 to 64"
done
assert_eq "$(state)" "$before" "the repository after bad --threads values"
fv snapshot --help | grep -q -e '--threads N' || fail "snapshot --help does not mention --threads"
