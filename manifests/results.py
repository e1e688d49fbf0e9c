"""The outcome of one pair: the results-table columns after its id, URIs, parameters and tags.

`PairResult` is built once per pair — by the worker that ran it, or by the driver for a row that
never ran (bad id or parameters, or its worker died too often) — and is what the worker returns
to the driver and what becomes the pair's results row. `manifests.schema.results_schema` derives
the outcome columns from its fields (`final_losses` becomes one `final_{term}_loss` column per
term of nst_ops.objective.LOSS_TERMS).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from nst_ops.objective import TERM_NAMES


class Status(str, Enum):
    """A results row's `status`."""

    OK = "ok"  # stylized; image, loss table and done/ marker written
    ERROR = "error"  # not stylized (bad input, storage, worker died, ...); `error` says why
    DIVERGED = "diverged"  # the loss became non-finite; the best finite image is written


@dataclass(frozen=True)
class PairResult:
    """One pair's outcome. Unset fields are null in the table (e.g. everything but `error`,
    `attempt` and `finished_at` for a row rejected before it ran)."""

    status: Status
    error: str | None = None
    output_uri: str | None = None
    iterations_run: int | None = None
    final_losses: Mapping[str, float] | None = None  # the last loss row, by LOSS_TERMS name
    warnings: tuple[str, ...] | None = None
    yardstick_content_loss: float | None = None
    yardstick_style_loss: float | None = None
    yardstick_total: float | None = None
    yardstick_size: int | None = None  # the long side it was measured at (≤ --yardstick-size)
    iterations_to_target: int | None = None
    # mask URIs `auto`: the masks the worker computed and used (Luan's palette), and its seconds
    auto_content_mask_uri: str | None = None
    auto_style_mask_uri: str | None = None
    auto_mask_s: float | None = None
    wall_s: float | None = None  # its group's own time: loading, optimisation and writing
    batch_size: int | None = None  # pairs optimised together (pairs-per-gpu)
    compile_s: float | None = None  # compiling for this pair's batch (0: graphs reused)
    device: str | None = None
    gpu_ids: tuple[int, ...] | None = None
    node: str | None = None  # the node's IP address
    node_id: str | None = None  # Ray's id of the node (hex): tells apart nodes on one address
    attempt: int | None = None  # 0 = rejected before running
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def columns(self) -> dict[str, Any]:
        """The outcome as results-table columns (`status` as its text, lists as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "final_losses":
                out |= {f"final_{n}_loss": (value or {}).get(n) for n in TERM_NAMES}
            elif isinstance(value, Status):
                out[f.name] = value.value
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
