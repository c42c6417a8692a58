#!/usr/bin/env bash
# demo.sh: the README's quick start ends with scripts/demo; it must succeed
# (exit 0: backup, restore equal to the source, check, the transport on
# loopback) and leave no temporary directory behind.
. "$(dirname "$0")/lib.sh"
export TMPDIR=$T
FV_BIN=$FV_BIN "$FV_SRC/scripts/demo" >"$T/demo.log" 2>&1 || {
	tail -n 20 "$T/demo.log" >&2
	fail "scripts/demo failed"
}
grep -q 'identical, metadata included' "$T/demo.log" || fail "the demo's restore was not compared equal: $(tail -n 5 "$T/demo.log")"
grep -q '^summary:' "$T/demo.log" || fail "the demo printed no summary"
left=$(find "$T" -maxdepth 1 -name 'fabvault-demo.*')
[ -z "$left" ] || fail "the demo left $left behind"
echo "scripts/demo: ok"
