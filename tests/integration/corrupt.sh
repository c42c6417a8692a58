#!/usr/bin/env bash
# corrupt.sh: flip one byte in each kind of repository file; `fabvault check`
# fails with exit status 8 and names the damaged file and what it affects
# (docs/repository-format.md, "Checking"). Restore of damaged data exits 8
# and names the damaged file; intact snapshots still restore.
#
# The repository holds two snapshots of a small tree (a few MiB, nested
# directories) with small chunks, so pack 1 (snapshot 1's data, shared by
# snapshot 2) and pack 2 (what snapshot 2 added) have many frames. Every
# case works on a fresh copy of the pristine repository; byte offsets come
# from the file structure (pack: 16-byte header, frames [u32 n][n][u64 xxh3],
# TOC frame at the u64 found at size-32, 32-byte trailer).
#
# Every case runs; failures are collected and listed at the end, so one run
# shows all of them.
. "$(dirname "$0")/lib.sh"

need_cmd python3

T=$(realpath "$T")
src=$T/src src1=$T/src1 repo=$T/repo w=$T/w
srcrel=${src#/} # how paths of the source appear in snapshots

problems=()
bad() {
	problems+=("$*")
	echo "BAD: $*" >&2
}

# flip FILE OFFSET: invert every bit of the byte at OFFSET (twice undoes it).
# (od + dd, not python: the sweeps below flip a few hundred times.)
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" 2>/dev/null | tr -d ' ')
	[ -n "$b" ] || fail "flip: offset $2 is past the end of $1"
	# shellcheck disable=SC2059 # the format is the one byte, as an octal escape
	printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# le32 / le64 FILE OFFSET: the little-endian integer at OFFSET.
le32() { python3 -c 'import struct, sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); print(struct.unpack("<I", f.read(4))[0])' "$1" "$2"; }
le64() { python3 -c 'import struct, sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); print(struct.unpack("<Q", f.read(8))[0])' "$1" "$2"; }

fresh() {
	rm -rf "$w" "$T/out"
	cp -a "$repo" "$w"
}

# chk WHAT NEEDLE...: `check` and `check --read-data` of $w both exit 8 and
# name every NEEDLE (fixed strings). Output of the last run in $T/check.out,
# of both in $T/check.all.
chk() {
	local what=$1 mode rc n before=${#problems[@]}
	shift
	: >"$T/check.all"
	for mode in "" --read-data; do
		rc=0
		fv check "$w" $mode >"$T/check.out" 2>&1 || rc=$?
		cat "$T/check.out" >>"$T/check.all"
		if [ "$rc" != 8 ]; then
			bad "$what: check${mode:+ $mode} exited $rc, expected 8"
			sed 's/^/    /' "$T/check.out" >&2
		fi
		for n in "$@"; do
			grep -qF -- "$n" "$T/check.out" || bad "$what: check${mode:+ $mode} does not name '$n'"
		done
	done
	[ ${#problems[@]} != "$before" ] || echo "ok: $what: check exits 8 and names $*"
}

# named_files: the source files that the check output in $T/check.all
# reports as damaged, relative to the source, sorted and unique.
named_files() {
	grep -oE "$srcrel/[^:]*: [0-9]+ of [0-9]+ content chunks" "$T/check.all" |
		sed -E "s|^$srcrel/||; s|: [0-9]+ of [0-9]+ content chunks$||" | sort -u
}

# no_overreach WHAT FILE: the check output names FILE as damaged and no
# other file or directory (one frame is damaged; everything else is intact).
no_overreach() {
	local got
	got=$(named_files | tr '\n' ' ')
	[ "$got" = "$2 " ] || bad "$1: check reports damaged files '${got}', expected only '$2'"
	if grep -q 'directory listing' "$T/check.all"; then
		bad "$1: check reports a directory listing lost:"
		grep 'directory listing' "$T/check.all" | sed 's/^/    /' >&2
	fi
}

# --- the pristine repository ---------------------------------------------------
python3 - "$src" <<-'EOF'
	import os, random, sys
	root, r = sys.argv[1], random.Random(11)
	def put(p, data):
	    p = os.path.join(root, p)
	    os.makedirs(os.path.dirname(p), exist_ok=True)
	    with open(p, "wb") as f:
	        f.write(data)
	put("a/alpha.bin", r.randbytes(700000))
	put("a/b/beta.txt", b"".join(b"line %d %x\n" % (i, r.getrandbits(40)) for i in range(60000)))
	put("a/b/c/gamma.bin", r.randbytes(1200000))
	put("d/delta.bin", r.randbytes(300000))
	put("d/e/epsilon.txt", b"hello\n")
	put("zeta.bin", r.randbytes(900000))
EOF
fv_init "$repo" --chunk-sizes 64,128,1024 -q
fv snapshot "$repo" "$src" -q
cp -a "$src" "$src1"
pack1=$(cd "$repo" && find packs -type f)
index1=$(cd "$repo" && find index -type f)
snap1=$(cd "$repo" && find snapshots -type f)
echo "more" >>"$src/d/e/epsilon.txt"
python3 -c 'import random, sys; open(sys.argv[1], "wb").write(random.Random(12).randbytes(400000))' "$src/a/new.bin"
fv snapshot "$repo" "$src" -q
pack2=$(cd "$repo" && find packs -type f ! -path "$pack1")
snap2=$(cd "$repo" && find snapshots -type f ! -path "$snap1")
id1=${snap1#snapshots/} id2=${snap2#snapshots/}
for v in pack1 pack2 index1 snap1 snap2; do
	[ "$(wc -w <<<"${!v}")" = 1 ] || fail "expected one file for $v, got '${!v}'"
done
assert_exit 0 fv check "$repo" --read-data
echo "repository: $(cd "$repo" && find . -type f | wc -l) files; snapshot 1 ${id1:0:8} in $pack1," \
	"snapshot 2 ${id2:0:8} adds $pack2"

p=$repo/$pack1
psize=$(stat -c %s "$p")
toc=$(le64 "$p" $((psize - 32)))
len1=$(le32 "$p" 16)
[ "$toc" -gt 16 ] && [ "$toc" -lt "$psize" ] && [ $((16 + 4 + len1 + 8)) -le "$toc" ] ||
	fail "$pack1: unexpected layout (size $psize, TOC at $toc, first frame $len1 bytes)"

# --- a data frame's payload in pack 1: both snapshots, one file -----------------
fresh
flip "$w/$pack1" $((16 + 4 + 10))
chk "pack data payload" "$pack1" "snapshot ${id1:0:8}" "snapshot ${id2:0:8}"
victim=$(named_files)
echo "first frame of $pack1 belongs to: ${victim:-nothing named}"
if [ "$(wc -l <<<"$victim")" != 1 ] || [ ! -f "$src1/$victim" ]; then
	bad "pack data payload: check should name exactly one file of the source, named '$victim'"
	victim=
fi
no_overreach "pack data payload" "$victim"

# restore of the damaged snapshot: exit 8, the damaged file named, the rest intact
for verify in "" --verify; do
	rm -rf "$T/restore"
	rc=0
	fv restore "$w" "$id1" --target "$T/restore" $verify >"$T/restore.out" 2>&1 || rc=$?
	[ "$rc" = 8 ] || bad "restore $verify of damaged snapshot 1 exited $rc, expected 8"
	if [ -n "$victim" ]; then
		grep -qF "$srcrel/$victim" "$T/restore.out" || bad "restore $verify does not name the damaged $victim"
	fi
	while IFS= read -r -d '' f; do
		r=${f#"$src1"/}
		[ "$r" != "$victim" ] || continue
		cmp -s "$f" "$T/restore$src/$r" || bad "restore $verify: intact file $r not restored equal"
	done < <(find "$src1" -type f -print0)
done
cp "$T/restore.out" "$T/restore.pack1.out"

# --- the same payload byte, with the frame checksum made to match: the frame
# scan passes, the seal does not. restore (which trusts the AEAD tag for the
# id unless --verify) still refuses the blob, exits 8 and names the file;
# only check --read-data sees it (docs/repository-format.md, "What a read
# checks").
fresh
flip "$w/$pack1" $((16 + 4 + 10))
reframe "$w/$pack1" 16
rc=0
fv check "$w" >"$T/check.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || bad "pack payload behind a valid checksum: check without --read-data exited $rc, expected 0"
rc=0
fv check "$w" --read-data >"$T/check.out" 2>&1 || rc=$?
[ "$rc" = 8 ] && grep -qF "failed authentication" "$T/check.out" ||
	bad "pack payload behind a valid checksum: check --read-data exited $rc: $(cat "$T/check.out")"
for verify in "" --verify; do
	rm -rf "$T/restore"
	rc=0
	fv restore "$w" "$id1" --target "$T/restore" $verify >"$T/restore.out" 2>&1 || rc=$?
	[ "$rc" = 8 ] || bad "restore $verify of a blob behind a valid checksum exited $rc, expected 8"
	grep -qF "failed authentication" "$T/restore.out" ||
		bad "restore $verify of a blob behind a valid checksum does not say it failed authentication"
	if [ -n "$victim" ]; then
		grep -qF "$srcrel/$victim" "$T/restore.out" ||
			bad "restore $verify of a blob behind a valid checksum does not name $victim"
		! cmp -s "$src1/$victim" "$T/restore$src/$victim" ||
			bad "restore $verify restored $victim equal from a damaged blob"
	fi
done
[ ${#problems[@]} != 0 ] || echo "ok: a payload byte behind a valid checksum: restore exits 8 (failed authentication)"

# --- the frame's length field and its checksum field ---------------------------
for case in "length field, low byte:16" "length field, high byte:19" "frame checksum:$((16 + 4 + len1 + 3))"; do
	fresh
	flip "$w/$pack1" "${case##*:}"
	chk "pack frame ${case%:*}" "$pack1" "snapshot ${id1:0:8}"
	[ -z "$victim" ] || no_overreach "pack frame ${case%:*}" "$victim"
done

# --- TOC, trailer, header: the pack is named ---------------------------------------
for case in "TOC payload:$((toc + 4 + 10))" "TOC length:$toc" "trailer TOC offset:$((psize - 31))" \
	"trailer checksum:$((psize - 12))" "trailer magic:$((psize - 1))" "header magic:3" "header version:8"; do
	fresh
	flip "$w/$pack1" "${case##*:}"
	chk "pack ${case%:*}" "$pack1"
done

# --- pack 2 damaged: only snapshot 2 is affected; snapshot 1 restores whole --------
fresh
flip "$w/$pack2" $((16 + 4 + 10))
chk "pack 2 data payload" "$pack2" "snapshot ${id2:0:8}"
[ "$(named_files | wc -l)" = 1 ] || bad "pack 2 data payload: check should name one damaged file: '$(named_files)'"
if grep -qF "snapshot ${id1:0:8}" "$T/check.all"; then
	bad "pack 2 data payload: check names snapshot 1, which does not use pack 2"
fi
rm -rf "$T/restore"
if fv restore "$w" "$id1" --target "$T/restore" -q 2>"$T/restore.out"; then
	diff -r "$src1" "$T/restore$src" >/dev/null || bad "snapshot 1 restored from a repository with pack 2 damaged differs"
else
	bad "restore of intact snapshot 1 with pack 2 damaged failed: $(cat "$T/restore.out")"
fi
rm -rf "$T/restore"
rc=0
fv restore "$w" "$id2" --target "$T/restore" >"$T/restore.out" 2>&1 || rc=$?
[ "$rc" = 8 ] || bad "restore of snapshot 2 with pack 2 damaged exited $rc, expected 8"
grep -qF "$srcrel/" "$T/restore.out" || bad "restore of snapshot 2 with pack 2 damaged names no file"

# --- truncated, missing, unexpected pack files --------------------------------------
fresh
truncate -s -100 "$w/$pack1"
chk "pack truncated by 100 bytes" "$pack1"

fresh
rm "$w/$pack1"
chk "pack deleted" "$pack1" missing "snapshot ${id1:0:8}" "snapshot ${id2:0:8}"

for name in garbage "${pack1:6:2}000000000000000000000000000000"; do
	fresh
	d=$w/packs/${pack1:6:2}
	head -c 1000 /dev/urandom >"$d/$name"
	for mode in "" --read-data; do
		rc=0
		fv check "$w" $mode >"$T/check.out" 2>&1 || rc=$?
		[ "$rc" = 0 ] || bad "extra file packs/${pack1:6:2}/$name: check${mode:+ $mode} exited $rc, expected 0 (a warning)"
		grep -q "warning: .*packs/${pack1:6:2}/$name" "$T/check.out" ||
			bad "extra file packs/${pack1:6:2}/$name: check${mode:+ $mode} gives no warning naming it"
		if grep -q "error: .*packs/${pack1:6:2}/$name" "$T/check.out"; then
			bad "extra file packs/${pack1:6:2}/$name: check${mode:+ $mode} reports it as an error:"
			sed 's/^/    /' "$T/check.out" >&2
		fi
	done
done

# --- index file ----------------------------------------------------------------------
isize=$(stat -c %s "$repo/$index1")
for off in 0 20 $((isize / 2)) $((isize - 1)); do
	fresh
	flip "$w/$index1" "$off"
	chk "index file @$off" "$index1"
	# the pack it indexed is not a leftover of an interrupted snapshot
	if grep -q "$pack1.*harmless" "$T/check.all"; then
		bad "index file @$off damaged: check calls $pack1, whose index is damaged, harmless"
	fi
done

# --- snapshot file: the file named; the other snapshot still restores ------------------
ssize=$(stat -c %s "$repo/$snap1")
for off in 0 20 $((ssize / 2)) $((ssize - 1)); do
	fresh
	flip "$w/$snap1" "$off"
	chk "snapshot file @$off" "$snap1"
done
rm -rf "$T/restore"
if fv restore "$w" "$id2" --target "$T/restore" -q 2>"$T/restore.out"; then
	diff -r "$src" "$T/restore$src" >/dev/null || bad "snapshot 2 restored with snapshot 1's file damaged differs"
else
	bad "restore of intact snapshot 2 (full id) fails when $snap1 is damaged: $(cat "$T/restore.out")"
fi

# --- config and keys/default: every byte --------------------------------------------
# Opening fails; damage is exit 8 and says so. By the format, config's magic
# (bytes 0..7) is checked first (exit 5: not a repository) and its version
# (8..11) next (exit 6: too new); a damaged key file is never a wrong
# passphrase (exit 4).
sweep() { # sweep FILE NAME_IN_MESSAGE
	local size off rc want mode
	size=$(stat -c %s "$w/$1")
	for ((off = 0; off < size; off++)); do
		want=8
		if [ "$1" = config ] && [ $off -lt 8 ]; then want=5; fi
		if [ "$1" = config ] && [ $off -ge 8 ] && [ $off -lt 12 ]; then want=6; fi
		mode=
		((off % 16 == 5)) && mode=--read-data # both modes open the same way
		flip "$w/$1" $off
		rc=0
		fv check "$w" $mode >"$T/check.out" 2>&1 || rc=$?
		flip "$w/$1" $off
		if [ "$rc" != "$want" ]; then
			bad "$1 @$off: check${mode:+ $mode} exited $rc, expected $want: $(cat "$T/check.out")"
		elif [ "$want" = 8 ] && ! grep -q "$2.*damaged" "$T/check.out"; then
			bad "$1 @$off: check${mode:+ $mode} does not say '$2 ... damaged': $(cat "$T/check.out")"
		fi
		if grep -qi passphrase "$T/check.out"; then
			bad "$1 @$off: reported as a passphrase problem: $(cat "$T/check.out")"
		fi
	done
	echo "$1: flipped each of $size bytes"
}
fresh
sweep config config
sweep keys/default keys/default
assert_exit 0 fv check "$w" # the sweep undid every flip

# a wrong passphrase is still exit 4 (the distinction above is real)
FABVAULT_PASSPHRASE=wrong assert_exit 4 fv check "$w"

# --- list and restore with a damaged key or config also exit 8 --------------------------
for f in config keys/default; do
	fresh
	flip "$w/$f" 40
	rc=0
	fv list "$w" >/dev/null 2>"$T/out" || rc=$?
	[ "$rc" = 8 ] && grep -q "$f.*damaged" "$T/out" || bad "list with $f damaged: exit $rc: $(cat "$T/out")"
	rc=0
	fv restore "$w" latest --target "$T/restore" >/dev/null 2>"$T/out" || rc=$?
	[ "$rc" = 8 ] && grep -q "$f.*damaged" "$T/out" || bad "restore with $f damaged: exit $rc: $(cat "$T/out")"
done

if [ ${#problems[@]} -gt 0 ]; then
	echo "${#problems[@]} problems:" >&2
	printf '  %s\n' "${problems[@]}" >&2
	fail "${#problems[@]} expectations not met (see above)"
fi
echo "all corruption cases reported as expected"
