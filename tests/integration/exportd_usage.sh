# fabvault-exportd refuses bad input with a clear message and the exit status
# of its manual (docs/fabvault-exportd.8.md, EXIT STATUS): usage 2, export
# root missing or not a directory 3, node key missing or unusable 4, address
# in use 5. Loopback only.
. "$(dirname "$0")/lib.sh"
X=$FV_BUILD/fs/fabvault-exportd
node_keys "$T" a b
mkdir "$T/src"
echo data >"$T/file"
L=tcp://127.0.0.1:0

assert_exit 0 "$X" --help
assert_exit 2 "$X" --export "$T/src"
assert_stderr 'listen'
assert_exit 2 "$X" --export "$T/src" --listen udp://127.0.0.1 --conf-dir "$T/a"
assert_stderr 'tcp://'
assert_exit 2 "$X" --bogus-option
assert_exit 2 "$X" --export "$T/src" --listen "$L" --conf-dir "$T/a" --poll-us -1
assert_stderr 'poll-us takes a number'
for v in 0 4097 many; do
	assert_exit 2 "$X" --export "$T/src" --listen "$L" --conf-dir "$T/a" --handles-per-client "$v"
	assert_stderr 'handles-per-client takes a number from 1 to 4096'
done
printf '[exportd]\npoll_us = soon\n' >"$T/bad.conf"
assert_exit 2 "$X" --config "$T/bad.conf" --export "$T/src" --listen "$L" --conf-dir "$T/a"
assert_stderr 'bad.conf:2: unknown key, bad value'
assert_exit 3 "$X" --export "$T/missing" --listen "$L" --conf-dir "$T/a"
assert_stderr "$T/missing"
assert_exit 3 "$X" --export "$T/file" --listen "$L" --conf-dir "$T/a"
assert_stderr 'not a directory'
assert_exit 4 "$X" --export "$T/src" --listen "$L" --conf-dir "$T/nokeys"
assert_stderr 'gen-node'
chmod 644 "$T/a/node.key"
assert_exit 4 "$X" --export "$T/src" --listen "$L" --conf-dir "$T/a"
assert_stderr 'chmod 600'
chmod 600 "$T/a/node.key"

# the address in use: a first exportd holds the port, a second one is refused
"$X" --export "$T/src" --listen "$L" --conf-dir "$T/a" --port-file "$T/port" 2>"$T/first.log" &
first=$!
on_exit "kill $first 2>/dev/null; wait $first 2>/dev/null"
for _ in $(seq 50); do
	[ -s "$T/port" ] && break
	sleep 0.1
done
[ -s "$T/port" ] || fail "the first exportd did not start: $(cat "$T/first.log")"
assert_exit 5 "$X" --export "$T/src" --listen "tcp://127.0.0.1:$(cat "$T/port")" --conf-dir "$T/a"
assert_stderr 'listen'
echo "fabvault-exportd bad input: ok"
