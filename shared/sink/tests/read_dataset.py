#!/usr/bin/env python3
"""Independent reader for the cdc-sink tests: reads the sink's output the way query engines
do, with pyarrow.dataset discovery.

Usage: read_dataset.py ROOT [SUBDIR] [COLUMNS]

Discovers Parquet files under ROOT/SUBDIR with pyarrow.dataset (Hive partitioning, default
ignore_prefixes ['.', '_'], which is what hides `.inprogress/`) and prints one JSON document:
{"files": [discovered paths relative to ROOT, sorted], "rows": [[column values...]]}.
COLUMNS is comma-separated (default `id,_source_pos`); values that JSON has no type for
(decimals, timestamps) are printed as text.
"""
import json
import os
import sys

import pyarrow.dataset as ds


def main():
    root = sys.argv[1]
    sub = sys.argv[2] if len(sys.argv) > 2 else ""
    columns = (sys.argv[3] if len(sys.argv) > 3 else "id,_source_pos").split(",")
    base = os.path.join(root, sub) if sub else root
    dataset = ds.dataset(base, format="parquet", partitioning="hive")
    files = sorted(os.path.relpath(f, root) for f in dataset.files)
    rows = []
    if files:
        table = dataset.to_table(columns=columns)
        rows = [[row[c] for c in columns] for row in table.to_pylist()]
    print(json.dumps({"files": files, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
