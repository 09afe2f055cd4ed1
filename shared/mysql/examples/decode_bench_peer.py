#!/usr/bin/env python3
"""Peer for examples/decode_bench.rs: python-mysql-replication reading a binlog range.

Reads WRITE_ROWS events from FILE:POS with BinLogStreamReader (non-blocking) and counts rows
until LIMIT rows were seen or the stream ends, then prints one JSON line:
{"rows": n, "seconds": s, "bytes": b} where seconds runs from opening the stream to the last
row counted (interpreter start-up and imports excluded) and bytes is the binlog offset after
the last event read minus POS (same file only; 0 when the read crossed a rotation).

Usage: decode_bench_peer.py HOST PORT USER FILE POS LIMIT   (password in CDC_BENCH_PASSWORD)
"""
import json
import os
import sys
import time

try:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent
except ImportError as e:  # reported by the Rust side as a skipped peer
    print(json.dumps({"error": f"pymysqlreplication not importable: {e} (pip install mysql-replication)"}))
    sys.exit(2)


def main():
    if len(sys.argv) != 7:
        print(json.dumps({"error": "usage: HOST PORT USER FILE POS LIMIT"}))
        return 2
    host, port, user, log_file, log_pos, limit = sys.argv[1:]
    port, log_pos, limit = int(port), int(log_pos), int(limit)
    settings = {"host": host, "port": port, "user": user, "passwd": os.environ.get("CDC_BENCH_PASSWORD", "")}
    started = time.perf_counter()
    stream = BinLogStreamReader(
        connection_settings=settings,
        server_id=4343,
        only_events=[WriteRowsEvent],
        resume_stream=True,
        log_file=log_file,
        log_pos=log_pos,
        blocking=False,
    )
    rows = 0
    end_pos = log_pos
    try:
        for event in stream:
            for _row in event.rows:  # decodes every value of the row
                rows += 1
            end_pos = stream.log_pos
            if rows >= limit:
                break
        elapsed = time.perf_counter() - started
    finally:
        stream.close()
    same_file = stream.log_file == log_file
    print(json.dumps({"rows": rows, "seconds": elapsed, "bytes": (end_pos - log_pos) if same_file else 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
