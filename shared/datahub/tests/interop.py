"""Interop with cdc-datahub's Rust client through the server.

  interop.py ENDPOINT read PROJECT TOPIC N [MODE]   -> reads shard 0 from OLDEST with pydatahub, checks the
                                                       values the Rust test wrote, prints 'read N'
  interop.py ENDPOINT write PROJECT TOPIC N [MODE]  -> writes N TUPLE records with pydatahub (LZ4)
MODE: json (default) | pb | batch. Schema: id BIGINT, name STRING, score DOUBLE. Record i =
[i, 'r<i>', i / 4], name null when i % 10 == 3 — except what pydatahub writes in batch mode:
its batch writer cannot encode nulls, so there name is always 'r<i>'. Batch writes go in
batches of BATCH records; batch reads check that record i is entry sequence + batch_index.
"""
import sys

from datahub import DataHub
from datahub.core import DatahubProtocolType
from datahub.models import CursorType, FieldType, RecordSchema, TupleRecord

endpoint, cmd, project, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
mode = sys.argv[6] if len(sys.argv) > 6 else "json"
protocol = {"json": DatahubProtocolType.JSON, "pb": DatahubProtocolType.PB, "batch": DatahubProtocolType.BATCH}[mode]
dh = DataHub("anyid", "anykey", endpoint, protocol_type=protocol)
schema = RecordSchema.from_lists(["id", "name", "score"], [FieldType.BIGINT, FieldType.STRING, FieldType.DOUBLE])
BATCH = 100


def values(i, nulls=True):
    return [i, None if nulls and i % 10 == 3 else "r%d" % i, i / 4]


if cmd == "write":
    records = []
    for i in range(n):
        r = TupleRecord(schema=schema, values=values(i, nulls=mode != "batch"))
        r.shard_id = "0"
        r.put_attribute("from", "pydatahub")
        records.append(r)
    if mode == "batch":
        for at in range(0, n, BATCH):
            dh.put_records_by_shard(project, topic, "0", records[at:at + BATCH])
    else:
        assert dh.put_records(project, topic, records).failed_record_count == 0
    print("wrote %d" % n)
elif cmd == "read":
    cursor = dh.get_cursor(project, topic, "0", CursorType.OLDEST).cursor
    got = []
    while len(got) < n:
        res = dh.get_tuple_records(project, topic, "0", schema, cursor, 1000)
        assert res.record_count > 0, "ran out after %d records" % len(got)
        got.extend(res.records)
        cursor = res.next_cursor
    for i, r in enumerate(got):
        want = values(i)
        if mode == "pb" and want[1] is None:
            want[1] = ""  # pydatahub's PB reader returns '' for a null STRING (§4.2)
        assert list(r.values) == want, (i, r.values, want)
        assert r.attributes == {"from": "rust"}, r.attributes
        assert r.sequence + r.batch_index == i, (i, r.sequence, r.batch_index)
    batches = sorted({r.sequence for r in got})
    print("read %d in %d batches" % (len(got), len(batches)))
