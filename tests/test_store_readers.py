"""pandas, polars, DuckDB and plain pyarrow read a run's shards without loce (in a process where loce cannot load)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from loce.store import COLUMNS, JobSpec, LoCEStore
from store_helpers import rows_for

READER = textwrap.dedent(
    """
    import json, sys
    sys.modules["loce"] = None  # `import loce` fails from here on: the readers must not need it
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    run = sys.argv[1]
    out = {}

    def ok_l1(records):
        return sorted([r["sample_id"], r["concept"], [float(x) for x in r["vector"]]] for r in records)

    df = pd.read_parquet(f"{run}/loces")
    out["pandas_columns"] = list(df.columns)
    out["pandas_rows"] = len(df)
    sel = df[(df["layer"] == "l1") & (df["status"] == "ok")]
    out["pandas"] = ok_l1(sel.to_dict("records"))
    out["pandas_filtered_rows"] = len(pd.read_parquet(f"{run}/loces", filters=[("layer", "==", "l1")]))

    pf = pl.read_parquet(f"{run}/loces/*.parquet")
    out["polars_rows"] = pf.height
    out["polars_vector_type"] = str(pf.schema["vector"])
    out["polars"] = ok_l1(pf.filter((pl.col("layer") == "l1") & (pl.col("status") == "ok")).to_dicts())

    rel = duckdb.sql(
        f"select sample_id, concept, vector from '{run}/loces/*.parquet' where layer = 'l1' and status = 'ok'"
    )
    out["duckdb"] = ok_l1([dict(zip(["sample_id", "concept", "vector"], r)) for r in rel.fetchall()])
    out["duckdb_skips"] = duckdb.sql(
        f"select count(*) from '{run}/loces/*.parquet' where status <> 'ok'"
    ).fetchall()[0][0]
    out["duckdb_dims"] = sorted(
        duckdb.sql(f"select distinct len(vector) from '{run}/loces/*.parquet' where vector is not null").fetchall()
    )

    out["pyarrow_rows"] = ds.dataset(f"{run}/loces", format="parquet").count_rows()
    print(json.dumps(out))
    """
)


def test_pandas_polars_duckdb_read_the_shards_without_loce(tmp_path):
    run = tmp_path / "RUN"
    samples = range(9)
    with LoCEStore.create(run, image_root=tmp_path) as store:
        store.register_job(JobSpec("j", model="m", layers=["l1", "l2"]))
        store.append("j", rows_for(samples[:5]))
        store.append("j", rows_for(samples[5:]))
    # what a writer killed mid-shard leaves behind; every reader must ignore it
    (run / "loces" / ".j-000003.parquet.4242.beef.tmp").write_bytes(b"PAR1 half a shard")

    result = subprocess.run(
        [sys.executable, "-c", READER, str(run)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    rows = rows_for(samples)
    expected = sorted(
        [r["sample_id"], r["concept"], [float(x) for x in np.asarray(r["vector"], np.float32)]]
        for r in rows
        if r["status"] == "ok" and r["layer"] == "l1"
    )
    assert out["pandas"] == expected
    assert out["polars"] == expected
    assert out["duckdb"] == expected
    assert out["pandas_columns"] == COLUMNS
    assert out["pandas_rows"] == out["polars_rows"] == out["pyarrow_rows"] == len(rows)
    assert out["pandas_filtered_rows"] == sum(r.get("layer") == "l1" for r in rows)
    assert out["duckdb_skips"] == sum(r["status"] != "ok" for r in rows)
    assert out["duckdb_dims"] == [[8], [16]]
    assert out["polars_vector_type"].startswith("List(Float32")
