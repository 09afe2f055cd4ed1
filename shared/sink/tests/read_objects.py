#!/usr/bin/env python3
"""Independent reader for the object-sink tests: reads every committed file under ROOT (a
local copy of the bucket prefix; dot directories skipped, as query engines do) with pyarrow,
whatever the format.

Usage: read_objects.py ROOT FORMAT COMPRESSION [COLUMNS]

FORMAT is parquet, csv or json (JSON lines); COMPRESSION is none, gzip, zstd or snappy
(snappy only inside Parquet). Prints one JSON document:
{"files": [paths relative to ROOT, sorted], "rows": [[values of COLUMNS (default id,_source_pos)]]}.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq


def read(path, fmt, compression):
    if fmt == "parquet":
        return pq.read_table(path)
    codec = None if compression in ("none", "snappy") else compression
    with pa.input_stream(path, compression=codec) as stream:
        data = stream.read()
    if fmt == "csv":
        return pcsv.read_csv(pa.BufferReader(data), parse_options=pcsv.ParseOptions(newlines_in_values=True))
    if fmt == "json":
        return pjson.read_json(pa.BufferReader(data))
    raise SystemExit(f"unknown format {fmt}")


def main():
    root, fmt, compression = sys.argv[1:4]
    columns = (sys.argv[4] if len(sys.argv) > 4 else "id,_source_pos").split(",")
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith((".", "_"))]
        files.extend(
            os.path.relpath(os.path.join(directory, n), root)
            for n in names
            if not n.startswith((".", "_"))
        )
    files.sort()
    rows = []
    for name in files:
        if name.startswith("dlq/"):
            continue
        table = read(os.path.join(root, name), fmt, compression)
        rows.extend([row[c] for c in columns] for row in table.select(columns).to_pylist())
    print(json.dumps({"files": files, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
