#!/usr/bin/env bash
# tests/rdma-vm/vm.sh: two qemu VMs (Debian's kernel, soft-RoCE) on two rails.
#
#   vm.sh prepare
#       Caches Debian's current kernel package (the one linux-image-amd64
#       depends on) unpacked under ${FV_VM_CACHE:-/var/cache/fabvault-rdma-vm}.
#       Idempotent; a no-op apart from one apt-cache lookup when it is there.
#
#   vm.sh run [--timeout SECONDS] [--log DIR] [--file HOSTPATH[:GUESTPATH]]...
#             --server 'CMD' --client 'CMD'
#       Boots VM "server" and VM "client" (TCG), joined by two qemu socket
#       networks on 127.0.0.1 (rail 0: eth0/rxe0 10.200.1.0/24, rail 1:
#       eth1/rxe1 10.200.2.0/24), runs CMD with /bin/sh in each and exits with
#       the client command's status. Exit 3: the harness failed (a VM did not
#       boot or set up its network/rxe, the server command failed before the
#       client finished, no result within the timeout); 2: usage. Consoles go
#       to DIR/server.log and DIR/client.log; the client's is echoed to stdout.
#       A guest line "FV-HOST: <server|client> <monitor command>" is sent to
#       that VM's qemu monitor (e.g. "FV-HOST: server set_link r1 off").
#
# Environment: FV_VM_CACHE (cache directory), FV_VM_MTU (guest NIC MTU,
# default 9000), FV_VM_MEM (MiB per VM, default 768), FV_VM_KEEP=1 (keep the
# work directory with the initramfs). See README.md beside this file.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${FV_VM_CACHE:-/var/cache/fabvault-rdma-vm}
multiarch=x86_64-linux-gnu
rxe_driver=/etc/libibverbs.d/rxe.driver
rc_harness=3

# insmod order inside the guest (dependencies first); see
# /work/shared/notes/rdma-vm.md: without crc32_generic rdma_rxe cannot start.
modules=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	failover net_failover virtio_net
	crc32_generic crc32c_generic configfs udp_tunnel ip6_udp_tunnel
	ib_core ib_uverbs iw_cm ib_cm rdma_cm rdma_ucm rdma_rxe
	fuse
)

die() {
	echo "vm.sh: $*" >&2
	exit "$rc_harness"
}

usage() {
	cat >&2 <<'EOF'
usage: vm.sh prepare
       vm.sh run [--timeout SECONDS] [--log DIR] [--file HOSTPATH[:GUESTPATH]]...
                 --server 'CMD' --client 'CMD'
EOF
	exit 2
}

need_cmd() {
	local c
	for c; do
		command -v "$c" >/dev/null ||
			die "'$c' not found: install it (apt-get install $(pkg_of "$c"))"
	done
}

pkg_of() {
	case $1 in
	qemu-system-x86_64) echo qemu-system-x86 ;;
	busybox) echo busybox-static ;;
	rping) echo rdmacm-utils ;;
	ip | rdma | ss) echo iproute2 ;;
	flock) echo util-linux ;;
	*) echo "the package providing $1" ;;
	esac
}

# --- prepare ---------------------------------------------------------------------

# The kernel package linux-image-amd64 currently points at, from apt's lists.
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

# Download and unpack package $1 into $cache/kernel/$1 (atomically).
fetch_kernel() {
	local pkg=$1 tmp deb
	tmp=$(mktemp -d "$cache/kernel/.tmp.XXXXXX")
	# apt's _apt sandbox user must be able to write the download directory
	chmod 0755 "$tmp"
	chown _apt "$tmp" 2>/dev/null || true
	if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.err"); then
		echo "vm.sh: apt-get download $pkg failed; running apt-get update and retrying" >&2
		apt-get update -q >/dev/null 2>&1 || true
		if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.err"); then
			cat "$tmp/apt.err" >&2
			rm -rf "$tmp"
			die "cannot download the kernel package $pkg (apt-get download)"
		fi
	fi
	deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
	[ -n "$deb" ] || { rm -rf "$tmp"; die "apt-get download $pkg left no .deb"; }
	dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
	rm -f "$deb" "$tmp/apt.err"
	if ! compgen -G "$tmp/root/boot/vmlinuz-*" >/dev/null ||
		! compgen -G "$tmp/root/lib/modules/*/kernel" >/dev/null; then
		rm -rf "$tmp"
		die "$pkg has no boot/vmlinuz-* or lib/modules/*/kernel"
	fi
	rm -rf "${cache:?}/kernel/$pkg"
	mv "$tmp/root" "$cache/kernel/$pkg"
	rm -rf "$tmp"
}

cmd_prepare() {
	local pkg have
	need_cmd qemu-system-x86_64 busybox cpio gzip rping ip rdma ss flock \
		apt-cache apt-get dpkg-deb sha256sum
	if [ ! -f "$rxe_driver" ] || ! compgen -G "/usr/lib/$multiarch/libibverbs/librxe-rdmav*.so" >/dev/null; then
		die "no rxe verbs provider ($rxe_driver, librxe-rdmav*.so): apt-get install ibverbs-providers"
	fi
	if ldd "$(command -v busybox)" >/dev/null 2>&1; then
		die "$(command -v busybox) is dynamically linked: apt-get install busybox-static"
	fi
	if ! mkdir -p "$cache/kernel" 2>/dev/null || [ ! -w "$cache" ]; then
		die "cache directory $cache is not writable: set FV_VM_CACHE"
	fi
	exec {lock_fd}>"$cache/lock"
	flock "$lock_fd"
	pkg=$(kernel_pkg)
	if [ -z "$pkg" ]; then
		echo "vm.sh: apt-cache knows no linux-image-amd64; running apt-get update" >&2
		apt-get update -q >/dev/null 2>&1 || true
		pkg=$(kernel_pkg)
	fi
	if [ -z "$pkg" ]; then
		have=$(cat "$cache/current" 2>/dev/null || true)
		if [ -z "$have" ] || [ ! -d "$cache/kernel/$have" ]; then
			die "cannot tell which kernel package linux-image-amd64 depends on (apt-cache depends)"
		fi
		echo "vm.sh: apt-cache cannot resolve linux-image-amd64; using cached $have" >&2
		pkg=$have
	fi
	if [ ! -d "$cache/kernel/$pkg" ]; then
		fetch_kernel "$pkg"
		# an older kernel is ~400 MB that nothing uses any more
		find "$cache/kernel" -mindepth 1 -maxdepth 1 -name 'linux-image-*' ! -name "$pkg" \
			-exec rm -rf {} +
	fi
	if [ "$(cat "$cache/current" 2>/dev/null || true)" != "$pkg" ]; then
		echo "$pkg" >"$cache/current.tmp"
		mv "$cache/current.tmp" "$cache/current"
	fi
	flock -u "$lock_fd"
	exec {lock_fd}>&-
	echo "vm.sh: kernel $pkg ready in $cache/kernel/$pkg"
}

# --- initramfs -------------------------------------------------------------------

# Guest path of host path $1 with the merged-/usr symlinks resolved, so that
# every archive stores real directories only under usr/.
guest_norm() {
	case $1 in
	/bin/* | /sbin/* | /lib/* | /lib64/*) echo "/usr$1" ;;
	*) echo "$1" ;;
	esac
}

is_elf() {
	[ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]
}

# Shared libraries ELF file $1 needs (absolute host paths), one a line.
elf_libs() {
	local out
	# ldd exits 1 for static binaries ("not a dynamic executable")
	out=$(ldd "$1" 2>&1) || return 0
	if grep -q 'not found' <<<"$out"; then
		die "$1: shared libraries missing on the host: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Copy host file $1 to guest path $2 under staging root $3 (following
# symlinks); for an ELF file also every library it needs, at its own path,
# unless the base archive has it (in_base, set by run_initramfs).
stage_file() {
	local src=$1 dst=$2 root=$3 lib libs
	mkdir -p "$root$(dirname "$dst")"
	cp -L --remove-destination "$src" "$root$dst"
	if is_elf "$src"; then
		libs=$(elf_libs "$src")
		for lib in $libs; do
			dst=$(guest_norm "$lib")
			[ -e "$root$dst" ] && continue
			[ -z "${in_base[$dst]+y}" ] || continue
			mkdir -p "$root$(dirname "$dst")"
			cp -L "$lib" "$root$dst"
		done
	fi
}

# Directory $1 as a gzipped newc archive $2 (entries owned by root).
pack_cpio() {
	(cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc -R 0:0 --quiet) |
		gzip -1 >"$2.tmp"
	mv "$2.tmp" "$2"
}

# Host path of kernel module $1 under $kroot/lib/modules/$kver/kernel, or
# nothing when it is built in; dies when it is neither.
module_path() {
	local m=$1 mdir=$kroot/lib/modules/$kver f alt=${1//_/-}
	f=$(find "$mdir/kernel" \( -name "$m.ko" -o -name "$m.ko.*" -o -name "$alt.ko" -o -name "$alt.ko.*" \) -print -quit)
	if [ -n "$f" ]; then
		echo "$f"
	elif ! grep -qE "/($m|$alt)\.ko$" "$mdir/modules.builtin" 2>/dev/null; then
		die "kernel module $m is neither in $mdir/kernel nor built in"
	fi
}

# Write the cached base initramfs (everything but the run's commands and
# --file files) for the prepared kernel; print its path.
base_initramfs() {
	local rxe_lib inputs key out stage m f dst n=0 a d i
	local -A in_base=()
	rxe_lib=$(compgen -G "/usr/lib/$multiarch/libibverbs/librxe-rdmav*.so" | head -n 1)
	# host path and guest path; the real tools go where busybox's would be.
	# Debian's busybox-static runs its own applets in preference to PATH
	# (FEATURE_SH_STANDALONE): its sh would run its own ip, not iproute2's,
	# so /bin/sh is dash and bash is there too; init.sh alone uses busybox sh.
	local -a elves=(
		"$(command -v busybox)" /usr/bin/busybox
		"$(command -v dash)" /usr/bin/dash
		"$(command -v dash)" /usr/bin/sh
		"$(command -v bash)" /usr/bin/bash
		"$(command -v ip)" /usr/bin/ip
		"$(command -v rdma)" /usr/bin/rdma
		"$(command -v rping)" /usr/bin/rping
		"$rxe_lib" "$rxe_lib"
		"/usr/lib/$multiarch/libgcc_s.so.1" "/usr/lib/$multiarch/libgcc_s.so.1"
	)
	local -a mods=()
	for m in "${modules[@]}"; do
		f=$(module_path "$m")
		mods+=("$m:${f:-builtin}")
	done
	# the key: what goes in (names, sizes, mtimes incl. libraries) and how
	inputs=$(
		for ((i = 0; i < ${#elves[@]}; i += 2)); do
			echo "${elves[i]}"
			elf_libs "${elves[i]}"
		done | sort -u | xargs stat -L -c '%n %s %Y'
		printf '%s\n' "${mods[@]}"
		echo "$kroot/boot/vmlinuz-$kver"
		sha256sum "$here/init.sh" "$here/vm.sh"
		echo "mtu=$mtu"
	)
	key=$(sha256sum <<<"$inputs" | cut -c1-16)
	out=$cache/initramfs/base-$key.cpio.gz
	if [ -s "$out" ] && [ -f "$out.files" ]; then
		echo "$out"
		return
	fi
	mkdir -p "$cache/initramfs"
	stage=$work/base
	mkdir -p "$stage"/usr/{bin,sbin,lib/$multiarch,lib64} "$stage"/{dev,proc,sys,tmp,run,root,etc/libibverbs.d,fv/modules}
	for d in bin sbin lib lib64; do
		ln -s "usr/$d" "$stage/$d"
	done
	for ((i = 0; i < ${#elves[@]}; i += 2)); do
		stage_file "${elves[i]}" "${elves[i + 1]}" "$stage"
	done
	cp "$rxe_driver" "$stage/etc/libibverbs.d/"
	# busybox applets for every name not taken by a real binary
	for a in $(busybox --list); do
		[ -e "$stage/usr/bin/$a" ] || ln -s busybox "$stage/usr/bin/$a"
	done
	for m in "${mods[@]}"; do
		f=${m#*:}
		m=${m%%:*}
		[ "$f" = builtin ] && continue
		n=$((n + 1))
		dst=$stage/fv/modules/$(printf '%02d' "$n")-$m.ko
		case $f in
		*.ko) cp "$f" "$dst" ;;
		*.ko.xz) xz -dc "$f" >"$dst" ;;
		*.ko.zst) zstd -qdc "$f" >"$dst" ;;
		*.ko.gz) gzip -dc "$f" >"$dst" ;;
		*) die "$f: unknown module compression" ;;
		esac
		is_elf "$dst" || die "$f did not decompress to an ELF module"
	done
	printf 'FV_MTU=%s\n' "$mtu" >"$stage/fv/config"
	cp "$here/init.sh" "$stage/init"
	chmod 0755 "$stage/init"
	pack_cpio "$stage" "$out"
	# its files, so that runs do not add libraries it already has
	(cd "$stage" && find . -type f -printf '/%P\n') >"$out.files"
	rm -rf "$stage"
	# keep the newest few
	find "$cache/initramfs" -name 'base-*.cpio.gz' -printf '%T@ %p\n' | sort -rn |
		tail -n +6 | cut -d' ' -f2- | xargs -r -I{} rm -f {} {}.files
	echo "$out"
}

# The per-run archive: /fv/server.sh, /fv/client.sh and the --file files;
# $1 is the base archive.
run_initramfs() {
	local stage=$work/run spec src dst out=$work/run.cpio.gz f
	local -A in_base=()
	while IFS= read -r f; do
		in_base[$f]=1
	done <"$1.files"
	mkdir -p "$stage/fv"
	printf '%s\n' "$server_cmd" >"$stage/fv/server.sh"
	printf '%s\n' "$client_cmd" >"$stage/fv/client.sh"
	for spec in "${files[@]}"; do
		src=${spec%%:*}
		dst=${spec#*:}
		[ "$dst" != "$spec" ] || dst=$src
		case $dst in /*) ;; *) die "--file $spec: GUESTPATH must be absolute" ;; esac
		[ -e "$src" ] || die "--file $spec: $src does not exist"
		src=$(realpath -e -- "$src")
		dst=$(guest_norm "$dst")
		if [ -d "$src" ]; then
			while IFS= read -r -d '' f; do
				stage_file "$f" "$dst${f#"$src"}" "$stage"
			done < <(find "$src" -type f -print0)
		else
			stage_file "$src" "$dst" "$stage"
		fi
	done
	pack_cpio "$stage" "$out"
	echo "$out"
}

# --- run -------------------------------------------------------------------------

# Set $port to a random TCP port nothing on this host uses now.
free_port() {
	while :; do
		port=$((20000 + RANDOM % 40000))
		[ -n "$(ss -Htan "sport = :$port" 2>/dev/null)" ] || return 0
	done
}

listening() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# Read VM $1's console from stdin: log it, echo the client's, act on FV- lines.
watch_console() {
	local vm=$1 line target cmd fd
	set +e # a closed stdout must not stop the logging
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line" >>"$log/$vm.log"
		[ "$vm" = client ] && printf 'client| %s\n' "$line"
		# init.sh's markers may follow console output that lacked a newline
		case $line in
		*'FV-EXIT: '*)
			echo "${line##*FV-EXIT: }" >"$work/$vm.rc"
			;;
		*'FV-SETUP-FAILED: '*)
			echo "${line##*FV-SETUP-FAILED: }" >"$work/$vm.setup-failed"
			;;
		'FV-HOST: '*)
			cmd=${line#FV-HOST: }
			target=${cmd%% *}
			cmd=${cmd#* }
			case $target in
			server) fd=$mon_fd_server ;;
			client) fd=$mon_fd_client ;;
			*)
				echo "vm.sh: $vm asked for unknown VM '$target': $line" >>"$log/$vm.log"
				continue
				;;
			esac
			echo "[vm.sh] $vm -> $target monitor: $cmd" >>"$log/host.log"
			printf '%s\n' "$cmd" >&"$fd"
			;;
		esac
	done
}

# Start VM $1 (server|client); rails: ports $2 $3; listen or connect.
start_vm() {
	local vm=$1 p0=$2 p1=$3 how n
	if [ "$vm" = server ]; then how=listen n=1; else how=connect n=2; fi
	# without the firmware's and the kernel's terminal resets and escapes
	sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c78]//g' -e 's/\r$//' \
		<"$work/$vm.console" | watch_console "$vm" &
	pids+=($!)
	qemu-system-x86_64 -name "fv-$vm" -accel tcg -cpu max -m "$mem" -smp 1 \
		-nographic -no-reboot -nic none \
		-chardev "pipe,id=mon0,path=$work/$vm.mon" -mon chardev=mon0,mode=readline \
		-kernel "$kroot/boot/vmlinuz-$kver" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet fvrole=$vm" \
		-netdev "socket,id=r0,$how=127.0.0.1:$p0" \
		-device "virtio-net-pci,netdev=r0,mac=52:54:00:00:01:0$n,addr=0x4,romfile=" \
		-netdev "socket,id=r1,$how=127.0.0.1:$p1" \
		-device "virtio-net-pci,netdev=r1,mac=52:54:00:00:02:0$n,addr=0x5,romfile=" \
		</dev/null >"$work/$vm.console" 2>&1 &
	qpid[$vm]=$!
	pids+=($!)
}

cleanup() {
	local rc=$? p
	set +e
	trap - EXIT
	trap '' INT TERM HUP
	# before the client's result any failure is the harness's (not a signal)
	if [ "$result" != 1 ] && [ "$rc" -lt 128 ] && [ "$rc" != "$rc_harness" ]; then
		echo "vm.sh: FAILED: unexpected error (status $rc); logs in ${log:-nowhere yet}" >&2
		rc=$rc_harness
	fi
	for p in "${qpid[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	# a log directory made for a run that failed before writing anything
	[ "$log_made" = 0 ] || rmdir "$log" 2>/dev/null
	if [ -n "$work" ]; then
		if [ "${FV_VM_KEEP:-0}" = 1 ]; then
			echo "vm.sh: kept work directory $work" >&2
		else
			rm -rf "$work"
		fi
	fi
	exit "$rc"
}

# Seconds since $1 (an $EPOCHREALTIME), to the millisecond.
since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}

harness_fail() {
	local vm
	echo "vm.sh: FAILED: $*" >&2
	for vm in server client; do
		echo "---- last lines of $log/$vm.log ----" >&2
		tail -n 25 -- "$log/$vm.log" >&2 2>/dev/null || true
	done
	echo "vm.sh: logs in $log" >&2
	exit "$rc_harness"
}

cmd_run() {
	local timeout=300 server_cmd='' client_cmd='' have_server=0 have_client=0
	local -a files=()
	log=''
	while [ $# -gt 0 ]; do
		case $1 in
		--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
		--log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
		--file) [ $# -ge 2 ] || usage; files+=("$2"); shift 2 ;;
		--server) [ $# -ge 2 ] || usage; server_cmd=$2; have_server=1; shift 2 ;;
		--client) [ $# -ge 2 ] || usage; client_cmd=$2; have_client=1; shift 2 ;;
		*) usage ;;
		esac
	done
	[ $have_server = 1 ] || usage
	[ $have_client = 1 ] || usage
	[[ $timeout =~ ^[1-9][0-9]*$ ]] || usage

	need_cmd qemu-system-x86_64 busybox cpio gzip rping ip rdma ss flock sha256sum
	mtu=${FV_VM_MTU:-9000}
	mem=${FV_VM_MEM:-768}
	local pkg
	pkg=$(cat "$cache/current" 2>/dev/null || true)
	if [ -z "$pkg" ] || [ ! -d "$cache/kernel/$pkg" ]; then
		cmd_prepare >&2
		pkg=$(cat "$cache/current")
	fi
	[ -w "$cache" ] || die "cache directory $cache is not writable: set FV_VM_CACHE"
	kroot=$cache/kernel/$pkg
	kver=$(basename "$(compgen -G "$kroot/lib/modules/*" | head -n 1)")
	[ -f "$kroot/boot/vmlinuz-$kver" ] || die "no $kroot/boot/vmlinuz-$kver: run vm.sh prepare"

	if [ -z "$log" ]; then
		log=$(mktemp -d "${TMPDIR:-/tmp}/fv-rdma-vm.XXXXXX")
		log_made=1
	fi
	mkdir -p "$log"
	log=$(cd "$log" && pwd)
	rm -f "$log"/{server,client,host}.log "$log"/{server,client}.monitor.log

	work=$(mktemp -d "${TMPDIR:-/tmp}/fv-rdma-vm-work.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	local t0=$EPOCHREALTIME base run vm
	exec {lock_fd}>"$cache/lock"
	flock "$lock_fd"
	base=$(base_initramfs)
	flock -u "$lock_fd"
	exec {lock_fd}>&-
	run=$(run_initramfs "$base")
	# the kernel unpacks concatenated archives in order: run's files win
	initrd=$work/initrd.cpio.gz
	cat "$base" "$run" >"$initrd"
	echo "[vm.sh] initramfs $(du -k "$initrd" | cut -f1) KiB ($base + run) in $(since "$t0") s" >>"$log/host.log"

	# monitors: qemu's pipe chardev reads $vm.mon.in and writes $vm.mon.out;
	# opened read-write here so that neither side ever blocks or sees EOF
	for vm in server client; do
		mkfifo "$work/$vm.console" "$work/$vm.mon.in" "$work/$vm.mon.out"
		cat <>"$work/$vm.mon.out" >>"$log/$vm.monitor.log" &
		pids+=($!)
	done
	exec {mon_fd_server}<>"$work/server.mon.in" {mon_fd_client}<>"$work/client.mon.in"

	# server first (it listens); its ports must be bound before the client connects
	local p0 p1 try=0 i port
	while :; do
		try=$((try + 1))
		free_port
		p0=$port
		free_port
		p1=$port
		[ "$p0" != "$p1" ] || continue
		start_vm server "$p0" "$p1"
		for ((i = 0; i < 100; i++)); do
			listening "$p0" && listening "$p1" && break
			kill -0 "${qpid[server]}" 2>/dev/null || break
			sleep 0.1
		done
		listening "$p0" && listening "$p1" && break
		kill "${qpid[server]}" 2>/dev/null || true
		wait "${qpid[server]}" 2>/dev/null || true
		[ $try -lt 5 ] || harness_fail "server qemu did not listen on 127.0.0.1:$p0/$p1"
		echo "[vm.sh] server qemu did not listen on $p0/$p1; retrying" >>"$log/host.log"
		mv "$log/server.log" "$log/server.try$try.log" 2>/dev/null || true
	done
	echo "[vm.sh] rails on 127.0.0.1:$p0 and 127.0.0.1:$p1; server up $(since "$t0") s after the start" >>"$log/host.log"
	start_vm client "$p0" "$p1"

	local deadline=$((SECONDS + timeout)) rc
	while :; do
		if [ -f "$work/client.rc" ]; then
			rc=$(cat "$work/client.rc")
			break
		fi
		for vm in server client; do
			if [ -f "$work/$vm.setup-failed" ]; then
				harness_fail "$vm VM setup failed: $(cat "$work/$vm.setup-failed")"
			fi
		done
		if [ -f "$work/server.rc" ] && [ "$(cat "$work/server.rc")" != 0 ]; then
			harness_fail "server command exited $(cat "$work/server.rc") before the client finished"
		fi
		for vm in server client; do
			if ! kill -0 "${qpid[$vm]}" 2>/dev/null; then
				# let its console watcher read the last lines, then look again
				sleep 0.5
				[ -f "$work/client.rc" ] && continue 2
				harness_fail "$vm qemu exited before the client command finished (boot failure or guest crash?)"
			fi
		done
		[ $SECONDS -lt $deadline ] || harness_fail "no FV-EXIT from the client within $timeout s"
		sleep 0.2
	done
	echo "[vm.sh] client exited $rc $(since "$t0") s after the start" >>"$log/host.log"
	# the client powers itself off; let it, so its console ends cleanly
	for ((i = 0; i < 50; i++)); do
		kill -0 "${qpid[client]}" 2>/dev/null || break
		sleep 0.1
	done
	[[ $rc =~ ^[0-9]+$ ]] || harness_fail "client reported a bad exit status '$rc'"
	echo "vm.sh: client exited $rc; logs in $log"
	result=1
	return "$rc"
}

main() {
	[ $# -ge 1 ] || usage
	local cmd=$1
	shift
	work='' log='' log_made=0 result=0
	declare -gA qpid=()
	pids=()
	case $cmd in
	prepare) [ $# -eq 0 ] || usage; cmd_prepare ;;
	run) cmd_run "$@" ;;
	*) usage ;;
	esac
}

main "$@"
