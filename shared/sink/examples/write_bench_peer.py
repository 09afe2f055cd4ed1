#!/usr/bin/env python3
"""pyarrow peer of write_bench.rs: the same rows, written from prepared columns.

    python3 write_bench_peer.py [--rows N]              # all three formats, one child each
    python3 write_bench_peer.py --rows N --format F --child

Builds the rows of write_bench.rs (same formulas, same 7 data + 5 metadata columns) as
pyarrow arrays, not timed; then times, per format in its own process (so VmHWM belongs to
one format), with pyarrow's thread pools set to one thread:

  parquet  pq.write_table(compression='snappy', write_page_index=True)  (ours writes a page index)
  csv      pyarrow.csv.write_csv
  json     json.dumps per row into gzip.open(compresslevel=6): pyarrow has no JSON writer,
           so this is plain Python, a weak peer

Each timed write also fsyncs the file, renames it to its final directory and fsyncs that
directory, as the sink's prepare_checkpoint + commit do. Prints one RESULT line per format,
in the key=value form write_bench.rs parses.
"""

import argparse
import datetime
import decimal
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HOUR_06_MS = 1_715_925_600_000
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor."
)
FORMATS = ["parquet", "csv", "json"]


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not in /proc/self/status")


def build_columns(n):
    """Python lists of the rows, in write_bench.rs's formulas."""
    ids = list(range(1, n + 1))
    qty = [(i * 7919) % 100_000 - 50_000 for i in range(n)]
    cents = [(i * 104_729) % 10_000_000_000 - 5_000_000_000 for i in range(n)]
    customer = ["customer-%05d-%x" % (i % 10_007, i * 2_654_435_761 % 65_536) for i in range(n)]
    base_us = HOUR_06_MS * 1000
    created_us = [base_us + i * 1_000_003 for i in range(n)]
    status = [i % 256 - 128 for i in range(n)]
    note = ["note %d: %s" % (i, LOREM[: (i * 37) % 200]) for i in range(n)]
    ts_ms = [HOUR_06_MS + i * 3 for i in range(n)]
    source_pos = ["mysql binlog.000003:%d stream#0" % (4 + i * 100) for i in range(n)]
    tx_id = ["3E11FA47-71CA-11E1-9E33-C80AA9429562:%d" % (i + 1) for i in range(n)]
    return dict(
        id=ids, qty=qty, cents=cents, customer=customer, created_us=created_us,
        status=status, note=note, ts_ms=ts_ms, source_pos=source_pos, tx_id=tx_id,
    )


def to_table(c, n):
    price = [decimal.Decimal(v).scaleb(-2) for v in c["cents"]]
    return pa.table(
        {
            "id": pa.array(c["id"], pa.int64()),
            "qty": pa.array(c["qty"], pa.int32()),
            "price": pa.array(price, pa.decimal128(12, 2)),
            "customer": pa.array(c["customer"], pa.string()),
            "created_at": pa.array(c["created_us"], pa.timestamp("us")),
            "status": pa.array(c["status"], pa.int8()),
            "note": pa.array(c["note"], pa.string()),
            "_op": pa.array(["c"] * n, pa.string()),
            "_ts_ms": pa.array(c["ts_ms"], pa.int64()),
            "_source_pos": pa.array(c["source_pos"], pa.string()),
            "_tx_id": pa.array(c["tx_id"], pa.string()),
            "_deleted": pa.array([False] * n, pa.bool_()),
        }
    )


def json_columns(c, n):
    """Prepared Python columns rendered as the sink renders them (decimal and datetime text)."""
    price = ["%s%d.%02d" % ("-" if v < 0 else "", abs(v) // 100, abs(v) % 100) for v in c["cents"]]
    epoch = datetime.datetime(1970, 1, 1)
    created = [
        (epoch + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%f")
        for us in c["created_us"]
    ]
    names = ["id", "qty", "price", "customer", "created_at", "status", "note",
             "_op", "_ts_ms", "_source_pos", "_tx_id", "_deleted"]
    cols = [c["id"], c["qty"], price, c["customer"], created, c["status"], c["note"],
            ["c"] * n, c["ts_ms"], c["source_pos"], c["tx_id"], [False] * n]
    return names, cols


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def child(fmt, n):
    # One core, like the sink: no pyarrow worker threads.
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    cols = build_columns(n)
    if fmt == "json":
        names, prepared = json_columns(cols, n)
        table = None
    else:
        table = to_table(cols, n)
        names = prepared = None
    del cols
    # VmHWM back to the current RSS: the peak read later is the write's, not the building's.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss_base_kb = status_kb("VmRSS")

    tmp = tempfile.mkdtemp(prefix="write_bench_peer-")
    try:
        staging = os.path.join(tmp, ".inprogress")
        final_dir = os.path.join(tmp, "out")
        os.makedirs(staging)
        os.makedirs(final_dir)
        ext = {"parquet": "parquet", "csv": "csv", "json": "jsonl.gz"}[fmt]
        path = os.path.join(staging, "part-0." + ext)

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if fmt == "parquet":
            pq.write_table(table, path, compression="snappy", write_page_index=True)
        elif fmt == "csv":
            pacsv.write_csv(table, path)
        else:
            dumps = json.JSONEncoder(separators=(",", ":")).encode
            with gzip.open(path, "wb", compresslevel=6) as out:
                for row in zip(*prepared):
                    out.write((dumps(dict(zip(names, row))) + "\n").encode())
        fsync_path(path)
        fsync_path(staging)
        final = os.path.join(final_dir, os.path.basename(path))
        os.rename(path, final)
        fsync_path(final_dir)
        secs = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        hwm_kb = status_kb("VmHWM")
        size = os.path.getsize(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        "RESULT impl=pyarrow format=%s rows=%d secs=%.4f cpu=%.3f bytes=%d files=1 "
        "rss_base_kb=%d hwm_kb=%d" % (fmt, n, secs, cpu, size, rss_base_kb, hwm_kb),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        if not args.format:
            parser.error("--child needs --format")
        child(args.format, args.rows)
        return
    for fmt in [args.format] if args.format else FORMATS:
        out = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--format", fmt, "--child"],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        sys.stdout.write(out)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
