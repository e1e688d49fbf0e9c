"""Copy a finished local run into the repository as a shipped example (`make example-run`):
its consolidated tables, run.json and images, with every path made relative to the repository
root, so that the README's analysis examples run as written on a fresh clone.

    python examples/pack_run.py runs/layers examples/runs/layers
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def relative(path: str | None, run: Path, to: Path) -> str | None:
    """A path under `run` as the same path under `to`, relative to the repository root."""
    if path is None:
        return None
    p = Path(path).resolve()
    if p.is_relative_to(run):
        return str((to / p.relative_to(run)).relative_to(ROOT))
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def pack(run: Path, to: Path) -> None:
    run, to = run.resolve(), to.resolve()
    shutil.rmtree(to, ignore_errors=True)
    (to / "images").mkdir(parents=True)
    for image in (run / "images").glob("*.png"):
        shutil.copy(image, to / "images" / image.name)
    results = pq.read_table(run / "results.parquet")
    for column in ("output_uri", "content_uri", "style_uri", "content_mask_uri", "style_mask_uri"):
        values = [relative(v, run, to) for v in results[column].to_pylist()]
        i = results.schema.get_field_index(column)
        results = results.set_column(i, column, pa.array(values, pa.string()))
    pq.write_table(results, to / "results.parquet")
    losses = pq.read_table(run / "losses.parquet")
    pq.write_table(losses.sort_by([("pair_id", "ascending"), ("iteration", "ascending")]),
                   to / "losses.parquet")  # fmt: skip
    meta = json.loads((run / "run.json").read_text())
    meta["manifest"] = str((to / "manifest.parquet").relative_to(ROOT))
    meta["output"] = str(to.relative_to(ROOT))
    (to / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    manifest = pq.read_table(run / "manifest.parquet")
    for column in ("content_uri", "style_uri"):
        values = [relative(v, run, to) for v in manifest[column].to_pylist()]
        i = manifest.schema.get_field_index(column)
        manifest = manifest.set_column(i, column, pa.array(values, pa.string()))
    pq.write_table(manifest, to / "manifest.parquet")
    ok = pc.sum(pc.equal(results["status"], "ok")).as_py()
    print(f"{to.relative_to(ROOT)}: {results.num_rows} rows ({ok} ok), {losses.num_rows} loss rows")


if __name__ == "__main__":
    pack(Path(sys.argv[1]), Path(sys.argv[2]))
