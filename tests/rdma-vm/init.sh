#!/bin/busybox sh
# shellcheck shell=dash
# /init of the fabvault rdma-vm guests (busybox sh), put there by vm.sh.
#
# Role from the kernel command line (fvrole=server|client). Loads the modules
# in /fv/modules (in name order), brings up lo, eth0 (rail 0) and eth1
# (rail 1) with the addresses below and rxe0/rxe1 on them, then runs
# /fv/$role.sh with /bin/sh (dash: busybox sh would prefer its applets to
# the real ip; busybox's applets are symlinks in /usr/bin). The client first waits until it can ping the
# server on both rails. Lines for vm.sh on the console:
#   FV-SETUP-FAILED: <why>   setup went wrong; the command did not run
#   FV-EXIT: <status>        the command's exit status
# The client powers off after its command; the server keeps its network up
# until vm.sh stops it.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
export PATH
ip=/usr/bin/ip # iproute2's, not the busybox applet

# no /dev/console in the archive (it is built without root): make one first
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

fail() {
	echo "FV-SETUP-FAILED: $*"
	# keep the console output together before the host reacts
	sleep 1
	poweroff -f
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t tmpfs -o mode=0755 tmpfs /run || fail "mount /run"
# /tmp becomes a tmpfs holding what the archive put there (--file /tmp/...)
mkdir -p /run/tmp
mount -t tmpfs -o mode=1777 tmpfs /run/tmp || fail "mount tmpfs for /tmp"
cp -a /tmp/. /run/tmp/ || fail "copy /tmp"
mount --move /run/tmp /tmp || fail "mount --move /run/tmp /tmp"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm

role=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in fvrole=*) role=${arg#fvrole=} ;; esac
done
case $role in
server) n=1 peer=2 ;;
client) n=2 peer=1 ;;
*) fail "no fvrole=server|client on the kernel command line" ;;
esac
hostname "fv-$role"

FV_MTU=1500
# shellcheck source=/dev/null # written by vm.sh
. /fv/config

for ko in /fv/modules/*.ko; do
	[ -e "$ko" ] || continue
	insmod "$ko" || fail "insmod $ko"
done
[ -d /sys/kernel/config ] && mount -t configfs configfs /sys/kernel/config

$ip link set lo up || fail "ip link set lo up"
for rail in 0 1; do
	dev=eth$rail
	mac=52:54:00:00:0$((rail + 1)):0$n
	[ "$(cat /sys/class/net/$dev/address 2>/dev/null)" = "$mac" ] ||
		fail "$dev is not the NIC with MAC $mac: $($ip -br link 2>&1 | tr '\n' ';')"
	$ip link set "$dev" mtu "$FV_MTU" || fail "ip link set $dev mtu $FV_MTU"
	$ip addr add "10.200.$((rail + 1)).$n/24" dev "$dev" || fail "address on $dev"
	$ip link set "$dev" up || fail "ip link set $dev up"
	rdma link add "rxe$rail" type rxe netdev "$dev" || fail "rdma link add rxe$rail type rxe netdev $dev"
	[ -e "/sys/class/infiniband/rxe$rail" ] || fail "no /sys/class/infiniband/rxe$rail after rdma link add"
done

export FV_ROLE="$role"
export FV_SERVER_ADDR0=10.200.1.1 FV_SERVER_ADDR1=10.200.2.1
export FV_CLIENT_ADDR0=10.200.1.2 FV_CLIENT_ADDR1=10.200.2.2
export FV_RDMA_DEV0=rxe0 FV_RDMA_DEV1=rxe1
export HOME=/root TERM=dumb

if [ "$role" = client ]; then
	# the server's network is up when it answers on both rails
	for addr in "10.200.1.$peer" "10.200.2.$peer"; do
		i=0
		until ping -c 1 -W 1 "$addr" >/dev/null 2>&1; do
			i=$((i + 1))
			[ $i -lt 120 ] || fail "server $addr does not answer ping"
		done
	done
fi

echo "FV-START: $role $(cut -d' ' -f1 /proc/uptime)s"
cd /tmp || fail "cd /tmp"
/bin/sh "/fv/$role.sh"
rc=$?
echo
echo "FV-EXIT: $rc"

if [ "$role" = client ]; then
	sync
	poweroff -f
fi
# the server waits for the host to stop it
while :; do
	sleep 3600
done
