"""pydatahub 2.29.0's high-level DatahubConsumer (consumer group: joinGroup, heartBeat,
syncGroup, leaveGroup, offsets open/commit) reading a topic from cdc-datahub's server.

usage: pydatahub_consumer.py ENDPOINT LOG_DIR
Phase 1: N BLOB records spread over the shards (low-level client); consumer A alone in the
group reads them all, and its offsets get committed.
Phase 2: consumer B joins the same subscription; the plan is rebalanced, A releases a shard
(syncGroup), B starts from the committed offsets. M more records are put and A and B together
read them. Both close (leaveGroup) and the committed offsets are read back.
Prints one JSON object on the last line of stdout.
"""
import json
import logging
import os
import sys
import threading
import time

from datahub import DataHub
from datahub.client import ConsumerConfig, DatahubConsumer
from datahub.models import BlobRecord, CompressFormat

endpoint, log_dir = sys.argv[1], sys.argv[2]
access_id, access_key = "anyid", "anykey"
project, topic = "consumer_group_p", "consumer_blob"
SHARDS = 3
N = 30  # phase 1, N / SHARDS per shard
M = 30  # phase 2, M / SHARDS per shard

# Count the group calls the SDK makes (both consumers share one pooled DataHub client).
calls = {"join_group": 0, "heart_beat": 0, "sync_group": 0, "leave_group": 0}
failures = []
held = {}  # consumer id -> ShardList of its last heartbeat
sync_args = []
lock = threading.Lock()


def wrap(name):
    original = getattr(DataHub, name)

    def wrapper(self, *args):
        try:
            result = original(self, *args)
        except Exception as e:
            with lock:
                failures.append("%s: %s: %s" % (name, type(e).__name__, e))
            raise
        with lock:
            calls[name] += 1
            if name == "heart_beat":
                held[args[3]] = list(result.shard_list)
            if name == "sync_group":
                sync_args.append({"consumer": args[3], "release": list(args[5]), "read_end": list(args[6])})
        return result

    setattr(DataHub, name, wrapper)


for op in calls:
    wrap(op)

dh = DataHub(access_id, access_key, endpoint, compress_format=CompressFormat.LZ4)
dh.create_project(project, "consumer group project")
dh.create_blob_topic(project, topic, SHARDS, 3, "consumer group topic")
dh.wait_shards_ready(project, topic, 5)


def put(start, count):
    records = []
    for i in range(start, start + count):
        r = BlobRecord(blob_data=b"\x00\x01value-%d" % i)
        r.shard_id = str(i % SHARDS)
        records.append(r)
    res = dh.put_records(project, topic, records)
    assert res.failed_record_count == 0, res


def read_round(consumers, reads, timeout):
    """One read from each consumer; appends [consumer, shard, sequence, value]."""
    for name, c in consumers:
        record = c.read(timeout=timeout)
        if record is not None:
            # Records read back carry no shard_id; the consumer's message key does.
            reads.append([name, record.record_key.shard_id, record.sequence, record.blob_data.decode("latin-1")])


def drain(consumers, want, seconds):
    reads, deadline = [], time.time() + seconds
    while len(reads) < want and time.time() < deadline:
        read_round(consumers, reads, 1)
    return reads


put(0, N)
sub_id = dh.create_subscription(project, topic, "consumer group sub").sub_id


def config(name):
    c = ConsumerConfig(access_id, access_key, endpoint)
    c.logging_filename = os.path.join(log_dir, "DatahubClient.log")
    c.logging_level = logging.INFO
    c.auto_ack_offset = True
    return c


out = {"n": N, "m": M, "shards": SHARDS, "error": None}
a = b = None
t0 = time.time()
try:
    a = DatahubConsumer(project, topic, sub_id, config("a"))
    phase1 = drain([("a", a)], N, 60)
    out["phase1_s"] = round(time.time() - t0, 2)
    extra = []
    read_round([("a", a)], extra, 2)
    time.sleep(6)  # the offset manager commits every 5 s
    out["phase1"] = phase1
    out["phase1_extra"] = extra
    out["committed_after_phase1"] = {k: o.sequence for k, o in dh.get_subscription_offset(
        project, topic, sub_id, [str(s) for s in range(SHARDS)]).offsets.items()}

    # Phase 2: B joins; wait for the rebalance (A syncs its released shard, B holds shards).
    b = DatahubConsumer(project, topic, sub_id, config("b"))
    rebalance_reads, deadline = [], time.time() + 30
    while time.time() < deadline:
        read_round([("a", a), ("b", b)], rebalance_reads, 1)
        with lock:
            if calls["sync_group"] >= 1 and len(held) == 2 and all(held.values()):
                break
    out["rebalance_s"] = round(time.time() - t0, 2)
    out["rebalance_reads"] = rebalance_reads  # must be empty: B resumes at A's committed offsets
    with lock:
        out["held_after_rebalance"] = {k: sorted(v) for k, v in held.items()}
    put(N, M)
    phase2 = drain([("a", a), ("b", b)], M, 60)
    extra = []
    read_round([("a", a), ("b", b)], extra, 2)
    out["phase2"] = phase2
    out["phase2_extra"] = extra
    time.sleep(6)
except Exception as e:  # report, then still close
    out["error"] = "%s: %s" % (type(e).__name__, e)
finally:
    for c in (a, b):
        if c is not None:
            c.close()  # leaveGroup
out["elapsed_s"] = round(time.time() - t0, 2)
out["committed"] = {k: o.sequence for k, o in dh.get_subscription_offset(
    project, topic, sub_id, [str(s) for s in range(SHARDS)]).offsets.items()}
with lock:
    out["calls"] = dict(calls)
    out["call_failures"] = list(failures)
    out["sync_args"] = list(sync_args)
print(json.dumps(out, sort_keys=True))
