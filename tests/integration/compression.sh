#!/usr/bin/env bash
# Compression pays where it can: text shrinks, float32 vectors shrink by
# what entropy coding their exponents gives (the noisy path,
# repository-format.md "Blobs"), random bytes (like already-compressed
# files) are stored raw without growing, and all come back byte for byte.
. "$(dirname "$0")/lib.sh"
need_cmd python3

mkdir -p "$T/src"
head -c 4000000 /dev/urandom >"$T/src/random.bin"
python3 - "$T/src/log.txt" <<'PY'
import random, sys
r = random.Random(7)
words = ["memory", "search", "vector", "insert", "update", "chroma", "query", "ok", "error", "ms"]
with open(sys.argv[1], "w") as f:
    for i in range(120000):
        f.write("2026-11-23T21:%02d:%02d id=%d %s\n" % (i // 3600 % 60, i % 60, r.randrange(10**6),
                " ".join(r.choice(words) for _ in range(6))))
PY
# 4 MB of float32 vectors (dim 768, unit-variance components), as in an HNSW
# index: the mantissas are noise, the exponents are not
python3 - "$T/src/vectors.bin" <<'PY'
import random, struct, sys
r = random.Random(11)
with open(sys.argv[1], "wb") as f:
    for _ in range(1300):
        f.write(struct.pack("<768f", *(r.gauss(0, 1) for _ in range(768))))
PY
sleep 1.1
text=$(stat -c %s "$T/src/log.txt")
vec=$(stat -c %s "$T/src/vectors.bin")

fv_init "$T/repo"
fv snapshot "$T/repo" "$T/src/random.bin" --json >"$T/a.json"
stored=$(json_field stored_bytes <"$T/a.json")
# raw plus per-blob overhead (frame 12 + seal 40 + encoding byte 1) and a tree
[ "$stored" -le $((4000000 + 4096)) ] || fail "random data grew when stored: $stored bytes for 4000000"

fv snapshot "$T/repo" "$T/src/log.txt" --json >"$T/b.json"
stored=$(json_field stored_bytes <"$T/b.json")
[ "$stored" -lt $((text / 2)) ] || fail "text was not compressed: $stored bytes stored for $text"

fv snapshot "$T/repo" "$T/src/vectors.bin" --json >"$T/c.json"
stored=$(json_field stored_bytes <"$T/c.json")
[ "$stored" -lt $((vec * 96 / 100)) ] || fail "float vectors were not compressed: $stored bytes stored for $vec"
[ "$stored" -gt $((vec * 80 / 100)) ] || fail "float vectors shrank implausibly: $stored bytes stored for $vec"

fv restore "$T/repo" "$(json_field id <"$T/b.json")" --target "$T/r" --verify -q
cmp "$T/src/log.txt" "$T/r/${T#/}/src/log.txt" || fail "text differs after restore"
rm -rf "$T/r"
fv restore "$T/repo" latest --target "$T/r" --verify -q
cmp "$T/src/vectors.bin" "$T/r/${T#/}/src/vectors.bin" || fail "float vectors differ after restore"
fv check "$T/repo" --read-data -q
