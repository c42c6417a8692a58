#!/usr/bin/env bash
# fs.sh [--runs N] [--scale S] [--seed N] [--file-mib N] [--seconds S] [--workdir DIR]
#       [--keep] [--json FILE] [--build DIR] [--op-timeout S] [--fs-opts OPTS]
#
# The remote filesystem benchmark: fabvault-fs (the FUSE client of a
# fabvault-exportd export) against sshfs, in one run, over ONE veth pair
# (MTU 9000) between two network namespaces that the script makes itself
# (A 10.200.8.1/24: fabvault-exportd, sshd, iperf3 -s; B 10.200.8.2/24: the
# clients, fabvault-fs and sshfs) and removes on exit; nothing is sent to any
# other address. The export is a directory holding the memory-system dataset
# (tests/bench/gen_memsys.py, --scale S, default 1: ~1.5 GB, ~20,000 files)
# in data/ and one file of --file-mib MiB (default 1024) of random bytes.
# Each run of the --runs (default 3) measures, for each tool in turn (local,
# fabvault-fs --mode integrity, fabvault-fs --mode encrypt, sshfs; the order
# rotates from run to run), each with a COLD cache (the FUSE filesystem
# mounted afresh, then `sync; echo 3 >/proc/sys/vm/drop_caches`: the client's
# and the server's caches are both empty, so the server reads from the disk):
#   1 seq read   `dd if=FILE of=/dev/null bs=1M` of the big file      MB/s
#   2 find+stat  `find data -printf '%s %T@\n' | wc -l`               seconds
#   3 tar        `tar cf - -C data . | cat >/dev/null`                seconds, MB/s
# and the ceiling of the network, iperf3 (one TCP stream, A sends, B receives,
# the direction of the reads). "local" runs the same commands on the export
# directory itself: the ceiling of the disk and the page cache.
# Prints a table of medians and the issue's targets, MET or NOT MET, for each
# fabvault-fs mode: seq read >= 3x sshfs and >= 35% of iperf3; find+stat
# >= 3x sshfs; tar >= 4x sshfs. --json FILE writes the same, every sample in.
#
# The binaries are those of the meson build directory --build DIR (or
# $FV_BUILD): tools/fabvault, fs/fabvault-exportd, fs/fabvault-fs; by default
# a release build in build-release/ of this source tree, built if needed.
# The work directory is a new /tmp/fabvault-fsbench.* removed at the end unless
# --keep; with --workdir DIR the dataset is made in DIR once and reused by
# later runs with the same --scale, --seed (and --file-mib for the big file);
# only the run's own files (keys, logs, mount point) are removed from it.
# --fs-opts OPTS adds -o options to fabvault-fs (e.g. readahead=8,threads=4).
# fabvault-exportd is restarted before each fabvault-fs mount (see below).
# Needs root, ip (iproute2), nsenter, iperf3, sshfs, sshd (openssh-server),
# fusermount3, python3, GNU tar. Never run by tests/run or CI.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)

usage() {
	echo "usage: fs.sh [--runs N] [--scale S] [--seed N] [--file-mib N] [--seconds S] [--workdir DIR]" >&2
	echo "             [--keep] [--json FILE] [--build DIR] [--op-timeout S] [--fs-opts OPTS]" >&2
	exit 2
}

runs=3 scale=1 seed=1 file_mib=1024 seconds=5 work='' keep=0 json='' build=${FV_BUILD:-} op_timeout=900 fs_opts=
while [ $# -gt 0 ]; do
	case $1 in
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
	--scale) [ $# -ge 2 ] || usage; scale=$2; shift 2 ;;
	--seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
	--file-mib) [ $# -ge 2 ] || usage; file_mib=$2; shift 2 ;;
	--seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
	--workdir) [ $# -ge 2 ] || usage; work=$2; shift 2 ;;
	--json) [ $# -ge 2 ] || usage; json=$2; shift 2 ;;
	--build) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
	--op-timeout) [ $# -ge 2 ] || usage; op_timeout=$2; shift 2 ;;
	--fs-opts) [ $# -ge 2 ] || usage; fs_opts=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || usage
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || usage
[[ $seed =~ ^[0-9]+$ ]] || usage
[[ $file_mib =~ ^[1-9][0-9]*$ ]] || usage
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage # iperf3 -t takes whole seconds
[[ $op_timeout =~ ^[1-9][0-9]*$ ]] || usage
[ -z "$json" ] || json=$(realpath -m "$json")

# --- what the bench needs -----------------------------------------------------------------
[ "$(id -u)" = 0 ] || { echo "fs.sh: makes network namespaces, mounts and drops caches: run it as root" >&2; exit 2; }
SFTP_SERVER=/usr/lib/openssh/sftp-server
missing=()
for c in python3:python3 iperf3:iperf3 ip:iproute2 nsenter:util-linux prlimit:util-linux sshfs:sshfs /usr/sbin/sshd:openssh-server \
	"$SFTP_SERVER":openssh-sftp-server ssh:openssh-client ssh-keygen:openssh-client fusermount3:fuse3 tar:tar \
	timeout:coreutils; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "fs.sh: missing packages: ${missing[*]}; install them with" >&2
	echo "  apt-get install -y ${missing[*]}" >&2
	exit 2
fi
[ -c /dev/fuse ] || { echo "fs.sh: no /dev/fuse (modprobe fuse)" >&2; exit 2; }
python3 -c 'import sqlite3' 2>/dev/null || {
	echo "fs.sh: python3 has no sqlite3 module (Debian: apt-get install -y libpython3-stdlib)" >&2
	exit 2
}
if [ -z "$build" ]; then
	build=$src/build-release
	[ -f "$build/build.ninja" ] || meson setup -Dbuildtype=release "$build" "$src" >/dev/null
	ninja -C "$build" >/dev/null
fi
build=$(realpath "$build")
fv=$build/tools/fabvault exportd=$build/fs/fabvault-exportd fvfs=$build/fs/fabvault-fs
for b in "$fv" "$exportd" "$fvfs"; do
	[ -x "$b" ] || { echo "fs.sh: $b is not an executable (build $build first: ninja -C $build)" >&2; exit 2; }
done
# fabvault-fs's modes, if it has the option
if "$fvfs" --help 2>/dev/null | grep -q 'mode='; then
	modes=(integrity encrypt)
else
	modes=(default)
fi

# --- the work directory ------------------------------------------------------------------------
if [ -n "$work" ]; then
	mkdir -p "$work"
	work=$(realpath "$work")
	# ours (a dataset stamp) or empty: anything else is someone's directory
	if [ ! -e "$work/data.stamp" ] && [ -n "$(ls -A "$work")" ]; then
		echo "fs.sh: $work is neither empty nor a work directory of fs.sh; give a new or empty one" >&2
		exit 2
	fi
	keep_work=1
else
	work=$(mktemp -d /tmp/fabvault-fsbench.XXXXXX)
	keep_work=$keep
fi
id=$$
rd=$work/run.$id # this run's own files: keys, ssh, logs, mount point
export_dir=$work/export
mnt=$rd/mnt
NS_A=fvfA$id NS_B=fvfB$id IF_A=fvf${id}a IF_B=fvf${id}b
ADDR_A=10.200.8.1 ADDR_B=10.200.8.2
P_IPERF=5201 P_FV=7420 P_SSH=22
servers=() # pids of the servers we started
made_ns=()
mpid=''        # the FUSE daemon mounted at $mnt, if any
xpid=''        # fabvault-exportd, while it runs
made_run_sshd= # /run/sshd, if we made it

cleanup() {
	local rc=$? p n
	set +e
	trap '' HUP INT TERM
	if grep -q " $mnt fuse" /proc/self/mounts 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	for p in $mpid $xpid "${servers[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in $mpid $xpid "${servers[@]}"; do
		wait "$p" 2>/dev/null
	done
	for n in "${made_ns[@]}"; do
		ip netns del "$n"
	done
	[ -z "$made_run_sshd" ] || rmdir /run/sshd 2>/dev/null
	if [ "$keep" = 1 ]; then
		echo "kept $work (this run's logs in $rd/logs)"
	elif [ "$keep_work" = 1 ]; then
		rm -rf "$rd"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$rd/logs" "$mnt"
logs=$rd/logs

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
t_start=$(date +%s)

# --- the dataset (made once per work directory, scale and seed) --------------------------------
want_data="gen_memsys.py --scale $scale --seed $seed"
if [ "$(cat "$work/data.stamp" 2>/dev/null)" = "$want_data" ] && [ -d "$export_dir/data" ]; then
	log "dataset: reusing $export_dir/data ($want_data)"
else
	log "dataset: generating $export_dir/data ($want_data; a few minutes at --scale 1)"
	rm -rf "$export_dir/data" "$work/data.stamp"
	mkdir -p "$export_dir"
	python3 "$here/gen_memsys.py" "$export_dir/data" --scale "$scale" --seed "$seed" >"$logs/gen.log" 2>&1 || {
		tail -n 20 "$logs/gen.log" >&2
		exit 1
	}
	echo "$want_data" >"$work/data.stamp"
fi
want_seq="$file_mib MiB of /dev/urandom"
if [ "$(cat "$work/seq.stamp" 2>/dev/null)" = "$want_seq" ] && [ -f "$export_dir/seq.bin" ]; then
	log "big file: reusing $export_dir/seq.bin ($want_seq)"
else
	log "big file: writing $export_dir/seq.bin ($want_seq)"
	rm -f "$export_dir/seq.bin" "$work/seq.stamp"
	head -c "$((file_mib << 20))" /dev/urandom >"$export_dir/seq.bin"
	echo "$want_seq" >"$work/seq.stamp"
fi
sync
# apparent bytes of the regular files (hardlinks once; a sparse file in full, as tar reads it)
read -r data_bytes data_files < <(find "$export_dir/data" -type f -printf '%i %s\n' | sort -u |
	awk '{s += $2} END {print s + 0, NR}')
data_entries=$(find "$export_dir/data" -printf '%s %T@\n' | wc -l)
seq_bytes=$(stat -c %s "$export_dir/seq.bin")
# absolute symbolic links: Debian's sshfs refuses them (contain_symlinks), tar exits 2 on them
mapfile -t abs_links < <(cd "$export_dir/data" && find . -type l -lname '/*')

# --- the namespaces, the keys and the servers -------------------------------------------------
# check_ns NS: fail unless NS is one this script made and it exists, so that
# nothing is ever sent on the host's network. in_ns NS CMD...: CMD inside NS,
# checked first.
check_ns() {
	case $1 in "$NS_A" | "$NS_B") ;; *) echo "fs.sh: '$1' is not our namespace" >&2; exit 1 ;; esac
	ip netns list | grep -qw "^$1" || { echo "fs.sh: namespace $1 does not exist" >&2; exit 1; }
}
in_ns() {
	check_ns "$1"
	ip netns exec "$@"
}

ip netns add "$NS_A" || { echo "fs.sh: cannot create network namespaces here" >&2; exit 2; }
made_ns+=("$NS_A")
ip netns add "$NS_B"
made_ns+=("$NS_B")
ip link add "$IF_A" type veth peer name "$IF_B"
ip link set "$IF_A" netns "$NS_A"
ip link set "$IF_B" netns "$NS_B"
ip -n "$NS_A" addr add "$ADDR_A/24" dev "$IF_A"
ip -n "$NS_B" addr add "$ADDR_B/24" dev "$IF_B"
ip -n "$NS_A" link set "$IF_A" mtu 9000 up
ip -n "$NS_B" link set "$IF_B" mtu 9000 up
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
# the client side must reach A over the veth and nothing else
in_ns "$NS_B" ip -o route get "$ADDR_A" | grep -q "dev $IF_B" ||
	{ echo "fs.sh: $ADDR_A is not reached through $IF_B in $NS_B" >&2; exit 1; }

# fabvault node keys: each side's node.pub in the other's authorized_peers
for n in a b; do
	"$fv" key gen-node --dir "$rd/$n" --name "fsbench-$n" >"$logs/key-$n.log" 2>&1
done
cp "$rd/b/node.pub" "$rd/a/authorized_peers"
cp "$rd/a/node.pub" "$rd/b/authorized_peers"

# sshd in A: its own configuration, host key and root's authorized key, all in $rd/ssh
mkdir -p "$rd/ssh"
chmod 700 "$rd/ssh"
ssh-keygen -q -t ed25519 -N '' -C fsbench-host -f "$rd/ssh/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C fsbench-client -f "$rd/ssh/client_ed25519"
cp "$rd/ssh/client_ed25519.pub" "$rd/ssh/authorized_keys"
echo "$ADDR_A $(cut -d' ' -f1,2 "$rd/ssh/host_ed25519.pub")" >"$rd/ssh/known_hosts"
cat >"$rd/ssh/sshd_config" <<EOF
ListenAddress $ADDR_A:$P_SSH
HostKey $rd/ssh/host_ed25519
PidFile $rd/ssh/sshd.pid
AuthorizedKeysFile $rd/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
Ciphers aes128-gcm@openssh.com
Subsystem sftp $SFTP_SERVER
EOF
[ -d /run/sshd ] || { mkdir -m 755 /run/sshd && made_run_sshd=1; }
# the ssh client of sshfs: no user or system configuration, this key, this host key only
cat >"$rd/ssh/ssh_config" <<EOF
Host $ADDR_A
  User root
  IdentityFile $rd/ssh/client_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $rd/ssh/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
EOF

# wait_for FILE ERE: until FILE has a line matching ERE (10 s at most)
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -E -q -e "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "fs.sh: no line matching /$2/ in $1 within 10 s; it has:" >&2
	cat "$1" >&2
	exit 1
}

# Servers start as plain commands, not through the in_ns function: ip netns exec
# execs the command, so $! is the server itself (the one cleanup kills).
check_ns "$NS_A"
ip netns exec "$NS_A" iperf3 -s --forceflush -B "$ADDR_A" -p "$P_IPERF" >"$logs/iperf3-server.log" 2>&1 &
servers+=($!)
ip netns exec "$NS_A" /usr/sbin/sshd -D -e -f "$rd/ssh/sshd_config" 2>"$logs/sshd.log" &
servers+=($!)
wait_for "$logs/iperf3-server.log" "Server listening"
wait_for "$logs/sshd.log" "Server listening on $ADDR_A"

# fabvault-exportd is started afresh before each fabvault-fs mount and stopped
# after it: its node table is server-wide and is not given back when
# fabvault-fs unmounts (each node a client looked up keeps an O_PATH
# descriptor until the server restarts: docs/fabvault-exportd.8.md), so one
# exportd for every measurement runs out of descriptors (ENFILE) after a few
# walks of the tree. Its descriptor limit is raised to 1048576 (the unit's
# LimitNOFILE= in the man page) where this shell may, else it is this shell's.
xpid='' xn=0
if prlimit --nofile=1048576:1048576 true 2>/dev/null; then
	xlimit=(prlimit --nofile=1048576:1048576)
else
	xlimit=()
fi
start_exportd() {
	xn=$((xn + 1))
	check_ns "$NS_A"
	ip netns exec "$NS_A" "${xlimit[@]}" "$exportd" -v --export "$export_dir" --listen "tcp://$ADDR_A:$P_FV" \
		--conf-dir "$rd/a" 2>"$logs/exportd-$xn.log" &
	xpid=$!
	wait_for "$logs/exportd-$xn.log" "exporting .* on .*$ADDR_A"
}
stop_exportd() {
	[ -n "$xpid" ] || return 0
	kill "$xpid" 2>/dev/null || true
	wait "$xpid" 2>/dev/null || true
	xpid=''
}
start_exportd # once, to know it starts, and its descriptor limit
exportd_nofile=$(awk '/^Max open files/ {print $5}' "/proc/$xpid/limits")
stop_exportd

# --- mounting and unmounting (in B's network, in this mount namespace) -------------------------
# The FUSE daemons run in B's network namespace only (nsenter --net): `ip
# netns exec` would also give them a private mount namespace, where their
# mount would be seen by nobody else. The commands measured then read the
# mount point from here: they send nothing themselves.
SSHFS_OPTS="ro,Ciphers=aes128-gcm@openssh.com,Compression=no"
tool_label() {
	case $1 in
	local) echo "local (the export directory)" ;;
	fv_default) echo "fabvault-fs" ;;
	fv_*) echo "fabvault-fs ${1#fv_}" ;;
	sshfs) echo "sshfs" ;;
	esac
}
mounted() { grep -q " $mnt fuse" /proc/self/mounts; }

# mount_tool TOOL: mount TOOL's view of the export at $mnt (foreground daemon,
# pid in $mpid); 0 once mounted, 1 (and the log's tail) if it did not within 60 s
mount_tool() {
	local t=$1 l=$logs/mount-$1.log i o
	check_ns "$NS_B"
	echo "--- run $run $op $(date +%T.%N)" >>"$l"
	case $t in
	fv_*)
		start_exportd
		o="paths=tcp://$ADDR_A:$P_FV,conf_dir=$rd/b${fs_opts:+,$fs_opts}"
		[ "$t" = fv_default ] || o="$o,mode=${t#fv_}"
		nsenter --net="/run/netns/$NS_B" "$fvfs" -f -o "$o" "$ADDR_A:/" "$mnt" 2>>"$l" &
		;;
	sshfs)
		nsenter --net="/run/netns/$NS_B" sshfs -f -F "$rd/ssh/ssh_config" -o "$SSHFS_OPTS" \
			"root@$ADDR_A:$export_dir" "$mnt" 2>>"$l" &
		;;
	esac
	mpid=$!
	for ((i = 0; i < 600; i++)); do
		mounted && return 0
		kill -0 "$mpid" 2>/dev/null || break
		sleep 0.1
	done
	echo "  mount of $t FAILED; $l ends with:"
	tail -n 5 "$l" | sed 's/^/    /'
	unmount_tool
	return 1
}

# unmount_tool: unmount $mnt and wait for its daemon to exit (10 s, then kill it)
unmount_tool() {
	local i
	if mounted; then
		fusermount3 -u "$mnt" 2>>"$logs/umount.log" || { sleep 1; fusermount3 -u "$mnt" 2>>"$logs/umount.log"; } ||
			umount -l "$mnt"
	fi
	if [ -n "$mpid" ]; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$mpid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$mpid" 2>/dev/null || true
		wait "$mpid" 2>/dev/null || true
		mpid=''
	fi
	stop_exportd
	! mounted || { echo "fs.sh: $mnt is still mounted" >&2; exit 1; }
}

# --- what was measured with what -------------------------------------------------------------
results=$rd/results # lines: OP TOOL RUN SECONDS [COUNT]; SECONDS "fail" when it failed
meta=$rd/meta       # lines: KEY VALUE
notes=$rd/notes     # free text, printed under the table
: >"$results"
: >"$notes"
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=clean
GIT_OPTIONAL_LOCKS=0 git -C "$src" diff --quiet HEAD 2>/dev/null || dirty=dirty
[ -z "$(GIT_OPTIONAL_LOCKS=0 git -C "$src" status --porcelain --untracked-files=normal -- fs 2>/dev/null)" ] || dirty=dirty
bt=$(python3 -c 'import json, sys
try:
    print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))
except Exception:
    print("unknown")' "$build/meson-info/intro-buildoptions.json")
{
	echo "commit $commit"
	echo "tree $dirty"
	echo "build $build"
	echo "buildtype $bt"
	echo "fabvault_version $("$fv" --version | awk '{print $2}')"
	echo "fvfs_version $("$fvfs" --version 2>&1 | head -n 1)"
	echo "sshfs_version $(sshfs --version 2>&1 | sed -n 's/^SSHFS version //p')"
	echo "openssh_version $(ssh -V 2>&1 | cut -d, -f1)"
	echo "iperf3_version $(iperf3 --version | head -n 1 | awk '{print $2}')"
	echo "sshfs_opts $SSHFS_OPTS"
	echo "fs_opts ${fs_opts:-(defaults)}"
	echo "exportd_nofile $exportd_nofile"
	echo "modes ${modes[*]}"
	echo "kernel $(uname -r)"
	echo "cpu $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
	echo "nproc $(nproc)"
	echo "runs $runs"
	echo "scale $scale"
	echo "seed $seed"
	echo "seconds $seconds"
	echo "data_bytes $data_bytes"
	echo "data_files $data_files"
	echo "data_entries $data_entries"
	echo "seq_bytes $seq_bytes"
	echo "abs_links ${#abs_links[@]}"
	echo "link veth $ADDR_B -> $ADDR_A, MTU 9000"
	echo "loadavg_start $(cut -d' ' -f1 /proc/loadavg)"
} >"$meta"

log "fabvault $(awk '$1 == "fabvault_version" {print $2}' "$meta") $commit ($dirty tree, $bt build) $build"
log "sshfs $(sshfs --version 2>&1 | sed -n 's/^SSHFS version //p') -o $SSHFS_OPTS; $(ssh -V 2>&1 | cut -d, -f1)"
log "namespaces $NS_A ($ADDR_A) <-> $NS_B ($ADDR_B), veth MTU 9000; work directory $work"
log "dataset $((data_bytes / 1000000)) MB in $data_files files ($data_entries entries); big file $((seq_bytes >> 20)) MiB"

# --- the measurements ---------------------------------------------------------------------------
fail() { # OP TOOL WHY LOG
	echo "$1 $2 $run fail" >>"$results"
	echo "  $1 $2 FAILED: $3; $4 ends with:"
	tail -n 5 "$4" | sed 's/^/    /'
}

# tar_ok TOOL RC ERR: whether tar's exit status RC is a success: 0; or, for
# sshfs only, 2 when every error is about one of the absolute symbolic links
# (Debian's sshfs refuses to read them: contain_symlinks)
tar_ok() {
	local t=$1 rc=$2 err=$3 line p ok
	[ "$rc" != 0 ] || return 0
	[ "$t" = sshfs ] && [ "$rc" = 2 ] && [ ${#abs_links[@]} -gt 0 ] || return 1
	while IFS= read -r line; do
		case $line in *"Exiting with failure status"*) continue ;; esac
		ok=0
		for p in "${abs_links[@]}"; do
			case $line in *"${p#./}:"*) ok=1 ;; esac
		done
		[ "$ok" = 1 ] || return 1
	done <"$err"
	return 0
}

# measure OP TOOL: one cold measurement. FUSE tools are mounted afresh, then
# every cache is dropped (client and server), then the command is timed.
measure() {
	local op=$1 t=$2 root l=$logs/run$run-$1-$2 t0 t1 s rc n
	if [ "$t" = local ]; then
		root=$export_dir
	else
		mount_tool "$t" || { echo "$op $t $run fail" >>"$results"; return 0; }
		root=$mnt
	fi
	sync
	echo 3 >/proc/sys/vm/drop_caches
	case $op in
	seq)
		t0=$EPOCHREALTIME
		rc=0
		timeout -k 10 "$op_timeout" dd if="$root/seq.bin" of=/dev/null bs=1M 2>"$l.err" || rc=$?
		t1=$EPOCHREALTIME
		n=$(sed -n 's/^\([0-9]*\) bytes.*/\1/p' "$l.err")
		if [ "$rc" != 0 ]; then
			fail "$op" "$t" "exit status $rc" "$l.err"
		elif [ "$n" != "$seq_bytes" ]; then
			fail "$op" "$t" "read ${n:-?} bytes of $seq_bytes" "$l.err"
		else
			s=$(python3 -c "print('%.3f' % ($t1 - $t0))")
			echo "$op $t $run $s $n" >>"$results"
			printf '  %-6s %-30s %8.2f s %8.1f MB/s\n' "$op" "$(tool_label "$t")" "$s" \
				"$(python3 -c "print($n / 1e6 / $s)")"
		fi
		;;
	find)
		t0=$EPOCHREALTIME
		n=$( (cd "$root/data" && timeout -k 10 "$op_timeout" find . -printf '%s %T@\n' 2>"$l.err") | wc -l) || true
		t1=$EPOCHREALTIME
		s=$(python3 -c "print('%.3f' % ($t1 - $t0))")
		if [ -s "$l.err" ] || [ "$n" = 0 ]; then
			fail "$op" "$t" "errors ($n entries)" "$l.err"
		else
			echo "$op $t $run $s $n" >>"$results"
			[ "$n" = "$data_entries" ] || echo "find over $(tool_label "$t") listed $n entries, the export $data_entries (run $run)" >>"$notes"
			printf '  %-6s %-30s %8.2f s %8d entries\n' "$op" "$(tool_label "$t")" "$s" "$n"
		fi
		;;
	tar)
		t0=$EPOCHREALTIME
		rc=0
		{
			rc=0
			timeout -k 10 "$op_timeout" tar cf - -C "$root/data" . 2>"$l.err" || rc=$?
			echo "$rc" >"$l.rc"
		} | cat >/dev/null
		t1=$EPOCHREALTIME
		rc=$(cat "$l.rc")
		s=$(python3 -c "print('%.3f' % ($t1 - $t0))")
		if tar_ok "$t" "$rc" "$l.err"; then
			echo "$op $t $run $s $rc" >>"$results"
			printf '  %-6s %-30s %8.2f s %8.1f MB/s%s\n' "$op" "$(tool_label "$t")" "$s" \
				"$(python3 -c "print($data_bytes / 1e6 / $s)")" \
				"$([ "$rc" = 0 ] || echo " (tar exit $rc: absolute symlinks refused)")"
		else
			fail "$op" "$t" "tar exit status $rc" "$l.err"
		fi
		;;
	esac
	[ "$t" = local ] || unmount_tool
}

m_iperf3() {
	local l=$logs/run$run-iperf3 v
	check_ns "$NS_B"
	if ! ip netns exec "$NS_B" iperf3 -c "$ADDR_A" -p "$P_IPERF" -t "$seconds" -R -J >"$l.json" 2>"$l.err"; then
		fail iperf3 net "iperf3 failed" "$l.err"
		return 0
	fi
	v=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"])' "$l.json")
	echo "iperf3 net $run $seconds $v" >>"$results"
	printf '  %-6s %-30s %8.2f s %8.1f MB/s\n' iperf3 "1 TCP stream, A -> B" "$seconds" \
		"$(python3 -c "print($v / 1e6 / $seconds)")"
}

tools=(local)
for m in "${modes[@]}"; do tools+=("fv_$m"); done
tools+=(sshfs)
ops=(seq find tar)
for run in $(seq 1 "$runs"); do
	# tools take turns going first
	k=$(((run - 1) % ${#tools[@]}))
	order=("${tools[@]:k}" "${tools[@]:0:k}")
	log "run $run/$runs: ${order[*]} (each cold: fresh mount, caches dropped on both sides)"
	m_iperf3
	for op in "${ops[@]}"; do
		for t in "${order[@]}"; do
			measure "$op" "$t"
		done
	done
done
op=end
{
	echo "loadavg_end $(cut -d' ' -f1 /proc/loadavg)"
	echo "elapsed_s $(($(date +%s) - t_start))"
	echo "exportd_sessions_integrity $(cat "$logs"/exportd-*.log | grep -c 'connected (integrity only)' || true)"
	echo "exportd_sessions_encrypted $(cat "$logs"/exportd-*.log | grep -c 'connected (encrypted)' || true)"
} >>"$meta"

# --- the report ----------------------------------------------------------------------------------
python3 - "$results" "$meta" "$notes" "$json" <<'PY'
import json, statistics, sys

res_path, meta_path, notes_path, json_path = sys.argv[1:5]
meta = dict(l.split(" ", 1) for l in open(meta_path).read().splitlines())
runs = int(meta["runs"])
modes = meta["modes"].split()
fv_tools = ["fv_" + m for m in modes]
tools = ["local"] + fv_tools + ["sshfs"]
samples = {}  # (op, tool) -> [(seconds, count) or None]
for line in open(res_path):
    f = line.split()
    samples.setdefault((f[0], f[1]), []).append(None if f[3] == "fail" else (float(f[3]), float(f[4])))

data_bytes, seq_bytes = int(meta["data_bytes"]), int(meta["seq_bytes"])

def label(t):
    if t == "local":
        return "local (export dir)"
    if t == "sshfs":
        return "sshfs"
    return "fabvault-fs" + ("" if t == "fv_default" else " " + t[3:])

def secs(op, t):
    v = [s[0] for s in samples.get((op, t), []) if s is not None]
    return statistics.median(v) if v else None

def mbps(op, t):
    if op == "iperf3":
        v = [s[1] / s[0] / 1e6 for s in samples.get(("iperf3", "net"), []) if s is not None]
        return statistics.median(v) if v else None
    size = seq_bytes if op == "seq" else data_bytes if op == "tar" else None
    v = [size / s[0] / 1e6 for s in samples.get((op, t), []) if s is not None] if size else []
    return statistics.median(v) if v else None

iperf = mbps("iperf3", "net")
op_names = {"seq": "1 seq read %d MiB" % (seq_bytes >> 20),
            "find": "2 find+stat %s entries" % format(int(meta["data_entries"]), ","),
            "tar": "3 tar | cat, %d MB" % (data_bytes // 10**6)}
rows = []
for op in ("seq", "find", "tar"):
    for t in tools:
        s = samples.get((op, t), [])
        r = {"op": op, "tool": t, "label": label(t), "median_s": secs(op, t), "median_mb_s": mbps(op, t),
             "runs_s": [None if x is None else x[0] for x in s], "failed_runs": sum(x is None for x in s)}
        sh, me = secs(op, "sshfs"), r["median_s"]
        r["x_sshfs"] = sh / me if sh and me else None  # time ratio: > 1 is faster than sshfs
        lo = secs(op, "local")
        r["pct_local"] = lo / me if lo and me else None
        rows.append(r)

targets = []
def target(name, t, value, limit, text):
    targets.append({"target": name, "tool": t, "ratio": value, "limit": limit, "text": text,
                    "met": None if value is None else value >= limit})
for t in fv_tools:
    r = {(x["op"]): x for x in rows if x["tool"] == t}
    target("seq read >= 3x sshfs", t, r["seq"]["x_sshfs"], 3, "x")
    m = r["seq"]["median_mb_s"]
    target("seq read >= 35% of iperf3", t, m / iperf if m and iperf else None, 0.35, "%")
    target("find+stat >= 3x sshfs", t, r["find"]["x_sshfs"], 3, "x")
    target("tar >= 4x sshfs", t, r["tar"]["x_sshfs"], 4, "x")

def f(v, fmt):
    return "fail" if v is None else fmt % v

print()
print("fabvault %s %s (%s tree, %s build) %s" % (meta["fabvault_version"], meta["commit"], meta["tree"],
                                                 meta["buildtype"], meta["build"]))
print("sshfs %s, %s, -o %s; iperf3 %s; kernel %s; %s cores (%s)" % (
    meta["sshfs_version"], meta["openssh_version"], meta["sshfs_opts"], meta["iperf3_version"], meta["kernel"],
    meta["nproc"], meta["cpu"]))
print("fabvault-fs -o paths=...,conf_dir=...,mode=MODE, extra options: %s; fabvault-exportd restarted before each"
      " mount, descriptor limit %s" % (meta["fs_opts"], meta["exportd_nofile"]))
print("%s; dataset gen_memsys.py --scale %s: %s bytes in %s files; big file %d MiB (random)" % (
    meta["link"], meta["scale"], format(data_bytes, ","), format(int(meta["data_files"]), ","), seq_bytes >> 20))
print("COLD: every measurement on a fresh mount after `sync; echo 3 >/proc/sys/vm/drop_caches` (client and")
print("server caches empty: the server reads from the disk). Median of %d run(s), tools rotating; MB/s = 10^6"
      " B/s; load average %s at the start, %s at the end" % (runs, meta["loadavg_start"], meta["loadavg_end"]))
print()
print("iperf3, 1 TCP stream A -> B (%s s): %s MB/s   (runs: %s)" % (meta["seconds"], f(iperf, "%.0f"), " ".join(
    "fail" if s is None else "%.0f" % (s[1] / s[0] / 1e6) for s in samples.get(("iperf3", "net"), []))))
print()
hdr = "%-26s %-22s %9s %9s %9s %9s  %s" % ("operation", "tool", "median s", "MB/s", "vs sshfs", "vs local",
                                          "runs (s)")
print(hdr)
print("-" * len(hdr))
last = None
for r in rows:
    name = op_names[r["op"]] if r["op"] != last else ""
    last = r["op"]
    print("%-26s %-22s %9s %9s %9s %9s  %s" % (
        name, r["label"], f(r["median_s"], "%.2f"), "" if r["op"] == "find" else f(r["median_mb_s"], "%.0f"),
        "" if r["tool"] == "sshfs" else f(r["x_sshfs"], "%.2fx"),
        "" if r["tool"] == "local" else f(r["pct_local"], "%.2fx"),
        " ".join(f(x, "%.2f") for x in r["runs_s"])))
print("(vs sshfs: sshfs's time / this one's, higher is better; vs local: local's time / this one's)")
print()
hdr = "%-30s %-22s %8s  %s" % ("target", "tool", "ratio", "verdict")
print(hdr)
print("-" * len(hdr))
for t in targets:
    v = "?" if t["ratio"] is None else ("%.0f%%" % (t["ratio"] * 100) if t["text"] == "%" else "%.2fx" % t["ratio"])
    print("%-30s %-22s %8s  %s" % (t["target"], label(t["tool"]), v,
                                    "? (a measurement failed)" if t["met"] is None else
                                    "MET" if t["met"] else "NOT MET"))
for r in rows:
    if r["failed_runs"]:
        print("note: %s %s failed in %d of %d runs%s" % (r["op"], r["label"], r["failed_runs"], runs,
                                                          "" if r["failed_runs"] == runs else " (median of the others)"))
if any(s is not None and s[1] == 2 for s in samples.get(("tar", "sshfs"), [])):
    print("note: tar over sshfs exited 2 (tolerated): Debian's sshfs refuses the dataset's %s absolute"
          " symbolic link(s) (contain_symlinks), so it stores those links' entries without a target" %
          meta["abs_links"])
for line in open(notes_path).read().splitlines():
    print("note: " + line)
verdicts = [t["met"] for t in targets]
print()
print("targets: %d MET, %d NOT MET%s; %s s in all" % (
    sum(v is True for v in verdicts), sum(v is False for v in verdicts),
    ", %d unknown (a measurement failed)" % sum(v is None for v in verdicts) if None in verdicts else "",
    meta["elapsed_s"]))

if json_path:
    out = {"meta": meta, "cache": "cold (fresh mount, drop_caches on client and server)", "iperf3_mb_s": iperf,
           "rows": rows, "targets": targets,
           "samples": {"%s %s" % k: [None if s is None else list(s) for s in v] for k, v in samples.items()}}
    with open(json_path, "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print("JSON written to %s" % json_path)
PY
