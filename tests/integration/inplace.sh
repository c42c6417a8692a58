#!/usr/bin/env bash
# Files updated in place in scattered pages (SQLite databases, HNSW vector
# segments, any file that keeps its size while its content changes) are cut
# in fixed blocks, so a day's scattered updates store only the touched
# blocks, where content-defined chunks of ~1 MiB would store nearly the whole
# file again. Restores stay byte-exact and the database stays valid.
. "$(dirname "$0")/lib.sh"
need_cmd python3
python3 -c 'import sqlite3' 2>/dev/null || skip "python3 has no sqlite3 module"

src=$T/src
mkdir -p "$src"
db=$src/chroma.sqlite3
python3 - "$db" <<'PY'
import os, random, sqlite3, sys
r = random.Random(11)
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA page_size=4096")
con.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, doc TEXT, embedding BLOB)")
with con:
    for i in range(6000):
        con.execute("INSERT INTO memories VALUES (?, ?, ?)",
                    (i, "memory %d %s" % (i, "x" * r.randrange(50, 400)), os.urandom(3072)))
con.close()
PY
head -c 8000000 /dev/urandom >"$src/vectors.bin"
sleep 1.1
size=$(stat -c %s "$db")

fv_init "$T/repo"
fv snapshot "$T/repo" "$src" --json >/dev/null

# day 2: 1% of the rows updated, scattered
python3 - "$db" <<'PY'
import os, random, sqlite3, sys
r = random.Random(12)
con = sqlite3.connect(sys.argv[1])
with con:
    for i in r.sample(range(6000), 60):
        con.execute("UPDATE memories SET embedding = ? WHERE id = ?", (os.urandom(3072), i))
con.close()
PY
sleep 1.1
fv snapshot "$T/repo" "$db" --json >"$T/day2.json"
stored=$(json_field stored_bytes <"$T/day2.json")
echo "database of $size bytes, 1% of rows updated: $stored bytes stored"
[ "$stored" -lt $((size * 35 / 100)) ] ||
	fail "scattered updates of a SQLite database stored $stored of $size bytes (fixed blocks expected)"

fv restore "$T/repo" latest --target "$T/r" --verify -q
cmp "$db" "$T/r/${db#/}" || fail "the restored database differs"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); assert c.execute("PRAGMA integrity_check").fetchone()[0]=="ok"' \
	"$T/r/${db#/}" || fail "the restored database fails PRAGMA integrity_check"

# a plain file that keeps its size while changing: fixed blocks from the
# change on (the first switch stores it once more), then cheap
rewrite() {
	python3 - "$src/vectors.bin" "$1" <<'PY'
import os, random, sys
r = random.Random(int(sys.argv[2]))
with open(sys.argv[1], "r+b") as f:
    for _ in range(8):
        f.seek(r.randrange(0, 8000000 - 4096))
        f.write(os.urandom(4096))
PY
	sleep 1.1
}
rewrite 1
fv snapshot "$T/repo" "$src/vectors.bin" --json >/dev/null
rewrite 2
fv snapshot "$T/repo" "$src/vectors.bin" --json >"$T/v.json"
stored=$(json_field stored_bytes <"$T/v.json")
echo "8 MB file, 8 scattered 4 KiB rewrites: $stored bytes stored"
[ "$stored" -lt 1000000 ] || fail "scattered rewrites of a same-size file stored $stored bytes"
fv restore "$T/repo" latest --target "$T/r2" -q
cmp "$src/vectors.bin" "$T/r2/${src#/}/vectors.bin" || fail "the restored file differs"
fv check "$T/repo" --read-data -q
