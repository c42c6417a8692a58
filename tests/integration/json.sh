#!/usr/bin/env bash
# json.sh: every --json output is valid JSON that scripts can rely on
# (fabvault(1)): init, snapshot, check and restore print one object, list an
# array, ls one object per line (JSON lines), whatever the names in the
# snapshot hold (gentree's: newline, tab, quote, backslash, unicode, invalid
# UTF-8, 255 bytes). Also checked: the fields the manual names are there, ls
# --json has one line per entry (as many as ls), snapshot --json's id is the
# one list shows, and the paths of valid UTF-8 names are the real names.
# Parsed with python3 (strict: RFC 8259 requires UTF-8).
. "$(dirname "$0")/lib.sh"

need_cmd python3 # gentree.sh needs it too; jq is not strict about UTF-8

T=$(realpath "$T")
repo=$T/repo src=$T/src
gentree "$src"

# json_doc WHAT FILE [FIELD...]: FILE is one JSON object (or array of
# objects) holding each FIELD
json_doc() {
	local what=$1 file=$2
	shift 2
	python3 - "$file" "$@" <<-'EOF' || fail "$what --json: not valid JSON with the expected fields (output in $file): $(head -c 2000 "$file")"
		import json, sys
		with open(sys.argv[1], "rb") as f:
		    doc = json.loads(f.read().decode("utf-8"))
		for o in doc if isinstance(doc, list) else [doc]:
		    for k in sys.argv[2:]:
		        assert k in o, "no field %r in %r" % (k, o)
	EOF
}

fv_init "$repo" -q
fv init "$T/repo2" --kdf interactive --json >"$T/init.json"
json_doc init "$T/init.json"

fv snapshot "$repo" "$src" --json -t 'tag "quoted"' >"$T/snap.json"
json_doc snapshot "$T/snap.json" id files bytes new_bytes stored_bytes partial
fv list "$repo" --json >"$T/list.json"
json_doc list "$T/list.json" id time_ns host paths tags files bytes partial
python3 - "$T/snap.json" "$T/list.json" "$src" <<-'EOF' || fail "list --json does not match snapshot --json"
	import json, sys
	snap, lst = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
	assert len(lst) == 1 and lst[0]["id"] == snap["id"], (snap, lst)
	assert lst[0]["paths"] == [sys.argv[3]], lst[0]["paths"]
	assert lst[0]["tags"] == ['tag "quoted"'], lst[0]["tags"]
EOF

fv check "$repo" --json >"$T/check.json"
json_doc check "$T/check.json" ok errors
fv check "$repo" --read-data --json >"$T/check.json"
json_doc "check --read-data" "$T/check.json" ok errors
fv restore "$repo" latest --target "$T/out" --json >"$T/restore.json"
json_doc restore "$T/restore.json" files errors
fv restore "$repo" latest --target "$T/dry" --dry-run --json >"$T/dry.json"
python3 -c 'import json, sys; json.loads(sys.stdin.buffer.read().decode("utf-8"))' <"$T/dry.json" ||
	fail "restore --dry-run --json is not one JSON document: $(head -c 2000 "$T/dry.json")"

# ls --json: JSON lines, one per entry, every name
fv ls "$repo" latest >"$T/ls.txt"
fv ls "$repo" latest --json >"$T/ls.json"
assert_eq "$(wc -l <"$T/ls.json")" "$(wc -l <"$T/ls.txt")" "lines of ls --json (one per entry, as ls)"
errors=()
python3 - "$T/ls.json" "$src" <<-'EOF' || errors+=("ls --json is not valid JSON lines (output in $T/ls.json)")
	import json, os, sys
	src = sys.argv[2]
	seen, bad = set(), 0
	for n, line in enumerate(open(sys.argv[1], "rb"), 1):
	    try:
	        o = json.loads(line.decode("utf-8"))
	    except ValueError as e:
	        print("line %d: %s: %r" % (n, e, line[:200]))
	        bad += 1
	        continue
	    for k in ("path", "type", "mode", "uid", "gid", "size", "mtime_ns"):
	        assert k in o, "line %d: no %r: %r" % (n, k, o)
	    seen.add(o["path"])
	# every name of the source that is valid UTF-8 is there, spelled exactly
	for d, dirs, files in os.walk(src.encode()):
	    for name in dirs + files:
	        p = os.path.join(d, name)
	        try:
	            p = p.decode("utf-8")
	        except UnicodeDecodeError:
	            continue
	        assert p in seen, "ls --json lacks %r" % p
	sys.exit(1 if bad else 0)
EOF

# a source path and a tag that are not valid UTF-8: list --json still parses
bad=$T/$'latin1-\xe9-dir'
mkdir "$bad"
echo x >"$bad/file"
fv snapshot "$repo" "$bad" -q -t $'tag-\xe9'
fv list "$repo" --json >"$T/list.json"
python3 -c 'import json, sys; json.loads(sys.stdin.buffer.read().decode("utf-8"))' <"$T/list.json" ||
	errors+=("list --json with a source path and a tag that are not UTF-8 is not valid JSON (output in $T/list.json)")

[ ${#errors[@]} = 0 ] || fail "$(printf '%s\n' "${errors[@]}")"
