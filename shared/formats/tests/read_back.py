#!/usr/bin/env python3
"""Independent reader for the cdc-formats round-trip tests.

Usage: read_back.py FORMAT COMPRESSION PATH [CSV_NULL [CSV_DELIMITER]]

Reads the file with pyarrow (Parquet, CSV, decompression) or Python's json module (JSON
lines, after pyarrow's decompression) and prints one JSON document:
{"rows": [{column: value}], "types": {column: arrow type} (parquet only),
 "metadata": {key: value} (parquet footer key-value metadata only)}.

Values are canonical so the Rust test can compare them exactly: decimals as plain text,
naive timestamps as YYYY-MM-DDTHH:MM:SS.ffffff, UTC timestamps with a trailing Z, dates as
YYYY-MM-DD, binary as standard base64; CSV values stay the strings the reader saw.
"""
import base64
import csv
import io
import datetime
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq


def canonical(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if value.tzinfo is not None:
            if value.utcoffset() != datetime.timedelta(0):
                raise ValueError(f"non-UTC timestamp {value!r}")
            text += "Z"
        return text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        # Struct columns (the envelope shape's before / after / source).
        return {k: canonical(v) for k, v in value.items()}
    raise TypeError(f"no canonical form for {type(value).__name__}: {value!r}")


def stream(path, compression):
    codec = None if compression in ("none", "snappy") else compression
    return pa.input_stream(path, compression=codec)


def main():
    fmt, compression, path = sys.argv[1:4]
    out = {}
    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        table = pf.read()
        out["types"] = {f.name: str(f.type) for f in table.schema}
        kv = pf.metadata.metadata or {}
        out["metadata"] = {
            k.decode(): v.decode() for k, v in kv.items() if k != b"ARROW:schema"
        }
        codecs = {
            pf.metadata.row_group(0).column(i).compression
            for i in range(pf.metadata.num_columns)
        } if pf.metadata.num_row_groups else set()
        out["codecs"] = sorted(codecs)
        rows = table.to_pylist()
    elif fmt == "csv":
        null = sys.argv[4] if len(sys.argv) > 4 else ""
        delimiter = sys.argv[5] if len(sys.argv) > 5 else ","
        # Read the header first so every column can be forced to string: we compare text.
        with stream(path, compression) as f:
            data = f.read()
        header = next(csv.reader(io.StringIO(data.decode("utf-8")), delimiter=delimiter))
        table = pcsv.read_csv(
            pa.BufferReader(data),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[null],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        rows = table.to_pylist()
    elif fmt == "json":
        with stream(path, compression) as f:
            text = f.read().decode("utf-8")
        lines = text.split("\n")
        if lines[-1] != "":
            raise ValueError("last line is not newline-terminated")
        rows = [json.loads(line) for line in lines[:-1]]
    else:
        raise SystemExit(f"unknown format {fmt}")
    out["rows"] = [{k: canonical(v) for k, v in row.items()} for row in rows]
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
