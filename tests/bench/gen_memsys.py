#!/usr/bin/env python3
"""gen_memsys.py: the memory-system dataset of tests/bench/memsys.sh.

  gen_memsys.py DIR [--scale S] [--seed N]
      Generate under DIR (absent or empty) a tree like /opt/memory-system/data
      of an AI memory system; S=1.0 (the default) is ~1.5 GB apparent:
        chroma.sqlite3       ~300 MB SQLite database (page_size 4096): table
                             embeddings(id, embedding_id UNIQUE, document,
                             metadata JSON, embedding BLOB float32 x 768, ...)
        <uuid>/              3 HNSW segments (hnswlib layout): header.bin,
                             data_level0.bin (per element: int32 count + 32
                             int32 neighbours, float32 x 768, int64 label),
                             length.bin, link_lists.bin, index_metadata.pickle;
                             ~700 MB of vectors in all
        memories/YYYY/MM/DD/<uuid>.json  ~20,000 JSON memories, 300 B - 4 KB
        logs/*.log           ~200 MB of text logs (application and access log)
        symlinks (relative, absolute), one hardlink (memories/index.json and
        snapshots/index-latest.json), one sparse file (prealloc/arena.bin,
        256 MiB apparent, 4 MiB of data).
      Counts and sizes scale with S. The same seed and S give the same bytes
      (with the same SQLite version).

  gen_memsys.py mutate DIR [--seed N] [--json FILE]
      Apply the day-2 change to a tree made by gen with the same seed and S:
      ~1% of the log bytes appended; 1% of the SQLite rows inserted and 1%
      updated (real SQL, random ids); 500 x S JSON memories added and 100 x S
      deleted; 5% of the vectors of one data_level0.bin rewritten in place;
      4 KiB inserted at the start of the largest rotated log (file rewritten).
      Prints the "ideal" day-2 size: the 4 KiB blocks of the changed files
      whose content did not exist in that file before (so a shift by a whole
      block costs only the inserted block) plus the new files' bytes, raw and
      through zstd -3 when zstd is installed. --json FILE writes it as JSON.
      Metadata (directories, names, times) is not counted.

Python 3 standard library only.
"""

import argparse
import hashlib
import json
import os
import pickle
import random
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import time
import uuid

DIM = 768
M = 16
M0 = 2 * M
LINKS = 4 * (1 + M0)  # int32 count + M0 int32 neighbours
ELEM = LINKS + 4 * DIM + 8  # links, vector, int64 label
BLOCK = 4096

# Full-scale sizes (S = 1.0).
SQLITE_ROWS = 65000  # ~300 MB
HNSW_ELEMS = 218000  # ~700 MB, split over the segments below
HNSW_SPLIT = (0.50, 0.35, 0.15)
MEMORIES = 20000
LOG_BYTES = 200 << 20
SPARSE = 256 << 20
SPARSE_DATA = 4 << 20
DAY2_ADD, DAY2_DEL = 500, 100

WORDS = (
    "user prefers dark mode remembers project deadline meeting notes summary embedding recall "
    "context session agent tool result follow up the a of to and in that is was for on with as "
    "it be at by this from have or an they which you were her all she there would their we him "
    "been has when who will more no if out so said what up its about into than them can only "
    "other new some could time these two may then do first any my now such like our over man me "
    "even most made after also did many before must through back years where much your way well "
    "down should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another know "
    "while last might us great old year off come since against go came right used take three "
    "kubernetes cluster gpu inference latency vector index query cache backup restore node fabric "
    "rdma model prompt token conversation preference reminder calendar email travel budget"
).split()

KINDS = ("fact", "preference", "episode", "summary", "task", "reflection", "observation")
SOURCES = ("chat", "email", "calendar", "voice", "tool", "import", "agent")


def sentence(r, n):
    return " ".join(r.choices(WORDS, k=n))


def rand_uuid(r):
    return str(uuid.UUID(int=r.getrandbits(128), version=4))


# float32 vectors that look like normalised 768-d embeddings (components
# ~N(0, 0.036)): random mantissas and signs, exponents drawn from the range
# such components take, so they compress like real embeddings (~10%).
# bytes.translate on every 4th byte keeps this fast without numpy.
_EXP = bytes(
    (v & 0x80) | (59 if (v & 0x7F) < 22 else 60 if (v & 0x7F) < 78 else 61 if (v & 0x7F) < 127 else 62)
    for v in range(256)
)


def vectors(r, n):
    b = bytearray(r.randbytes(4 * DIM * n))
    b[3::4] = bytes(b[3::4]).translate(_EXP)
    return bytes(b)


def write(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# --- SQLite ------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE collections (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, dimension INTEGER,
                          metadata TEXT);
CREATE TABLE embeddings (id INTEGER PRIMARY KEY, embedding_id TEXT NOT NULL UNIQUE,
                         collection_id TEXT NOT NULL REFERENCES collections(id),
                         document TEXT, metadata TEXT, embedding BLOB,
                         created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE maintenance_log (id INTEGER PRIMARY KEY, operation TEXT, timestamp TEXT);
"""


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def row(r, seg_ids, t):
    doc = sentence(r, r.randrange(15, 200))
    meta = {
        "kind": r.choice(KINDS),
        "source": r.choice(SOURCES),
        "session": "%016x" % r.getrandbits(64),
        "importance": round(r.random(), 4),
        "tags": r.sample(WORDS, 3),
    }
    return (rand_uuid(r), r.choice(seg_ids), doc, json.dumps(meta), vectors(r, 1), iso(t), iso(t))


def gen_sqlite(root, r, rows, seg_ids):
    path = os.path.join(root, "chroma.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=DELETE")
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    for i, s in enumerate(seg_ids):
        db.execute("INSERT INTO collections VALUES (?,?,?,?)",
                   (s, "memories-%d" % i, DIM, json.dumps({"hnsw:space": "cosine", "hnsw:M": M})))
    db.execute("COMMIT")
    t = 1704067200  # 2024-01-01
    sql = ("INSERT INTO embeddings (embedding_id, collection_id, document, metadata, embedding,"
           " created_at, updated_at) VALUES (?,?,?,?,?,?,?)")
    done = 0
    while done < rows:
        n = min(2000, rows - done)
        batch = []
        for _ in range(n):
            t += r.randrange(1, 400)
            batch.append(row(r, seg_ids, t))
        db.execute("BEGIN")
        db.executemany(sql, batch)
        db.execute("COMMIT")
        done += n
    db.close()


# --- HNSW segments ------------------------------------------------------------------------


def links(r, n, least, most):
    """A neighbour list: int32 count in [least, most], then most int32 ids < n (unused ones 0)."""
    raw = struct.unpack("<%dI" % (most + 1), r.randbytes(4 * (most + 1)))
    cnt = least + raw[0] % (most - least + 1)
    return struct.pack("<I%di" % most, cnt, *[x % n for x in raw[1:cnt + 1]], *([0] * (most - cnt)))


def gen_segment(root, r, name, n):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "data_level0.bin"), "wb") as f:
        label = 0
        while label < n:
            k = min(1024, n - label)
            vecs = vectors(r, k)
            out = bytearray()
            for i in range(k):
                out += links(r, n, M, M0)
                out += vecs[i * 4 * DIM:(i + 1) * 4 * DIM]
                out += struct.pack("<q", label + i)
            f.write(out)
            label += k
    # levels: P(level >= l) = (1/M)^l, as hnswlib draws them
    levels = []
    for _ in range(n):
        lv = 0
        while r.random() < 1.0 / M and lv < 6:
            lv += 1
        levels.append(lv)
    lengths = [lv * 4 * (1 + M) for lv in levels]
    write(d, "length.bin", struct.pack("<%dI" % n, *lengths))
    ll = bytearray()
    for lv in levels:
        for _ in range(lv):
            ll += links(r, n, 1, M)
    write(d, "link_lists.bin", bytes(ll))
    entry = max(range(n), key=lambda i: levels[i])
    write(d, "header.bin", struct.pack("<QQQQQQiIQQQdQ", 0, n, n, ELEM, LINKS + 4 * DIM, LINKS,
                                       levels[entry], entry, M, M0, M, 1.0 / 2.302585092994046,
                                       200))
    ids = {rand_uuid(r): i for i in range(n)}
    meta = {"dimensionality": DIM, "total_elements_added": n, "max_seq_id": n,
            "id_to_label": ids, "label_to_id": {v: k for k, v in ids.items()},
            "id_to_seq_id": {k: v + 1 for k, v in ids.items()}}
    write(d, "index_metadata.pickle", pickle.dumps(meta, protocol=4))


# --- JSON memories --------------------------------------------------------------------------

DAY0 = 1704067200  # 2024-01-01
DAYS = 546


def memory(r, t):
    m = {
        "id": rand_uuid(r),
        "created_at": iso(t),
        "kind": r.choice(KINDS),
        "source": r.choice(SOURCES),
        "text": sentence(r, r.randrange(5, 100) if r.random() < 0.85 else r.randrange(100, 540)),
        "tags": r.sample(WORDS, r.randrange(1, 6)),
        "importance": round(r.random(), 4),
        "access_count": r.randrange(0, 200),
        "embedding_ref": "%016x" % r.getrandbits(64),
    }
    if r.random() < 0.3:
        m["related"] = [rand_uuid(r) for _ in range(r.randrange(1, 6))]
    return m


def memory_path(m, t):
    return "memories/%s/%s.json" % (time.strftime("%Y/%m/%d", time.gmtime(t)), m["id"])


def gen_memories(root, r, n):
    paths = []
    for _ in range(n):
        t = DAY0 + r.randrange(DAYS * 86400)
        m = memory(r, t)
        p = memory_path(m, t)
        write(root, p, (json.dumps(m, indent=2) + "\n").encode())
        paths.append(p)
    return paths


# --- logs --------------------------------------------------------------------------------------

APP = (
    "INFO  [memory.recall] session={s} recalled {n} memories in {ms} ms (k={k}, threshold=0.{d})",
    "INFO  [memory.store] stored memory {u} kind={kind} tokens={n}",
    "DEBUG [hnsw] search ef={k} visited={n} distance_computations={m}",
    "INFO  [embedder] batch of {n} texts embedded in {ms} ms on cuda:0",
    "WARN  [memory.consolidate] {n} near-duplicate memories merged into {u}",
    "INFO  [api] POST /v1/memories/query 200 {ms} ms user={s}",
    "DEBUG [sqlite] checkpoint: {n} pages written, wal size {m} KiB",
    "ERROR [embedder] request {u} failed: timeout after {ms} ms, retrying ({k}/3)",
    "INFO  [scheduler] job consolidate-{k} finished in {ms} ms, {n} memories scanned",
    "DEBUG [memory.recall] rerank top-{k}: scores {d}, {d}, {d}",
)
PATHS = ("/v1/memories/query", "/v1/memories", "/v1/sessions", "/v1/health", "/v1/embed",
         "/v1/memories/search", "/metrics")
AGENTS = ('"python-httpx/0.27.0"', '"curl/7.88.1"', '"Mozilla/5.0 (X11; Linux x86_64)"',
          '"clu-agent/2.3.1"', '"Prometheus/2.45.0"')


def app_line(r, t):
    x = r.random  # randrange is slow; int(x() * n) is uniform enough for logs
    tpl = APP[int(x() * len(APP))]
    line = tpl.format(s="%08x" % r.getrandbits(32), n=1 + int(x() * 5000), ms="%.1f" % (x() * 900),
                      k=1 + int(x() * 64), d=100 + int(x() * 900), u=rand_uuid(r) if "{u}" in tpl else "",
                      m=1 + int(x() * 90000), kind=KINDS[int(x() * len(KINDS))])
    return "%s.%03dZ %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)), int(x() * 1000), line)


def access_line(r, t):
    x = r.random
    return '10.0.%d.%d - - [%s +0000] "%s %s HTTP/1.1" %d %d "-" %s %.3f\n' % (
        int(x() * 4), 1 + int(x() * 254), time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(t)),
        "POST" if x() < 0.7 else "GET", PATHS[int(x() * len(PATHS))],
        200 if x() < 0.97 else 500, 40 + int(x() * 20000), AGENTS[int(x() * len(AGENTS))], x() * 0.9)


def log_bytes(r, kind, nbytes, t, step):
    """nbytes (about) of log lines from time t on; returns (bytes, t after)."""
    out, size = [], 0
    f = app_line if kind == "app" else access_line
    while size < nbytes:
        t += r.random() * step
        s = f(r, t)
        out.append(s)
        size += len(s)
    return "".join(out).encode(), t


LOGS_APP_DAYS = 10
T_LOG0 = 1749513600  # 2025-06-10


def gen_logs(root, r, total):
    # rotated daily application logs, the current one, and the access log
    per = total // (LOGS_APP_DAYS + 4)
    t = T_LOG0
    for day in range(LOGS_APP_DAYS):
        data, t = log_bytes(r, "app", per, T_LOG0 + day * 86400, 86400 * 130 / per)
        write(root, "logs/memory-%s.log" % time.strftime("%Y-%m-%d", time.gmtime(T_LOG0 + day * 86400)), data)
    t = T_LOG0 + LOGS_APP_DAYS * 86400
    data, _ = log_bytes(r, "app", per, t, 86400 * 130 / per)
    write(root, "logs/memory.log", data)
    data, _ = log_bytes(r, "access", 3 * per, t, 86400 * 150 / (3 * per))
    write(root, "logs/api-access.log", data)


# --- gen -------------------------------------------------------------------------------------------


def scaled(n, s, least=1):
    return max(least, int(round(n * s)))


def gen(args):
    root, s = args.dir, args.scale
    if os.path.exists(root) and os.listdir(root):
        sys.exit("gen_memsys.py: %s is not empty; give a new or empty directory" % root)
    os.makedirs(root, exist_ok=True)
    r = random.Random(args.seed)
    t0 = time.time()
    segs = [rand_uuid(r) for _ in HNSW_SPLIT]
    total = scaled(HNSW_ELEMS, s, 3 * 64)
    for name, part in zip(segs, HNSW_SPLIT):
        gen_segment(root, r, name, max(64, int(total * part)))
    gen_sqlite(root, r, scaled(SQLITE_ROWS, s, 100), segs)
    paths = gen_memories(root, r, scaled(MEMORIES, s, 50))
    gen_logs(root, r, scaled(LOG_BYTES, s, 1 << 20))
    # the index of memories, hardlinked as the latest export
    index = [{"path": p, "n": i} for i, p in enumerate(sorted(paths)[:2000])]
    write(root, "memories/index.json", (json.dumps(index) + "\n").encode())
    os.makedirs(os.path.join(root, "snapshots"))
    os.link(os.path.join(root, "memories/index.json"), os.path.join(root, "snapshots/index-latest.json"))
    # symlinks: relative to a file and to a directory, absolute (dangling off the real host)
    os.symlink("memory.log", os.path.join(root, "logs/current.log"))
    os.symlink(segs[0], os.path.join(root, "hnsw-current"))
    os.makedirs(os.path.join(root, "config"))
    os.symlink("/opt/memory-system/data/chroma.sqlite3", os.path.join(root, "config/active-db"))
    write(root, "config/settings.json", (json.dumps({"segments": segs, "dimension": DIM,
                                                      "log_dir": "logs"}, indent=2) + "\n").encode())
    # a sparse preallocated arena: 8 pieces of data among holes
    size = max(16 << 20, scaled(SPARSE, s) // BLOCK * BLOCK)
    piece = max(16 << 10, scaled(SPARSE_DATA, s) // 8 // BLOCK * BLOCK)
    os.makedirs(os.path.join(root, "prealloc"))
    with open(os.path.join(root, "prealloc/arena.bin"), "wb") as f:
        f.truncate(size)
        for k in range(8):
            f.seek(k * (size // 8) + BLOCK * r.randrange(16))
            f.write(r.randbytes(piece))
    files, nbytes = tree_stats(root)
    print("gen_memsys.py: %s: %d files, %.1f MB apparent, %.1f s" % (root, files, nbytes / 1e6, time.time() - t0))


def tree_stats(root):
    seen, files, nbytes = set(), 0, 0
    for d, _, names in os.walk(root):
        for n in names:
            st = os.lstat(os.path.join(d, n))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                files += 1
                nbytes += st.st_size
    return files, nbytes


# --- mutate ----------------------------------------------------------------------------------------


def block_hashes(path):
    out = set()
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                return out
            out.add(hashlib.blake2b(b, digest_size=16).digest())


def new_blocks(path, old):
    """The blocks of path whose content is not in the set old."""
    out = []
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                return out
            if hashlib.blake2b(b, digest_size=16).digest() not in old:
                out.append(b)


def segments(root):
    with open(os.path.join(root, "config/settings.json")) as f:
        return json.load(f)["segments"]


def mutate(args):
    root = args.dir
    r = random.Random(args.seed * 1000003 + 2)
    segs = segments(root)
    db_path = os.path.join(root, "chroma.sqlite3")
    logs = [os.path.join(root, "logs", n) for n in ("memory.log", "api-access.log")]
    vec_file = os.path.join(root, segs[0], "data_level0.bin")
    # The 4 KiB insertion tests shift resistance on a large file that is not
    # record-structured: the largest rotated log. (hnswlib never inserts at
    # the start of a segment; it updates elements in place and appends.)
    rotated = [os.path.join(root, "logs", n) for n in os.listdir(os.path.join(root, "logs"))]
    rotated = [p for p in rotated if p not in logs and os.path.isfile(p) and not os.path.islink(p)]
    ins_file = max(rotated, key=os.path.getsize)
    changed = [db_path, vec_file, ins_file] + logs
    before = {p: block_hashes(p) for p in changed}
    new_data = []

    # logs: ~1% of all log bytes appended, to the current logs
    log_total = sum(os.path.getsize(os.path.join(root, "logs", n)) for n in os.listdir(os.path.join(root, "logs"))
                    if n.endswith(".log") and not os.path.islink(os.path.join(root, "logs", n)))
    t = T_LOG0 + (LOGS_APP_DAYS + 1) * 86400
    for path, kind, part in ((logs[0], "app", 0.4), (logs[1], "access", 0.6)):
        data, _ = log_bytes(r, kind, int(log_total * 0.01 * part), t, 1.0)
        with open(path, "ab") as f:
            f.write(data)

    # SQLite: 1% inserted, 1% updated (random ids: scattered pages)
    db = sqlite3.connect(db_path, isolation_level=None)
    (nrows,) = db.execute("SELECT count(*) FROM embeddings").fetchone()
    (maxid,) = db.execute("SELECT max(id) FROM embeddings").fetchone()
    k = max(1, nrows // 100)
    t = 1751241600  # 2025-06-30
    db.execute("BEGIN")
    db.executemany("INSERT INTO embeddings (embedding_id, collection_id, document, metadata, embedding,"
                   " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                   [row(r, segs, t + i) for i in range(k)])
    db.execute("COMMIT")
    db.execute("BEGIN")
    for i in sorted(r.sample(range(1, maxid + 1), k)):
        meta = {"kind": r.choice(KINDS), "source": r.choice(SOURCES), "session": "%016x" % r.getrandbits(64),
                "importance": round(r.random(), 4), "tags": r.sample(WORDS, 3), "revised": True}
        db.execute("UPDATE embeddings SET document = ?, metadata = ?, updated_at = ? WHERE id = ?",
                   (sentence(r, r.randrange(15, 200)), json.dumps(meta), iso(t), i))
    db.execute("INSERT INTO maintenance_log (operation, timestamp) VALUES ('day-2', ?)", (iso(t),))
    db.execute("COMMIT")
    db.close()

    # JSON memories: 500 x S added, 100 x S deleted (S from the number present)
    mem = sorted(os.path.relpath(os.path.join(d, n), root)
                 for d, _, names in os.walk(os.path.join(root, "memories")) for n in names
                 if n.endswith(".json") and d != os.path.join(root, "memories"))
    s = len(mem) / MEMORIES
    for p in r.sample(mem, scaled(DAY2_DEL, s)):
        os.unlink(os.path.join(root, p))
    for _ in range(scaled(DAY2_ADD, s)):
        t = DAY0 + DAYS * 86400 + r.randrange(86400)
        m = memory(r, t)
        data = (json.dumps(m, indent=2) + "\n").encode()
        write(root, memory_path(m, t), data)
        new_data.append(data)

    # 5% of one segment's vectors rewritten in place
    n = os.path.getsize(vec_file) // ELEM
    idx = sorted(r.sample(range(n), max(1, n // 20)))
    vecs = vectors(r, len(idx))
    fd = os.open(vec_file, os.O_WRONLY)
    try:
        for j, i in enumerate(idx):
            os.pwrite(fd, vecs[j * 4 * DIM:(j + 1) * 4 * DIM], i * ELEM + LINKS)
    finally:
        os.close(fd)

    # 4 KiB inserted at the start of another (rewritten through a temporary file)
    tmp = ins_file + ".tmp"
    with open(ins_file, "rb") as src, open(tmp, "wb") as dst:
        dst.write(r.randbytes(BLOCK))
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, ins_file)

    blocks = [b for p in changed for b in new_blocks(p, before[p])]
    res = {
        "changed_block_bytes": sum(len(b) for b in blocks),
        "new_file_bytes": sum(len(b) for b in new_data),
    }
    res["ideal_bytes"] = res["changed_block_bytes"] + res["new_file_bytes"]
    res["ideal_zstd_bytes"] = None
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-3", "-q", "-c"], input=b"".join(blocks + new_data), stdout=subprocess.PIPE,
                           check=True)
        res["ideal_zstd_bytes"] = len(z.stdout)
    print("gen_memsys.py: ideal day-2: %.2f MB (changed 4 KiB blocks %.2f MB + new files %.2f MB)%s" % (
        res["ideal_bytes"] / 1e6, res["changed_block_bytes"] / 1e6, res["new_file_bytes"] / 1e6,
        "; %.2f MB with zstd -3" % (res["ideal_zstd_bytes"] / 1e6) if res["ideal_zstd_bytes"] is not None else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f)
            f.write("\n")


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "mutate":
        p = argparse.ArgumentParser(prog="gen_memsys.py mutate", description="apply the day-2 change")
        p.add_argument("dir")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--json", metavar="FILE", help="write the ideal day-2 size as JSON")
        mutate(p.parse_args(argv[1:]))
    else:
        p = argparse.ArgumentParser(prog="gen_memsys.py", description="generate the memory-system dataset",
                                    epilog="gen_memsys.py mutate DIR [--seed N] [--json FILE]: the day-2 change")
        p.add_argument("dir")
        p.add_argument("--scale", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=1)
        a = p.parse_args(argv)
        if not 0 < a.scale <= 100:
            p.error("--scale must be in (0, 100]")
        gen(a)


if __name__ == "__main__":
    main()
