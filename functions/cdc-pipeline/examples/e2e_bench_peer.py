#!/usr/bin/env python3
"""Peer for examples/e2e_bench.rs: binlog rows to a Parquet file in Python.

python-mysql-replication's BinLogStreamReader (non-blocking) decodes WRITE_ROWS events of
bench.t from FILE:POS; the rows go into column lists, written with pyarrow's ParquetWriter
every 10,000 rows (one row group each) with the given compression, until LIMIT rows or the end
of the stream. Prints one JSON line:
{"rows": n, "seconds": s, "cpu_s": c, "peak_rss_kb": k}, seconds from opening the stream to
the closed file (interpreter start-up and imports excluded), cpu_s and peak_rss_kb of this
process (getrusage, imports included).

Usage: e2e_bench_peer.py HOST PORT USER FILE POS LIMIT OUT_FILE COMPRESSION
(password in CDC_BENCH_PASSWORD)
"""
import json
import os
import resource
import sys
import time

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent
except ImportError as e:  # reported by the Rust side as a skipped peer
    print(json.dumps({"error": f"not importable: {e} (pip install mysql-replication pyarrow)"}))
    sys.exit(2)

ROW_GROUP = 10_000
# bench.t's columns as Arrow types (those of our sink's files), given explicitly: inferred from
# each chunk's values, a DECIMAL's precision changes between chunks and the writer refuses it.
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("a", pa.int32()),
        ("price", pa.decimal128(12, 2)),
        ("name", pa.string()),
        ("at", pa.timestamp("us")),
        ("flag", pa.int8()),
        ("body", pa.string()),
    ]
)


def main():
    if len(sys.argv) != 9:
        print(json.dumps({"error": "usage: HOST PORT USER FILE POS LIMIT OUT_FILE COMPRESSION"}))
        return 2
    host, port, user, log_file, log_pos, limit, out_file, compression = sys.argv[1:]
    port, log_pos, limit = int(port), int(log_pos), int(limit)
    settings = {"host": host, "port": port, "user": user, "passwd": os.environ.get("CDC_BENCH_PASSWORD", "")}
    started = time.perf_counter()
    stream = BinLogStreamReader(
        connection_settings=settings,
        server_id=4344,
        only_events=[WriteRowsEvent],
        only_schemas=["bench"],
        only_tables=["t"],
        resume_stream=True,
        log_file=log_file,
        log_pos=log_pos,
        blocking=False,
    )
    columns = {}
    writer = None
    rows = 0

    def flush():
        nonlocal writer, columns
        if not columns:
            return
        table = pa.table(columns, schema=SCHEMA)
        if writer is None:
            writer = pq.ParquetWriter(out_file, SCHEMA, compression=compression)
        writer.write_table(table, row_group_size=ROW_GROUP)
        columns = {}

    try:
        for event in stream:
            for row in event.rows:  # decodes every value of the row
                for name, value in row["values"].items():
                    columns.setdefault(name, []).append(value)
                rows += 1
                if rows % ROW_GROUP == 0:
                    flush()
                if rows >= limit:
                    break
            if rows >= limit:
                break
        flush()
        if writer is not None:
            writer.close()
        elapsed = time.perf_counter() - started
    finally:
        stream.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"rows": rows, "seconds": elapsed, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_kb": usage.ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
