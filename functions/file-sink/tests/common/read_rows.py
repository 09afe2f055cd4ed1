#!/usr/bin/env python3
"""Independent reader of the sink's committed Parquet files, for the process-level tests.

Usage: read_rows.py TABLE_DIR COLUMNS

Discovers the committed files under TABLE_DIR as query engines do (pyarrow.dataset with Hive
partitioning, whose default ignore_prefixes hide `.inprogress/`), then reads each file on its
own: after a schema change (ALTER TABLE ... ADD COLUMN) files of one table have different
columns, and a dataset takes its schema from one file. A column a file lacks reads as null.
Prints {"files": [paths], "rows": [[value, ...]]} with every value as text (null as null,
booleans as "true"/"false"), in COLUMNS (comma-separated) order.
"""
import json
import os
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq


def text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def main():
    table_dir, columns = sys.argv[1], sys.argv[2].split(",")
    if not os.path.isdir(table_dir):
        print(json.dumps({"files": [], "rows": []}))
        return
    files = sorted(ds.dataset(table_dir, format="parquet", partitioning="hive").files)
    rows = []
    for path in files:
        present = [c for c in columns if c in pq.read_schema(path).names]
        for row in pq.read_table(path, columns=present).to_pylist():
            rows.append([text(row.get(c)) for c in columns])
    print(json.dumps({"files": files, "rows": rows}))


if __name__ == "__main__":
    main()
