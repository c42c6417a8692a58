# fabvault key: a node key pair is written with the right modes and never
# overwritten by accident; bad input gets a message and a non-zero exit.
. "$(dirname "$0")/lib.sh"
fv key gen-node --dir "$T/k" --name clu >"$T/out" 2>/dev/null
[ "$(stat -c %a "$T/k/node.key")" = 600 ] || fail "node.key is not mode 600"
grep -q '^fvnode1:[A-Za-z0-9+/=]* clu$' "$T/k/node.pub" || fail "node.pub: $(cat "$T/k/node.pub")"
pub=$(head -n 1 "$T/out")
assert_eq "$pub" "$(cut -d' ' -f1 "$T/k/node.pub")" "printed public key"
fv key show --dir "$T/k" --json | json_field fingerprint | grep -Eq '^[0-9a-f]{16}$' || fail "show --json"
before=$(cat "$T/k/node.key")
assert_exit 1 fv key gen-node --dir "$T/k"
assert_stderr 'not overwriting.*--force'
assert_eq "$(cat "$T/k/node.key")" "$before" "node.key after a refused gen-node"
fv key gen-node --dir "$T/k" --force >/dev/null 2>&1
[ "$(cat "$T/k/node.key")" != "$before" ] || fail "--force did not replace the key"
chmod 640 "$T/k/node.key"
assert_exit 1 fv key show --dir "$T/k"
assert_stderr 'chmod 600'
printf 'not a key\n' >"$T/k/node.key"
chmod 600 "$T/k/node.key"
assert_exit 1 fv key show --dir "$T/k"
assert_stderr 'not a fabvault node key'
assert_exit 1 fv key show --dir "$T/none"
assert_stderr 'gen-node'
assert_exit 2 fv key
assert_exit 2 fv key frobnicate
assert_exit 0 fv key --help
echo "fabvault key: ok"
