#!/usr/bin/env bash
# memsys.sh [--scale S] [--runs N] [--workdir DIR] [--keep] [--json FILE] [--cold]
#           [--seed N] [--fabvault BIN]
#
# The benchmark of "backups at the speed of the hardware": fabvault against
# borg and restic, in one run, on the same memory-system dataset
# (tests/bench/gen_memsys.py; --scale 1, the default, is ~1.5 GB), local
# repositories only, no network. Each run of the --runs (default 3) measures,
# for each tool, with /usr/bin/time (wall seconds, peak RSS):
#   first snapshot     into a fresh repository (fabvault init --kdf interactive;
#                      borg init -e repokey-blake2, create --compression zstd,3;
#                      restic init, backup)
#   day-2 snapshot     after `gen_memsys.py mutate`; bytes added to the
#                      repository (du -sb before/after) against the ideal
#   unchanged snapshot a third one, nothing changed
#   restore            of the latest snapshot into an empty directory
#   check              fabvault check --read-data, borg check --verify-data,
#                      restic check --read-data
# and the ceilings `tar cf - . | cat` (read) and `tar cf - . | zstd -3 -T$(nproc)`
# (compression). Tools take turns going first. Every step is warm: its input
# (dataset or repository) is re-read right before it, since this machine
# evicts pages idle for ~30 s (tests/bench/README.md); --cold drops the page
# cache instead (root). MB/s is the dataset's apparent size (regular files,
# hardlinks once) over wall time, key derivation included.
#
# Prints a table of medians, the ratios fabvault vs borg / restic ("higher is
# better for fabvault") and the issue's targets, MET or NOT MET; --json FILE
# writes it as JSON. The work directory (default a new /tmp/fabvault-memsys.*)
# is removed at the end unless --keep. fabvault is $FV_BIN, --fabvault BIN, or
# built as a release build in build-release/ of this source tree.
# Never run by tests/run or CI. Needs: python3, borg, restic, zstd, GNU tar,
# /usr/bin/time (Debian: apt-get install -y borgbackup restic zstd time).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)

usage() {
	echo "usage: memsys.sh [--scale S] [--runs N] [--workdir DIR] [--keep] [--json FILE] [--cold]" >&2
	echo "                 [--seed N] [--fabvault BIN]" >&2
	exit 2
}

scale=1 runs=3 work='' keep=0 json='' cold=0 seed=1 fv=${FV_BIN:-}
while [ $# -gt 0 ]; do
	case $1 in
	--scale) [ $# -ge 2 ] || usage; scale=$2; shift 2 ;;
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
	--workdir) [ $# -ge 2 ] || usage; work=$2; shift 2 ;;
	--json) [ $# -ge 2 ] || usage; json=$2; shift 2 ;;
	--seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
	--fabvault) [ $# -ge 2 ] || usage; fv=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--cold) cold=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
done
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || usage
[[ $runs =~ ^[1-9][0-9]*$ ]] || usage
[[ $seed =~ ^[0-9]+$ ]] || usage
[ -z "$json" ] || json=$(realpath -m "$json")

# --- what the bench needs -----------------------------------------------------------------
missing=()
for c in python3:python3 borg:borgbackup restic:restic zstd:zstd tar:tar /usr/bin/time:time; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "memsys.sh: missing packages: ${missing[*]}; install them with" >&2
	echo "  apt-get install -y ${missing[*]}" >&2
	exit 2
fi
python3 -c 'import sqlite3' 2>/dev/null || {
	echo "memsys.sh: python3 has no sqlite3 module (Debian: apt-get install -y libpython3-stdlib)" >&2
	exit 2
}
if [ "$cold" = 1 ] && ! [ -w /proc/sys/vm/drop_caches ]; then
	echo "memsys.sh: --cold drops the page cache: run it as root" >&2
	exit 2
fi
if [ -z "$fv" ]; then
	fv=$src/build-release/tools/fabvault
	[ -f "$src/build-release/build.ninja" ] || meson setup -Dbuildtype=release "$src/build-release" "$src" >/dev/null
	ninja -C "$src/build-release" >/dev/null
fi
[ -x "$fv" ] || { echo "memsys.sh: $fv is not an executable fabvault" >&2; exit 2; }
fv=$(realpath "$fv")

# --- the work directory and the tools' environment ----------------------------------------
if [ -n "$work" ]; then
	if [ -e "$work" ] && [ -n "$(ls -A "$work")" ]; then
		echo "memsys.sh: $work is not empty; give a new or empty directory" >&2
		exit 2
	fi
	mkdir -p "$work"
	work=$(realpath "$work")
else
	work=$(mktemp -d /tmp/fabvault-memsys.XXXXXX)
fi
cleanup() {
	if [ "$keep" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
mkdir -p "$work/logs" "$work/tmp"
pristine=$work/pristine
data=$work/opt/memory-system/data # the path the snapshots record
results=$work/results             # lines: STEP TOOL RUN VALUE [RSS_KB]
meta=$work/meta                   # lines: KEY VALUE
: >"$results"
: >"$meta"

export FABVAULT_PASSPHRASE=bench-passphrase-not-a-secret
export BORG_PASSPHRASE=$FABVAULT_PASSPHRASE RESTIC_PASSWORD=$FABVAULT_PASSPHRASE
export BORG_DISPLAY_PASSPHRASE=n BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
# caches and temporary files of all three tools live in the work directory
export BORG_BASE_DIR=$work/home/borg RESTIC_CACHE_DIR=$work/home/restic XDG_CACHE_HOME=$work/home/cache
export TMPDIR=$work/tmp
unset CREDENTIALS_DIRECTORY BORG_REPO RESTIC_REPOSITORY RESTIC_PASSWORD_FILE
export LC_ALL=C
tools=(fabvault borg restic)
ncpu=$(nproc)

commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=clean
GIT_OPTIONAL_LOCKS=0 git -C "$src" diff --quiet HEAD 2>/dev/null || dirty=dirty
{
	echo "commit $commit"
	echo "tree $dirty"
	echo "scale $scale"
	echo "runs $runs"
	echo "cache $([ "$cold" = 1 ] && echo cold || echo warm)"
	echo "nproc $ncpu"
	echo "fabvault_bin $fv"
	echo "borg_version $(borg --version | awk '{print $2}')"
	echo "restic_version $(restic version | awk '{print $2}')"
	echo "zstd_version $(zstd --version | sed 's/.*v\([0-9.]*\).*/\1/')"
} >>"$meta"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
t_start=$(date +%s)

# --- helpers --------------------------------------------------------------------------------

# Make DIR's files warm (read them just now), or with --cold drop every cache.
# Dirty pages of the previous step are written first, outside any timing.
prepare() {
	sync
	if [ "$cold" = 1 ]; then
		echo 3 >/proc/sys/vm/drop_caches
	else
		tar cf - -C "$1" . 2>/dev/null | cat >/dev/null || true
	fi
}

# Apparent bytes of the regular files under DIR (hardlinks once), and their number.
tree_bytes() { find "$1" -type f -printf '%i %s\n' | sort -u | awk '{s += $2} END {print s + 0, NR}'; }

# measure STEP TOOL CMD...: run CMD (in $cwd if set) under /usr/bin/time and
# record "STEP TOOL RUN WALL RSS_KB", or "fail" (and the log's tail). A tool
# whose step fails is skipped for the rest of the run.
measure() {
	local step=$1 tool=$2 l rc=0 wall rss
	shift 2
	l=$work/logs/run$run-$step-$tool.log
	(cd "${cwd:-.}" && exec /usr/bin/time -f '%e %M' -o "$work/time.out" "$@") >"$l" 2>&1 || rc=$?
	# borg's exit status 1 is a warning
	if [ "$rc" = 0 ] || { [ "$tool" = borg ] && [ "$rc" = 1 ]; }; then
		read -r wall rss < <(tail -n 1 "$work/time.out")
		echo "$step $tool $run $wall $rss" >>"$results"
		printf '  %-10s %-8s %8.2f s  %7.1f MB RSS\n' "$step" "$tool" "$wall" "$(echo "$rss" | awk '{print $1 / 1024}')"
	else
		echo "$step $tool $run fail" >>"$results"
		echo "  $step $tool FAILED (exit $rc); $l ends with:"
		tail -n 5 "$l" | sed 's/^/    /'
		broken[$tool]=1
	fi
}

repo_of() { echo "$work/repo-$1"; }

tool_init() {
	local r
	r=$(repo_of "$1")
	case $1 in
	fabvault) "$fv" init "$r" --kdf interactive -q ;;
	borg) borg init -e repokey-blake2 "$r" ;;
	restic) restic -r "$r" init -q ;;
	esac >"$work/logs/run$run-init-$1.log" 2>&1
}

# snap STEP TOOL NAME: a snapshot of $data named NAME (borg's archive name)
snap() {
	local r
	r=$(repo_of "$2")
	case $2 in
	fabvault) measure "$1" "$2" "$fv" snapshot "$r" "$data" -q ;;
	borg) measure "$1" "$2" borg create --compression zstd,3 "$r::$3" "$data" ;;
	restic) measure "$1" "$2" restic -r "$r" backup -q "$data" ;;
	esac
}

# Each restore goes into a directory of its own, kept until the end: on ext4
# without a journal (this machine's root) inode allocation skips, one by one,
# every inode deleted in the last 60 s (360 s while its inode table block is
# dirty; recently_deleted() in fs/ext4/ialloc.c), so a restore right after
# another tool's restore was removed paid for that removal, in its serial
# file creation, by an amount that depended on the order of the tools. With
# a journal (the Sparks' root) there is no such scan.
restore() {
	local r t=$work/restore-run$run-$1
	r=$(repo_of "$1")
	rm -rf "$t"
	mkdir -p "$t"
	case $1 in
	fabvault) measure restore "$1" "$fv" restore "$r" latest --target "$t" -q ;;
	borg) cwd=$t measure restore "$1" borg extract "$r::day3" ;;
	restic) measure restore "$1" restic -r "$r" restore latest --target "$t" -q ;;
	esac
	# a cheap sanity check; the integration tests check restores exactly
	if [ -z "${broken[$1]:-}" ] && [ "$(tree_bytes "$t${data}")" != "$(tree_bytes "$data")" ]; then
		echo "  warning: $1 restored $(tree_bytes "$t${data}") (bytes files), the source has $(tree_bytes "$data")"
	fi
}

verify() {
	local r
	r=$(repo_of "$1")
	case $1 in
	fabvault) measure check "$1" "$fv" check "$r" --read-data -q ;;
	borg) measure check "$1" borg check --verify-data "$r" ;;
	restic) measure check "$1" restic -r "$r" check --read-data -q ;;
	esac
}

# --- the dataset -------------------------------------------------------------------------------
log "fabvault $commit ($dirty tree) $fv"
log "work directory $work; generating the dataset (--scale $scale --seed $seed)"
python3 "$here/gen_memsys.py" "$pristine" --scale "$scale" --seed "$seed"
read -r bytes1 files1 < <(tree_bytes "$pristine")
# the pristine copy, the working copy, three repositories and every restore
need=$((bytes1 * (3 * runs + 6)))
avail=$(df --output=avail -B1 "$work" | tail -n 1)
if [ "$avail" -lt "$need" ]; then
	echo "memsys.sh: $work has $((avail / 1000000)) MB free; this run needs about $((need / 1000000)) MB (restores are kept until the end); use --workdir DIR elsewhere, or fewer --runs" >&2
	exit 2
fi
{
	echo "bytes_day1 $bytes1"
	echo "files_day1 $files1"
	echo "allocated_day1 $(du -s --block-size=1 "$pristine" | cut -f1)"
} >>"$meta"

# --- the runs ----------------------------------------------------------------------------------
for run in $(seq 1 "$runs"); do
	declare -A broken=()
	# tools take turns going first
	k=$(((run - 1) % ${#tools[@]}))
	order=("${tools[@]:k}" "${tools[@]:0:k}")
	log "run $run/$runs (order: ${order[*]})"
	rm -rf "${work:?}/opt" "${work:?}/home" "${work:?}"/repo-*
	mkdir -p "$(dirname "$data")" "$work/home"
	cp -a "$pristine" "$data"

	for t in "${order[@]}"; do
		if ! tool_init "$t"; then
			echo "  init $t FAILED; $work/logs/run$run-init-$t.log ends with:"
			tail -n 5 "$work/logs/run$run-init-$t.log" | sed 's/^/    /'
			broken[$t]=1
			echo "first $t $run fail" >>"$results"
			continue
		fi
		prepare "$data"
		snap first "$t" day1
	done

	prepare "$data"
	# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
	measure ceil_read tar sh -c 'tar cf - -C "$1" . | cat >/dev/null' sh "$data"
	prepare "$data"
	# shellcheck disable=SC2016
	measure ceil_zstd tar sh -c 'tar cf - -C "$1" . | zstd -3 -T"$2" -q -c >/dev/null' sh "$data" "$ncpu"

	log "run $run: day-2 change"
	python3 "$here/gen_memsys.py" mutate "$data" --seed "$seed" --json "$work/ideal.json"
	if [ "$run" = 1 ]; then
		read -r bytes2 files2 < <(tree_bytes "$data")
		printf 'bytes_day2 %s\nfiles_day2 %s\n' "$bytes2" "$files2" >>"$meta"
		cp "$work/ideal.json" "$work/ideal-run1.json"
	fi
	for t in "${order[@]}"; do
		[ -z "${broken[$t]:-}" ] || { echo "day2 $t $run fail" >>"$results"; continue; }
		before=$(du -sb "$(repo_of "$t")" | cut -f1)
		prepare "$data"
		snap day2 "$t" day2
		after=$(du -sb "$(repo_of "$t")" | cut -f1)
		[ -n "${broken[$t]:-}" ] || echo "day2_bytes $t $run $((after - before))" >>"$results"
	done
	for t in "${order[@]}"; do
		[ -z "${broken[$t]:-}" ] || { echo "unchanged $t $run fail" >>"$results"; continue; }
		prepare "$data"
		snap unchanged "$t" day3
	done

	log "run $run: restore and check"
	for t in "${order[@]}"; do
		[ -z "${broken[$t]:-}" ] || { echo "restore $t $run fail" >>"$results"; continue; }
		prepare "$(repo_of "$t")"
		restore "$t"
	done
	for t in "${order[@]}"; do
		[ -z "${broken[$t]:-}" ] || { echo "check $t $run fail" >>"$results"; continue; }
		prepare "$(repo_of "$t")"
		verify "$t"
	done
	for t in "${tools[@]}"; do
		[ -d "$(repo_of "$t")" ] && echo "repo_bytes $t $run $(du -sb "$(repo_of "$t")" | cut -f1)" >>"$results"
	done
	unset broken
done
rm -rf "${work:?}/opt" "${work:?}"/repo-* "${work:?}/home"
echo "elapsed_s $(($(date +%s) - t_start))" >>"$meta"

# --- the report ----------------------------------------------------------------------------------
python3 - "$results" "$meta" "$work/ideal-run1.json" "$json" <<'PY'
import json, statistics, sys

res_path, meta_path, ideal_path, json_path = sys.argv[1:5]
meta = dict(l.split(" ", 1) for l in open(meta_path).read().splitlines())
ideal = json.load(open(ideal_path))
runs = int(meta["runs"])
samples = {}  # (step, tool) -> [value or None]
rss = {}
for line in open(res_path):
    f = line.split()
    v = None if f[3] == "fail" else float(f[3])
    samples.setdefault((f[0], f[1]), []).append(v)
    if len(f) > 4:
        rss.setdefault((f[0], f[1]), []).append(float(f[4]))

def med(step, tool, src=samples):
    vals = [v for v in src.get((step, tool), []) if v is not None]
    return statistics.median(vals) if vals else None

def nfail(step, tool):
    return sum(v is None for v in samples.get((step, tool), []))

b1, b2 = float(meta["bytes_day1"]), float(meta["bytes_day2"])
MB = 1e6
T = ("fabvault", "borg", "restic")

def speed(step, nbytes):
    return {t: (nbytes / MB / med(step, t) if med(step, t) else None) for t in T}

def lower(vals, ratio_of):
    """Ratio 'higher is better for fabvault' for a lower-is-better quantity."""
    f = vals.get("fabvault")
    o = vals.get(ratio_of)
    return o / f if f and o else None

rows = []

def add(step, unit, vals, ceiling=None, targets=None, better="lower", ratio_cols=True, fails=None):
    r = {"step": step, "unit": unit, "better": better, "ceiling": ceiling, "ratios": {}}
    for t in T:
        r[t] = vals.get(t)
    if ratio_cols:
        for other in ("borg", "restic", "ceiling"):
            o = ceiling if other == "ceiling" else vals.get(other)
            f = vals.get("fabvault")
            if o is None or not f:
                continue
            ratio = o / f if better == "lower" else f / o
            tgt = (targets or {}).get(other)
            r["ratios"][other] = {"ratio": ratio, "target": tgt,
                                  "met": None if tgt is None else ratio >= tgt}
    for other, tgt in (targets or {}).items():
        if other not in r["ratios"]:  # a failed tool: the target is unknown
            r["ratios"][other] = {"ratio": None, "target": tgt, "met": None}
    r["failed_runs"] = fails or {}
    rows.append(r)

def fails(step):
    return {t: nfail(step, t) for t in T if nfail(step, t)}

tm = lambda step: {t: med(step, t) for t in T}
zstd_t, read_t = med("ceil_zstd", "tar"), med("ceil_read", "tar")
add("first snapshot, s", "s", tm("first"), zstd_t, {"borg": 3, "restic": 2.5, "ceiling": 1}, fails=fails("first"))
add("first snapshot, MB/s", "MB/s", speed("first", b1), b1 / MB / zstd_t if zstd_t else None,
    better="higher", ratio_cols=False)
add("first snapshot, peak RSS MB", "MB", {t: (med("first", t, rss) / 1024 if med("first", t, rss) else None)
                                           for t in T}, None, {"borg": 1})
add("day-2 snapshot, s", "s", tm("day2"), fails=fails("day2"))
add("day-2 added to repo, MB", "MB", {t: (med("day2_bytes", t) / MB if med("day2_bytes", t) is not None else None)
                                       for t in T}, ideal["ideal_bytes"] / MB, {"borg": 2.5, "restic": 2.5})
add("unchanged snapshot, s", "s", tm("unchanged"), None, {"borg": 5}, fails=fails("unchanged"))
add("restore, MB/s", "MB/s", speed("restore", b2), None, {"borg": 2, "restic": 1.5}, better="higher",
    fails=fails("restore"))
add("check --read-data, MB/s", "MB/s", speed("check", b2), None, {"restic": 2}, better="higher",
    fails=fails("check"))
add("tar | cat (read ceiling), MB/s", "MB/s", {}, b1 / MB / read_t if read_t else None, better="higher",
    ratio_cols=False)
add("repository after 3 snapshots, MB", "MB", {t: (med("repo_bytes", t) / MB if med("repo_bytes", t) else None)
                                                for t in T}, None, ratio_cols=False)

def num(v):
    if v is None:
        return "fail"
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v

def cell(r, other):
    x = r["ratios"].get(other)
    if not x:
        return ""
    s = "%.2fx" % x["ratio"] if x["ratio"] is not None else "?"
    if x["target"] is not None:
        s += " >=%gx %s" % (x["target"], "?" if x["met"] is None else "MET" if x["met"] else "NOT MET")
    return s

print()
print("fabvault %s (%s tree) vs borg %s, restic %s; zstd %s; %s cores" % (
    meta["commit"], meta["tree"], meta["borg_version"], meta["restic_version"], meta["zstd_version"],
    meta["nproc"]))
print("dataset --scale %s: %s files, %.0f MB apparent (%.0f MB allocated); day 2: %.0f MB" % (
    meta["scale"], meta["files_day1"], b1 / MB, float(meta["allocated_day1"]) / MB, b2 / MB))
print("median of %d run(s), %s page cache; ratios: higher is better for fabvault (time: other/fabvault,"
      " MB/s: fabvault/other, MB: other/fabvault)" % (runs, meta["cache"]))
print("ceiling: tar | zstd -3 -T%s (snapshot rows), ideal changed 4 KiB blocks + new files (day-2 MB);"
      " ideal with zstd -3: %s MB" % (meta["nproc"], num(ideal["ideal_zstd_bytes"] / MB)
                                      if ideal.get("ideal_zstd_bytes") else "?"))
print()
hdr = ("%-33s %9s %9s %9s %9s  %-21s %-21s %-17s" % ("step", "fabvault", "borg", "restic", "ceiling",
                                                  "vs borg", "vs restic", "vs ceiling")).rstrip()
print(hdr)
print("-" * len(hdr))
for r in rows:
    vals = ["" if r["step"].startswith("tar") else num(r[t]) for t in T]
    print(("%-33s %9s %9s %9s %9s  %-21s %-21s %-17s" % (
        r["step"], *vals, num(r["ceiling"]) if r["ceiling"] is not None else "",
        cell(r, "borg"), cell(r, "restic"), cell(r, "ceiling"))).rstrip())
failed = [(r["step"], t, n) for r in rows for t, n in r["failed_runs"].items()]
for step, t, n in failed:
    print("note: %s failed in %d of %d runs of %s (median of the others)" % (t, n, runs, step))
verdicts = [x["met"] for r in rows for x in r["ratios"].values() if x["target"] is not None]
print()
print("targets: %d MET, %d NOT MET%s; %s s in all" % (
    sum(v is True for v in verdicts), sum(v is False for v in verdicts),
    ", %d unknown (a tool failed)" % sum(v is None for v in verdicts) if None in verdicts else "",
    meta["elapsed_s"]))

if json_path:
    out = {"fabvault_commit": meta["commit"], "tree": meta["tree"], "scale": float(meta["scale"]),
           "runs": runs, "cache": meta["cache"], "nproc": int(meta["nproc"]),
           "versions": {k[:-8]: v for k, v in meta.items() if k.endswith("_version")},
           "dataset": {"files_day1": int(meta["files_day1"]), "bytes_day1": int(b1), "bytes_day2": int(b2),
                       "allocated_day1": int(meta["allocated_day1"])},
           "ideal_day2": ideal, "rows": rows,
           "samples": {"%s/%s" % k: v for k, v in samples.items()},
           "peak_rss_kb": {"%s/%s" % k: v for k, v in rss.items()},
           "elapsed_s": int(meta["elapsed_s"])}
    with open(json_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("JSON written to %s" % json_path)
PY
