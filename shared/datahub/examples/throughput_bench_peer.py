"""pydatahub side of examples/throughput_bench.rs: put then get N BLOB records of SIZE bytes
in batches of BATCH against an already running datahub-local, timing each phase.

usage: throughput_bench_peer.py ENDPOINT PROJECT TOPIC MODE COMPRESSION N SIZE BATCH
  MODE: json | pb      COMPRESSION: none | lz4 | zlib | deflate
The project exists; the topic (BLOB, 1 shard) is created here. Prints one machine-readable
line per phase:  RESULT <op> <records> <seconds> <payload bytes>
Exits 1 if any record fails or the read-back differs.
"""
import random
import sys
import time

from datahub import DataHub
from datahub.core import DatahubProtocolType
from datahub.models import BlobRecord, CompressFormat, CursorType

endpoint, project, topic, mode, compression = sys.argv[1:6]
n, size, batch = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
fmt = {"none": CompressFormat.NONE, "lz4": CompressFormat.LZ4, "zlib": CompressFormat.ZLIB,
       "deflate": CompressFormat.DEFLATE}[compression]
proto = {"json": DatahubProtocolType.JSON, "pb": DatahubProtocolType.PB}[mode]
dh = DataHub("anyid", "anykey", endpoint, protocol_type=proto, compress_format=fmt)

dh.create_blob_topic(project, topic, 1, 3, "throughput bench (pydatahub %s/%s)" % (mode, compression))
dh.wait_shards_ready(project, topic, 5)

# Payloads and record objects are built before the clock starts, as the Rust side does.
rng = random.Random(42)
payloads = [rng.randbytes(size) for _ in range(n)]
batches = []
for start in range(0, n, batch):
    recs = []
    for p in payloads[start:start + batch]:
        r = BlobRecord(blob_data=p)
        r.shard_id = "0"
        recs.append(r)
    batches.append(recs)

t0 = time.perf_counter()
for recs in batches:
    res = dh.put_records(project, topic, recs)
    if res.failed_record_count:
        print("put failed: %s" % res.failed_records, file=sys.stderr)
        sys.exit(1)
put_s = time.perf_counter() - t0
print("RESULT put %d %.6f %d" % (n, put_s, n * size), flush=True)

t0 = time.perf_counter()
cursor = dh.get_cursor(project, topic, "0", CursorType.OLDEST).cursor
got = []
while len(got) < n:
    res = dh.get_blob_records(project, topic, "0", cursor, batch)
    if res.record_count == 0:
        break
    got.extend(r.blob_data for r in res.records)
    cursor = res.next_cursor
get_s = time.perf_counter() - t0
if len(got) != n or got != payloads:
    print("read-back mismatch: %d records of %d" % (len(got), n), file=sys.stderr)
    sys.exit(1)
print("RESULT get %d %.6f %d" % (n, get_s, n * size), flush=True)
