"""nst_ops is pure PyTorch: no orchestration or I/O libraries."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_nst_ops_imports_no_io_or_orchestration_modules() -> None:
    code = (
        "import sys, nst_ops.optimize, nst_ops.params, nst_ops.vgg, nst_ops.losses, "
        "nst_ops.color, nst_ops.objective, nst_ops.lbfgs\n"
        "bad = [m for m in ('ray', 'fsspec', 's3fs', 'pyarrow', 'boto3', 'botocore') "
        "if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"nst_ops pulled in {out.stdout.strip()}"
