# The transport over TCP between two network namespaces joined by two veth
# pairs (two paths): every request and bulk size, thousands in flight, one
# path cut mid-stream with no request failing and the path coming back,
# integrity and encrypted sessions, refused keys on either side, garbage
# bytes to the port, an unreachable peer.
. "$(dirname "$0")/lib.sh"
netns_pair
node_keys "$T" a b
# c knows the server's key, but the server does not know c's
fv key gen-node --dir "$T/c" --name c >/dev/null 2>&1
cp "$T/a/node.pub" "$T/c/authorized_peers"
TP=$FV_BUILD/tests/tpcheck
P0=tcp://10.200.1.1:7420 P1=tcp://10.200.2.1:7420

netns_check "$NS_A"
ip netns exec "$NS_A" "$FV_BIN" fabric serve --conf-dir "$T/a" --listen "$P0,$P1" 2>"$T/serve.log" &
on_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
wait_for "$T/serve.log" "listening on $P1"

echo "--- encrypted, both paths, cut path 1 mid-stream"
in_ns "$NS_B" "$TP" --key "$T/b/node.key" --peers "$T/b/authorized_peers" --mode encrypt \
	--down "ip link set $IF_B1 down" --up "ip link set $IF_B1 up" --down-path 1 "$P0" "$P1" | tee "$T/enc.out"
grep -q '^passed' "$T/enc.out" || fail "tpcheck (encrypt) failed"
grep -q 'peer .b. connected (encrypted)' "$T/serve.log" || fail "the server did not log an encrypted session"

echo "--- integrity only"
in_ns "$NS_B" "$TP" --key "$T/b/node.key" --peers "$T/b/authorized_peers" --mode integrity --inflight 1000 \
	"$P0" "$P1" | tee "$T/int.out"
grep -q '^passed' "$T/int.out" || fail "tpcheck (integrity) failed"
grep -q 'connected (integrity only)' "$T/serve.log" || fail "the server did not log an integrity session"

echo "--- a key the server does not know: refused, exit 12, logged on both sides"
assert_exit 12 in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/c" --count 1 "$P0"
assert_stderr 'refused the connection: key not authorized'
fp=$("$FV_BIN" key show --dir "$T/c" --json | json_field fingerprint)
wait_for "$T/serve.log" "refused: client key $fp is not in authorized_peers"

echo "--- a server key the client does not know: refused, exit 12"
cp "$T/c/node.pub" "$T/only_c"
assert_exit 12 in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --peers "$T/only_c" --count 1 "$P0"
assert_stderr 'server key [0-9a-f]{16} is not in our authorized peers'

echo "--- garbage to the port: that connection closes, the server keeps serving"
in_ns "$NS_B" bash -c 'exec 3<>/dev/tcp/10.200.1.1/7420; head -c 4096 /dev/urandom >&3; sleep 0.5; exec 4<>/dev/tcp/10.200.2.1/7420; printf "GET / HTTP/1.0\r\n\r\n%060d" 0 >&4; sleep 0.5'
wait_for "$T/serve.log" 'malformed frame|bad magic'
in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 3 --interval 0 "$P0,$P1" >"$T/ping.out"
grep -c 'tcp://10.200' "$T/ping.out" | grep -qx 2 || fail "ping after garbage: $(cat "$T/ping.out")"
# callers that never spin (every reply wakes a sleeping caller) and that spin long
for spin in 0 100000; do
	in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 200 --interval 0 --spin-us $spin --json "$P0,$P1" >"$T/spin.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [p["ok"] for p in d] == [200, 200], d' "$T/spin.json" ||
		fail "ping --spin-us $spin: $(cat "$T/spin.json")"
done

echo "--- ping and bench: JSON per path"
in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 5 --interval 0 --json "$P0,$P1" >"$T/ping.json"
python3 - "$T/ping.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 2 and all(p["ok"] == 5 and p["p50_us"] > 0 and p["p99_us"] >= p["p50_us"] for p in v), v
PY
in_ns "$NS_B" "$FV_BIN" fabric bench --conf-dir "$T/b" --seconds 0.5 --size 65536 --verify --json "$P0,$P1" >"$T/bench.json"
python3 - "$T/bench.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 3, v  # each path, then both
assert all(r["errors"] == 0 and r["verify_failures"] == 0 and r["requests"] > 0 for r in v), v
assert all(p["requests"] > 0 for p in v[2]["per_path"]), v[2]  # both paths carried the combined run
PY

echo "--- a path bound to its local address (?from=), and one bound to an address we do not have"
in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 3 --interval 0 "$P0?from=10.200.1.2" >"$T/from.out"
grep -Eq "from=10.200.1.2 +3 +3 " "$T/from.out" || fail "ping with ?from=: $(cat "$T/from.out")"
assert_exit 11 in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 1 --timeout 2000 "$P0?from=10.200.7.7"
assert_stderr 'cannot bind to local address 10.200.7.7'

echo "--- a port nobody listens on: exit 11, says so"
assert_exit 11 in_ns "$NS_B" "$FV_BIN" fabric ping --conf-dir "$T/b" --count 1 --timeout 2000 tcp://10.200.1.1:7999
assert_stderr 'connection refused'

echo "--- usage errors: exit 2"
assert_exit 2 "$FV_BIN" fabric ping --conf-dir "$T/b"
assert_exit 2 "$FV_BIN" fabric ping --conf-dir "$T/b" 'udp://10.200.1.1'
assert_stderr 'not of the form|unknown kind'
assert_exit 2 "$FV_BIN" fabric bench --conf-dir "$T/b" --size 0 "$P0"
assert_exit 2 "$FV_BIN" fabric serve --conf-dir "$T/a"
assert_exit 2 "$FV_BIN" fabric ping --conf-dir "$T/b" --spin-us abc "$P0"
assert_stderr 'spin-us wants a whole number'
assert_exit 2 "$FV_BIN" fabric ping --conf-dir "$T/b" --poll-us -1 "$P0"
assert_stderr 'poll-us wants a whole number'
echo "transport over TCP: ok"
