"""Interop with cdc-datahub's Rust client through the server.

  interop.py ENDPOINT read PROJECT TOPIC N   -> reads shard 0 from OLDEST with pydatahub, checks the
                                                 values the Rust test wrote, prints 'read N'
  interop.py ENDPOINT write PROJECT TOPIC N  -> writes N TUPLE records with pydatahub (LZ4)
Schema: id BIGINT, name STRING, score DOUBLE. Record i = [i, 'r<i>', i / 4] (name null when i % 10 == 3).
"""
import sys

from datahub import DataHub
from datahub.models import CursorType, FieldType, RecordSchema, TupleRecord

endpoint, cmd, project, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
dh = DataHub("anyid", "anykey", endpoint)
schema = RecordSchema.from_lists(["id", "name", "score"], [FieldType.BIGINT, FieldType.STRING, FieldType.DOUBLE])


def values(i):
    return [i, None if i % 10 == 3 else "r%d" % i, i / 4]


if cmd == "write":
    records = []
    for i in range(n):
        r = TupleRecord(schema=schema, values=values(i))
        r.shard_id = "0"
        r.put_attribute("from", "pydatahub")
        records.append(r)
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
        assert list(r.values) == values(i), (i, r.values, values(i))
        assert r.attributes == {"from": "rust"}, r.attributes
    print("read %d" % len(got))
