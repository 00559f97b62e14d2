"""Reads a damselfly database the way docs/reading-from-other-tools.md tells users to, with pyarrow
and DuckDB, and checks what they find against what damselfly itself returned.

    python read_database.py <database folder> <exported file> <expected rows file>

The expected rows file has one "<id> <score>" line per live row, in key order. Prints "ok" and
a summary on success; exits non-zero with the difference otherwise.
"""

import json
import pathlib
import sys

import duckdb
import pyarrow.parquet as pq


def live_ssts(root: pathlib.Path) -> list[str]:
    """The SST files of the newest manifest version (its second line is the version)."""
    records = sorted((root / "manifest").glob("*.json"))
    version = json.loads(records[-1].read_text().splitlines()[1])
    return [
        str(root / "sst" / f"{sst['id']:020}.parquet")
        for level in version["levels"]
        for sst in level
    ]


def main() -> int:
    root, exported, expected_file = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    expected = [
        tuple(int(field) for field in line.split())
        for line in pathlib.Path(expected_file).read_text().splitlines()
    ]
    ssts = live_ssts(root)
    problems = []

    # pyarrow opens every SST: the user's columns, then the engine's.
    sst_rows = 0
    for path in ssts:
        table = pq.read_table(path)
        sst_rows += table.num_rows
        names = table.column_names
        if names[:2] != ["id", "score"] or names[-2:] != ["_damselfly_commit_ts", "_damselfly_deleted"]:
            problems.append(f"{path}: unexpected columns {names}")

    # DuckDB reads the live table: each key's newest version, deletes dropped.
    files = ", ".join(f"'{path}'" for path in ssts)
    live = duckdb.sql(
        f"""
        SELECT id, score FROM (
            SELECT *, row_number() OVER (
                PARTITION BY id ORDER BY _damselfly_commit_ts DESC) AS newest
            FROM read_parquet([{files}]))
        WHERE newest = 1 AND NOT _damselfly_deleted
        ORDER BY id
        """
    ).fetchall()
    if live != expected:
        problems.append(f"DuckDB over the SSTs: {len(live)} rows, expected {len(expected)}")

    # Both read the exported snapshot as a plain table.
    exported_duckdb = duckdb.sql(f"SELECT id, score FROM read_parquet('{exported}') ORDER BY id").fetchall()
    if exported_duckdb != expected:
        problems.append(f"DuckDB over the export: {len(exported_duckdb)} rows, expected {len(expected)}")
    exported_table = pq.read_table(exported)
    exported_pyarrow = list(zip(exported_table["id"].to_pylist(), exported_table["score"].to_pylist()))
    if exported_pyarrow != expected:
        problems.append(f"pyarrow over the export: {len(exported_pyarrow)} rows, expected {len(expected)}")

    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok: {len(ssts)} SSTs with {sst_rows} row versions, {len(expected)} live rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
