#!/usr/bin/env bash
# gentree.sh DIR [--size small|medium] [--seed N] [--no-acl] [--unreadable]
#
# Generate under DIR (absent or empty) a source tree holding every kind of
# entry a backup must restore exactly: regular files of many sizes (empty,
# 1 byte, a few KiB, several MiB random, compressible text, duplicates), sparse
# files (data at scattered offsets, a trailing hole, all hole), a directory
# chain 30 deep, symlinks (relative, absolute, dangling, to a directory, self,
# long target), a hardlink group of 3 names across directories, a FIFO, a
# socket, devices (root only), awkward names (unicode, invalid UTF-8, space,
# newline, tab, leading dash, "...", 255 bytes), modes 0000 / read-only
# directories / setuid / setgid / sticky, user.* xattrs (also on a directory)
# and a POSIX ACL where the filesystem takes them, foreign owners (root only)
# and nanosecond mtimes (also before 1970 and in 2100) on every entry.
#
# Entries their owner cannot read (a 0000 file and directory, a 0200 file)
# are made only as root, where a backup can read them, or with --unreadable
# (for tests of partial backups). The same seed gives the same names,
# contents, modes and times. Sizes:
#   small  (default) 64 MiB sparse file, ~4 MiB of data, 100 files in many/
#   medium 1 GiB sparse file, ~40 MiB of data, 3000 files in many/
# Needs bash, coreutils, python3 (random bytes; meson depends on it), and
# optionally setfattr / setfacl (attr, acl).
set -euo pipefail

usage() {
	echo "usage: gentree.sh DIR [--size small|medium] [--seed N] [--no-acl] [--unreadable]" >&2
	exit 2
}

dir='' size=small seed=1 acl=1 unreadable=''
while [ $# -gt 0 ]; do
	case $1 in
	--size) [ $# -ge 2 ] || usage; size=$2; shift 2 ;;
	--seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
	--no-acl) acl=0; shift ;;
	--unreadable) unreadable=1; shift ;;
	-*) usage ;;
	*) [ -z "$dir" ] || usage; dir=$1; shift ;;
	esac
done
[ -n "$dir" ] || usage
[[ $seed =~ ^[0-9]+$ ]] || usage
case $size in
small) rand_bytes=$((3 << 20)) text_lines=8000 sparse_size=64M piece=$((256 << 10)) many=100 ;;
medium) rand_bytes=$((24 << 20)) text_lines=120000 sparse_size=1G piece=$((1 << 20)) many=3000 ;;
*) usage ;;
esac
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
	echo "gentree.sh: $dir is not empty; give a new or empty directory" >&2
	exit 2
fi
mkdir -p "$dir"
cd "$dir"
export LC_ALL=C
root=0
[ "$(id -u)" = 0 ] && root=1
: "${unreadable:=$root}"
RANDOM=$seed

# gen KIND N STREAM: N bytes of random data (bytes) or N lines of log-like
# text (text) on stdout, from a generator seeded with $seed and STREAM (an
# explicit number per call site: gen often runs in a pipeline's subshell).
gen() {
	python3 - "$1" "$2" "$((seed * 1000 + $3))" <<-'EOF'
		import random, sys
		kind, n, r = sys.argv[1], int(sys.argv[2]), random.Random(int(sys.argv[3]))
		out = sys.stdout.buffer
		if kind == "bytes":
		    while n > 0:
		        k = min(n, 1 << 20)
		        out.write(r.randbytes(k))
		        n -= k
		else:
		    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
		    words = "memory recall store vector index segment query embed compact flush".split()
		    t = 1700000000
		    for i in range(n):
		        t += r.randrange(0, 3)
		        msg = " ".join(r.choice(words) for _ in range(r.randrange(3, 12)))
		        out.write(b"%d %s worker-%d: %s id=%08x\n" % (t, r.choice(levels).encode(),
		                  r.randrange(8), msg.encode(), r.getrandbits(32)))
	EOF
}

# --- regular files -----------------------------------------------------------
mkdir files
: >files/empty
printf x >files/one-byte
gen bytes 6151 1 >files/small.bin
gen bytes $((rand_bytes + 12345)) 2 >files/random.bin
gen text "$text_lines" 3 >files/text.log
head -c $((1 << 20)) /dev/zero >files/zeros.bin # written zeros, not a hole
gen bytes 200000 4 >files/dup-a.bin
cp files/dup-a.bin files/dup-b.bin # same content, two inodes

# --- sparse files: data at three scattered offsets (one unaligned, one at
# the very end), a file ending in a hole, a file that is all hole ---------------
mkdir sparse
truncate -s "$sparse_size" sparse/big.img
big=$(stat -c %s sparse/big.img)
stream=10
for off in 12305 $((big / 2 - 4096)) $((big - piece)); do
	stream=$((stream + 1))
	gen bytes "$piece" "$stream" | dd of=sparse/big.img bs=64K seek="$off" oflag=seek_bytes conv=notrunc status=none
done
gen bytes 70000 20 >sparse/tail-hole.img
truncate -s 20M sparse/tail-hole.img
truncate -s 10M sparse/all-hole.img

# --- directories 30 deep -------------------------------------------------------
d=deep
for i in $(seq -w 1 30); do d=$d/d$i; done
mkdir -p "$d"
echo "bottom of the chain" >"$d/leaf.txt"

# --- many small files in one directory (a large tree blob) -------------------
mkdir many
for i in $(seq 1 "$many"); do
	printf '{"id": %d, "seed": %d, "r": %d}\n' "$i" "$seed" "$RANDOM" >"many/item-$i.json"
done

# --- symlinks ------------------------------------------------------------------
mkdir links
ln -s ../files/one-byte links/relative
ln -s /etc/hostname links/absolute
ln -s does/not/exist links/dangling
ln -s ../deep links/to-dir
ln -s self links/self
ln -s "$(printf 'long-component-%.0s' $(seq 1 60))end" links/long-target # ~900 bytes
ln -s "ünï cødé/ target" links/unicode-target

# --- hardlinks: one group of 3 names across directories ------------------------
mkdir -p hard/a hard/b
gen bytes 10000 21 >hard/a/first
ln hard/a/first hard/b/second
ln hard/a/first hard/third

# --- special files -------------------------------------------------------------
mkdir special
mkfifo special/fifo
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' special/socket
if [ $root = 1 ]; then
	mknod special/char-1-3 c 1 3 2>/dev/null || true
	mknod special/block-7-200 b 7 200 2>/dev/null || true
fi

# --- names -----------------------------------------------------------------------
mkdir names
for n in 'unicode-ünïcødé-日本語-🙂' 'with space' $'new\nline' '-leading-dash' ' leading space' \
	'trailing space ' $'tab\there' $'latin1-\xe9-invalid-utf8' 'back\slash' "quote\"s'" '*glob?[x]' \
	'...' '.hidden' "$(printf 'L%.0s' $(seq 1 255))"; do
	printf '%s\n' "$n" >"names/$n"
done
mkdir $'names/dir\nwith newline'
echo inside >$'names/dir\nwith newline/file'

# --- modes ---------------------------------------------------------------------
mkdir -p perm/d0555 perm/sticky perm/setgid-dir
echo inside >perm/d0555/inside.txt
echo run >perm/setuid
echo run >perm/setgid
echo ro >perm/m0444
echo all >perm/m0777
chmod 4755 perm/setuid
chmod 2755 perm/setgid
chmod 0444 perm/m0444
chmod 0777 perm/m0777
chmod 1777 perm/sticky
chmod 2775 perm/setgid-dir
if [ "$unreadable" = 1 ]; then
	mkdir perm/d0000
	echo secret >perm/m0000
	echo inside >perm/d0000/inside.txt
	echo wo >perm/m0200
fi
# perm/m0000, perm/m0200, perm/d0000 and perm/d0555 get their modes at the very end

# --- xattrs and ACLs (only where the filesystem takes them) ---------------------
mkdir -p xattrs/dir
echo attrs >xattrs/file
if command -v setfattr >/dev/null && setfattr -n user.probe -v 1 xattrs/file 2>/dev/null; then
	setfattr -x user.probe xattrs/file
	setfattr -n user.comment -v "a comment" xattrs/file
	setfattr -n user.binary -v 0x00ff0a5c00 xattrs/file
	setfattr -n user.empty xattrs/file
	setfattr -n user.big -v "0x$(gen bytes 2000 22 | od -An -v -tx1 | tr -d ' \n')" xattrs/file
	setfattr -n user.dirattr -v "on a directory" xattrs/dir
	setfattr -n user.linked -v "on a hardlink" hard/a/first
fi
if [ $acl = 1 ] && command -v setfacl >/dev/null; then
	echo acl >xattrs/acl-file
	setfacl -m u:1234:r,g:5678:rw xattrs/acl-file 2>/dev/null || rm -f xattrs/acl-file
	setfacl -d -m u:1234:rx xattrs/dir 2>/dev/null || true
fi

# --- foreign owners (root only; chown before chmod: chown clears setuid) --------
if [ $root = 1 ]; then
	mkdir -p owner/dir
	echo owned >owner/file
	echo owned >owner/dir/file
	echo owned >owner/setuid
	ln -s file owner/link
	chown 1234:5678 owner/file owner/dir owner/setuid
	chown 4321:8765 owner/dir/file
	chown -h 1234:5678 owner/link
	chmod 4750 owner/setuid
fi

# --- mtimes with nanoseconds: every non-directory first, then directories
# deepest first (creating an entry changes its directory's mtime) ---------------
# stamp PATH: set ts to a time in 2017..2023 with nanoseconds, from an FNV-1a
# hash of the seed and PATH, so an entry's time does not depend on which
# other entries exist. (No subshell: it runs a few thousand times.)
stamp() {
	local s="$seed/$1" h=2166136261 i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$((((h ^ (c & 255)) * 16777619) & 0xffffffff))
	done
	printf -v ts '@%d.%09d' $((1500000000 + h % 200000000)) $((((h ^ (h >> 13)) * 40503) % 1000000000))
}
while IFS= read -r -d '' p; do
	stamp "$p"
	touch -h -d "$ts" -- "$p"
done < <(find . ! -type d -print0 | sort -z)
touch -d @-86400.123456789 files/one-byte          # before 1970
touch -d @4102444800.999999999 files/empty         # year 2100
touch -d @1600000000.000000000 files/small.bin     # whole second
touch -h -d @1234567890.000000001 links/relative   # a symlink's own mtime
while IFS= read -r -d '' p; do
	stamp "$p"
	touch -d "$ts" -- "$p"
done < <(find . -depth -type d -print0 | sort -z -r)

# Restrictive modes last: they would stop the walks above for a non-root user.
# chmod changes ctime only, so the mtimes stay.
chmod 0555 perm/d0555
if [ "$unreadable" = 1 ]; then
	chmod 0000 perm/m0000 perm/d0000
	chmod 0200 perm/m0200
fi
