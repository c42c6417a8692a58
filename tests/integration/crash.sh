#!/usr/bin/env bash
# crash.sh: SIGKILL at any moment leaves a valid repository; leftover
# unreferenced packs are harmless; the next snapshot completes
# (docs/repository-format.md, "Crash safety").
#
# A tree of a few hundred files (half random, half compressible text) is
# backed up with small chunks (64/128/1024 KiB), so one snapshot writes
# several 32 MiB packs. First one snapshot into a scratch repository measures
# how long a full and a deduplicated snapshot take. Then, $rounds times: change
# a few files, start `fabvault snapshot` in the background, SIGKILL it after a
# delay drawn from a seeded RANDOM over that duration (some rounds at once,
# very early or near the end), and require that `check --read-data` passes
# (warnings for unreferenced packs allowed), `list` works, a snapshot that
# completed is listed, and the latest snapshot restores with --verify (and
# equals the source when it was taken this round). At least min_mid kills
# must land while the snapshot runs. At the end a snapshot runs to
# completion, clears tmp/, checks clean and restores equal to the source, and
# every snapshot listed restores one directory with --verify. Timing on a
# shared machine is noisy: a kill that finds the snapshot done lowers the
# expected duration for later rounds.
#
# Environment: FV_CRASH_SEED (default 4242) varies the delays and the data;
# the seed is printed so a failing run can be repeated.
. "$(dirname "$0")/lib.sh"

need_cmd python3

seed=${FV_CRASH_SEED:-4242}
rounds=24
min_mid=15
data_mb=150
if [[ $FV_BUILD == *asan* ]]; then
	data_mb=100 # sanitizers make a snapshot slower (and check, restore)
elif [ "${FV_QUICK:-0}" = 1 ]; then
	data_mb=64
fi
echo "seed $seed, $rounds rounds, ~$data_mb MiB of data"
RANDOM=$seed

T=$(realpath "$T") # paths in a snapshot are absolute and resolved
src=$T/src repo=$T/repo
ndirs=12

# mkdata tree DIR MIB SEED: a tree of ~MIB MiB in DIR/dNN/sN/fNNNN.bin.
# mkdata mutate DIR ROUND SEED: in DIR/d(ROUND % ndirs), rewrite two files with
# new random bytes, append to one, add one new file; prints that directory.
mkdata() {
	python3 - "$@" "$ndirs" <<-'EOF'
		import os, random, sys
		mode, root, n, seed, ndirs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
		words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
		def text(r, size):
		    parts, m = [], 0
		    while m < size:
		        l = b"%08x %s %d\n" % (r.getrandbits(32), b" ".join(r.choice(words) for _ in range(r.randrange(4, 14))), r.randrange(1 << 20))
		        parts.append(l)
		        m += len(l)
		    return b"".join(parts)[:size]
		def put(path, data, how="wb"):
		    os.makedirs(os.path.dirname(path), exist_ok=True)
		    with open(path, how) as f:
		        f.write(data)
		if mode == "tree":
		    r = random.Random(seed)
		    total, done, i = n << 20, 0, 0
		    while done < total:
		        size = r.choice([0, 1, 4096, 60000, 300000, 700000, 1500000, 3000000])
		        data = r.randbytes(size) if i % 2 == 0 else text(r, size)
		        put(os.path.join(root, "d%02d" % (i % ndirs), "s%d" % (i % 5), "f%04d.bin" % i), data)
		        done += size
		        i += 1
		else:
		    r = random.Random(seed * 100003 + n)
		    d = os.path.join(root, "d%02d" % (n % ndirs))
		    files = sorted(os.path.join(p, f) for p, _, fs in os.walk(d) for f in fs)
		    for f in r.sample(files, 2):
		        put(f, r.randbytes(r.randrange(10000, 400000)))
		    put(r.choice(files), text(r, 50000), "ab")
		    put(os.path.join(d, "s%d" % r.randrange(5), "new-%03d.bin" % n), text(r, r.randrange(1, 200000)))
		    print(d)
	EOF
}

now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# timed_snapshot REPO: one snapshot run to completion; prints its milliseconds.
timed_snapshot() {
	local t0
	t0=$(now_ms)
	fv snapshot "$1" "$src" -q
	echo $(($(now_ms) - t0))
}

nsnaps() {
	snapshots_count "$repo"
}

mkdata tree "$src" "$data_mb" "$seed" >/dev/null
echo "source: $(find "$src" -type f | wc -l) files, $(du -sm "$src" | cut -f1) MiB"

# --- measure: a full snapshot, then a deduplicated one, in a scratch repository
fv_init "$T/scratch" --chunk-sizes 64,128,1024 -q
full_ms=$(timed_snapshot "$T/scratch")
# the first run after a full one is slowed by the write-back of its packs
dedup_ms=$(timed_snapshot "$T/scratch")
t=$(timed_snapshot "$T/scratch")
[ "$t" -ge "$dedup_ms" ] || dedup_ms=$t
npacks=$(find "$T/scratch/packs" -type f | wc -l)
rm -rf "$T/scratch"
echo "one snapshot: ${full_ms} ms when all is new ($npacks packs), ${dedup_ms} ms deduplicated"
[ "$npacks" -ge 2 ] || fail "a full snapshot wrote $npacks packs; the test needs several"

# --- rounds of killed snapshots -----------------------------------------------
fv_init "$repo" --chunk-sizes 64,128,1024 -q
mid=0 after=0 have=0
for ((round = 1; round <= rounds; round++)); do
	changed=$(mkdata mutate "$src" "$round" "$seed")
	# Until a snapshot completes, every run stores everything again (blobs of
	# a killed run are in no index); after that, most data deduplicates.
	if [ "$have" = 0 ]; then dur=$full_ms; else dur=$dedup_ms; fi
	case $round in
	1) delay_ms=0 ;;                                 # at once: during start-up
	2) delay_ms=$((RANDOM % 40)) ;;                  # very early
	*) if ((round % 7 == 0 || round == rounds)); then
		delay_ms=$((dur * (900 + RANDOM % 400) / 1000)) # near the end (timing is noisy)
	else
		delay_ms=$((dur * (RANDOM % 900) / 1000))
	fi ;;
	esac

	"$FV_BIN" snapshot "$repo" "$src" -q 2>"$T/snapshot.err" &
	pid=$!
	sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$? # no "Killed" job notice
	case $rc in
	137) mid=$((mid + 1)) what="killed mid-run" ;;
	0)
		after=$((after + 1)) what="had finished"
		# timing is noisy: a run that ended before the kill took at most
		# the delay; aim later rounds of this kind at that
		if [ "$delay_ms" -lt "$dur" ]; then
			if [ "$have" = 0 ]; then full_ms=$delay_ms; else dedup_ms=$delay_ms; fi
		fi
		;;
	*)
		cat "$T/snapshot.err" >&2
		fail "round $round: snapshot exited $rc before the kill"
		;;
	esac

	assert_exit 0 fv check "$repo" --read-data >/dev/null
	unref=$(grep -c 'not named by any index' "$T/stderr" || true)
	before=$have
	have=$(nsnaps)
	if [ "$rc" = 0 ]; then
		assert_eq "$have" $((before + 1)) "round $round: snapshots after a completed run"
	elif [ "$have" != "$before" ] && [ "$have" != $((before + 1)) ]; then
		fail "round $round: $before snapshots before a killed run, $have after"
	fi
	new=
	if [ "$have" -gt 0 ]; then
		# the latest snapshot restores and verifies; taken this round, it
		# must equal the source (unchanged since)
		rm -rf "$T/restore"
		assert_exit 0 fv restore "$repo" latest --target "$T/restore" --include "$changed" --verify -q
		if [ "$have" != "$before" ]; then
			diff -r "$changed" "$T/restore$changed" || fail "round $round: restored $changed differs"
			new=", new snapshot restored equal"
		fi
	fi
	echo "round $round: kill after ${delay_ms} ms of ~${dur}: $what; check OK," \
		"$(find "$repo/packs" -type f | wc -l) packs ($unref unreferenced), $have snapshots$new"
done
echo "kills: $mid landed mid-run, $after after the snapshot had finished"
[ "$mid" -ge "$min_mid" ] || fail "only $mid of $rounds kills landed mid-run (need $min_mid)"

# --- the next snapshot completes, and everything is whole --------------------
mkdata mutate "$src" 0 "$seed" >/dev/null
assert_exit 0 fv snapshot "$repo" "$src" -q
[ -z "$(ls -A "$repo/tmp")" ] || fail "tmp/ not cleared by the completed snapshot: $(ls "$repo/tmp")"
[ ! -e "$repo/lock" ] || fail "lock left behind by a completed snapshot"
assert_exit 0 fv check "$repo" --read-data >/dev/null
echo "final check: $(grep -c 'not named by any index' "$T/stderr" || true) unreferenced packs (harmless)"
assert_eq "$(nsnaps)" $((have + 1)) "snapshots after the final run"
rm -rf "$T/restore"
assert_exit 0 fv restore "$repo" latest --target "$T/restore" --verify -q
diff -r "$src" "$T/restore$src" || fail "restore of the final snapshot differs from the source"
echo "final snapshot restored equal to the source"
# every snapshot, complete or taken between kills, restores (one directory each)
for id in $(fv list "$repo" --json | python3 -c 'import json, sys; print(*(s["id"] for s in json.load(sys.stdin)))'); do
	rm -rf "$T/restore"
	assert_exit 0 fv restore "$repo" "$id" --target "$T/restore" --include "$src/d00" --verify -q
done
echo "all $((have + 1)) snapshots restore and verify"
