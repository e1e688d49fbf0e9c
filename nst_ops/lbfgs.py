"""L-BFGS (Nocedal & Wright 2006, Alg. 7.4) for a batch of images, every decision a tensor
operation on the images' device: no host round trip per iteration, so a GPU driver can enqueue
iterations ahead while the loss rows go to the host in blocks (nst_ops.deferred).

Each image keeps a ring of its newest m curvature pairs (s_k, y_k) in one device buffer with
their inner products. The direction −H g uses the compact representation of Byrd, Nocedal &
Schnabel (1994), equal to the two-loop recursion in exact arithmetic: two batched
matrix-vector products with the stored pairs and m×m triangular solves (float64, on the
device), where the two-loop recursion would launch ~4m small kernels.

Departure from torch.optim.LBFGS, deliberate: its no-line-search mode takes a raw −g step when
the first curvature pair is rejected (it diverges on Gram losses from a content init), and its
strong-Wolfe mode can overrun the evaluation budget inside a line search. Here the line search
is Armijo backtracking with one evaluation per trial (nst_ops.drivers.lbfgs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

FIRST_STEP = 0.1  # max pixel change of a steepest-descent step (no pairs yet, or a restart)
MEMORY = 100  # curvature pairs kept, m; whatever the iterations, so a compiled step is reused
C1 = 1e-4  # Armijo's sufficient-decrease constant


def armijo(f_new: Tensor, f: Tensor, slope: Tensor) -> Tensor:
    """Per image (B,): f(x + s) ≤ f(x) + c1·∇fᵀs with a descent slope ∇fᵀs < 0 and a finite
    f(x + s) (float64 inputs; s is the actual, clamped displacement)."""
    return torch.isfinite(f_new) & (f_new <= f + C1 * slope) & (slope < 0)


class LBFGSHistory:
    """Up to m pairs per image. buffer (B, 2m, n): rows [0, m) hold s, rows [m, 2m) hold y, by
    slot (ring order); sy[b, i, j] = s_i·y_j and yy[b, i, j] = y_i·y_j by slot (float64);
    count (B,) pairs stored; head (B,) the slot of the oldest pair once the ring is full."""

    def __init__(self, batch: int, n: int, m: int, like: Tensor) -> None:
        self.m = m
        self.buffer = like.new_zeros((batch, 2 * m, n))
        self.sy = torch.zeros((batch, m, m), dtype=torch.float64, device=like.device)
        self.yy = torch.zeros_like(self.sy)
        self.count = torch.zeros(batch, dtype=torch.long, device=like.device)
        self.head = torch.zeros_like(self.count)

    def select(self, keep: Tensor) -> None:
        """Keep the images `keep` (indices into the batch), e.g. after others stopped."""
        for name in ("buffer", "sy", "yy", "count", "head"):
            setattr(self, name, getattr(self, name).index_select(0, keep))

    def record(
        self, s: Tensor, y: Tensor, accept: Tensor, products: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The first of three steps storing (s, y) (B, n) for the images where `accept` (B,)
        and the curvature condition sᵀy > 0 holds (else skipped, keeping H positive definite):
        `record` (the inner products, count and head), `new_rows`, `write` (the pair's rows in
        the buffer). Returns (slot, store) (B,): the pair's slot, and where it
        is stored. Reads the buffer, never writes it, so a compiled `record` needs no copy of
        the (B, 2m, n) buffer. `products`: `products(y)` when already known."""
        m = self.m
        products = self.products(y) if products is None else products  # [S·y; Y·y]
        sy_new, yy_new = _dot(s, y), _dot(y, y)
        store = accept & (sy_new > 1e-10 * yy_new)
        full = self.count == m
        slot = torch.where(full, self.head, self.count)
        # s_i·y_new for every slot i (a reused slot's stale entries are never read: R only
        # pairs an older s with a newer y), y_i·y_new by row and column, then the diagonal
        _put(self.sy, 2, slot, products[:, :m], store)
        _put(self.yy, 2, slot, products[:, m:], store)
        _put(self.yy, 1, slot, products[:, m:], store)
        diagonal = slot * (m + 1)
        _put(self.sy.view(-1, m * m), 1, diagonal, sy_new, store, flat=True)
        _put(self.yy.view(-1, m * m), 1, diagonal, yy_new, store, flat=True)
        self.head = torch.where(store & full, (self.head + 1) % m, self.head)
        self.count = torch.where(store & ~full, self.count + 1, self.count)
        return slot, store

    def new_rows(self, s: Tensor, y: Tensor, slot: Tensor, store: Tensor) -> tuple[Tensor, Tensor]:
        """(rows (B, 2), values (B, 2, n)): the buffer rows of `slot` (its s and its y row) and
        what they hold once the pair is stored: s and y where `store`, else as they are."""
        rows = torch.stack([slot, slot + self.m], 1)
        old = self.buffer.gather(1, self._index(rows))
        return rows, torch.where(store[:, None, None], torch.stack([s, y], 1), old)

    def write(self, rows: Tensor, values: Tensor) -> None:
        """Put `new_rows` into the buffer, in place (one scatter)."""
        self.buffer.scatter_(1, self._index(rows), values)

    def _index(self, rows: Tensor) -> Tensor:
        return rows[:, :, None].expand(-1, -1, self.buffer.shape[2])

    def products(self, v: Tensor) -> Tensor:
        """[S·v; Y·v] (B, 2m) float64, by buffer row: each stored row's product with v (B, n)."""
        return _row_products(self.buffer, v)

    def once_written(self, current: Tensor, v: Tensor, rows: Tensor, values: Tensor) -> Tensor:
        """`products(v)` of the buffer as `write(rows, values)` will leave it, from `current`
        = `products(v)` before that write: rows `rows` replaced by values·v (B, 2)."""
        return current.scatter(1, rows, _row_products(values, v))

    def direction(
        self, g: Tensor, active: Tensor, products: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Search directions d = −H g (B, n) and initial steps (B,) float64: 1 with pairs, a
        steepest-descent step of FIRST_STEP max pixel change without. Where the compact form
        is not a descent direction, an `active` image's history restarts (steepest descent).
        `products`: `products(g)` when already known (`once_written`)."""
        m, device = self.m, g.device
        k = torch.arange(m, device=device)
        valid = k[None, :] < self.count[:, None]  # (B, m): chronological positions in use
        order = (self.head[:, None] + k[None, :]) % m  # slot at each position, oldest first
        products = self.products(g) if products is None else products  # [S·g; Y·g]
        a = torch.where(valid, products[:, :m].gather(1, order), 0.0)
        b = torch.where(valid, products[:, m:].gather(1, order), 0.0)
        both = valid[:, :, None] & valid[:, None, :]
        sy, yy = _chronological(self.sy, order), _chronological(self.yy, order)
        eye = torch.eye(m, dtype=torch.float64, device=device)
        # R_ij = s_i·y_j (i ≤ j); unused positions: identity rows, so their terms stay 0
        r = torch.where(both, sy.triu(), 0.0) + eye * (~valid)[:, :, None]
        newest = (self.count - 1).clamp_min(0)[:, None]
        s_last = sy.diagonal(dim1=1, dim2=2).gather(1, newest)[:, 0]
        y_last = yy.diagonal(dim1=1, dim2=2).gather(1, newest)[:, 0]
        gamma = torch.where(self.count > 0, s_last / y_last, 1.0)  # H_0 = γ I
        p, q = _compact(r, torch.where(both, yy, 0.0), gamma, a, b)
        g_hg = gamma * _dot(g, g) + (a * p).sum(1) + (b * q).sum(1)  # gᵀH g
        coefficients = torch.zeros((g.shape[0], 2 * m), dtype=torch.float64, device=device)
        coefficients.scatter_(1, order, p)
        coefficients.scatter_(1, order + m, q)
        w = coefficients.to(g.dtype).unsqueeze(2)
        scaled = (gamma.to(g.dtype)[:, None] * g).unsqueeze(2)
        d = torch.baddbmm(scaled, self.buffer.transpose(1, 2), w).squeeze(2).neg()
        good = (self.count > 0) & torch.isfinite(g_hg) & (g_hg > 0)
        restart = active & (self.count > 0) & ~good
        self.count = torch.where(restart, 0, self.count)
        self.head = torch.where(restart, 0, self.head)
        steepest = FIRST_STEP / g.abs().amax(1).clamp_min(1e-30).double()
        return torch.where(good[:, None], d, -g), torch.where(good, 1.0, steepest)


def _compact(r: Tensor, yy: Tensor, gamma: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The compact form's coefficients (Byrd, Nocedal & Schnabel 1994): with R = triu(SᵀY)
    (B, m, m), YᵀY `yy`, H_0 = γ I and a = S·g, b = Y·g (B, m) in chronological order,
    H g = γ g + Σ p_i s_i + Σ q_i y_i, where q = −γ R⁻¹a and p = R⁻ᵀ((D + γ YᵀY) R⁻¹a − γ b)."""
    u = torch.linalg.solve_triangular(r, a.unsqueeze(2), upper=True)
    scaled = gamma.view(-1, 1, 1)
    middle = torch.diag_embed(r.diagonal(dim1=1, dim2=2)) + scaled * yy
    rhs = middle @ u - scaled * b.unsqueeze(2)
    p = torch.linalg.solve_triangular(r.transpose(1, 2), rhs, upper=False).squeeze(2)
    return p, -gamma[:, None] * u.squeeze(2)


@contextmanager
def ieee_products() -> Iterator[None]:
    """CUDA float32 matmuls in IEEE arithmetic within, whatever the process's setting (which
    `--precision tf32` turns to TF32 for the objective), restored after. Deliberate: the
    history's batched products with the (B, 2m, n) buffer (R, YᵀY, Sᵀg, Yᵀg) and the
    direction's combination of the pairs would otherwise round their inputs to TF32's 10-bit
    mantissa (~5e-4 relative each), beside sᵀy and yᵀy computed in IEEE (`_dot`), and L-BFGS
    amplifies such differences (see `_dot`). Wrap the calls, not the code: a compiled
    function is compiled and run under the same setting (inductor keys its cache on it)."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32 = before


def trial(x: Tensor, d: Tensor, step: Tensor) -> Tensor:
    """The next point to evaluate, clamp(x + t·d, 0, 1) (B, n), for steps t (B,)."""
    return (x + step.to(x.dtype)[:, None] * d).clamp_(0, 1)


Accepted = tuple[Tensor, Tensor, Tensor, Tensor, tuple[Tensor, Tensor], Tensor | None]


def accept_trial(
    history: LBFGSHistory, x: Tensor, g: Tensor, f: Tensor, x_new: Tensor, g_new: Tensor,
    f_new: Tensor, ahead: bool = False,
) -> Accepted:  # fmt: skip
    """Armijo's decision on the evaluated trial x_new (B, n), with its gradient g_new (B, n)
    and total loss f_new (B,), from the iterate x, g, f (f float64). Records the curvature pair
    in the history's inner products (LBFGSHistory.record). Returns (x, g, f, accept, rows,
    products): the iterate after the decision, accept (B,), the pair's buffer rows for
    LBFGSHistory.write (LBFGSHistory.new_rows), and with `ahead` the written buffer's
    products with g_new (B, 2m) for `next_trial` (LBFGSHistory.once_written; valid where
    accepted, the only images it uses them for), else None. With `next_trial`, one
    iteration's bookkeeping: two functions that only read the (B, 2m, n) buffer, so both
    compile (nst_ops.evaluation) without copying it. With `ahead`, compiled, the products
    with y and with g_new are two reductions that inductor fuses into one pass over the
    buffer (`_row_products`): two reads of it per iteration instead of three. Eager callers
    leave it off: there it saves no read, and the direction's own products keep the host
    reference's rounding, which eager rows match bit for bit (tests/nst_ops/test_lbfgs.py)."""
    f_new, s = f_new.double(), x_new - x
    accept = armijo(f_new, f, (g * s).sum(1).double())
    y = g_new - g
    if ahead:  # [S; Y]·y and [S; Y]·g_new, side by side: one pass when compiled
        with_y, with_g = history.products(y), history.products(g_new)
        rows = history.new_rows(s, y, *history.record(s, y, accept, with_y))
        products = history.once_written(with_g, g_new, *rows)
    else:
        rows, products = history.new_rows(s, y, *history.record(s, y, accept)), None
    x = torch.where(accept[:, None], x_new, x)
    g = torch.where(accept[:, None], g_new, g)
    f = torch.where(accept, f_new, f)
    return x, g, f, accept, rows, products


def next_trial(
    history: LBFGSHistory, x: Tensor, g: Tensor, d: Tensor, step: Tensor, accept: Tensor,
    products: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """After `accept_trial` and LBFGSHistory.write: where accepted, a new direction and step
    from the history (with accept_trial's products, if any), else the same direction at half
    the step (backtracking). Returns (d, step, the next trial point)."""
    d_new, step_new = history.direction(g, accept, products)
    d = torch.where(accept[:, None], d_new, d)
    step = torch.where(accept, step_new, 0.5 * step)
    return d, step, trial(x, d, step)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per image a_b·b_b (B,) as float64. One BLAS dot per image, deliberately: a batched
    product or a sum rounds differently in float32, and L-BFGS on Gram losses amplifies a 1e-7
    difference in sᵀy to 1e-2 in the loss within 30 iterations (measured at 64 px), so this
    keeps the rows those of the former host-side L-BFGS (tests/nst_ops/test_lbfgs.py). B small
    kernels per call, no host sync."""
    return torch.stack([a[i].dot(b[i]) for i in range(a.shape[0])]).double()


def _row_products(rows: Tensor, v: Tensor) -> Tensor:
    """rows (B, R, n) times v (B, n): (B, R) float64. Eager, one batched product (BLAS or
    cuBLAS). Compiled, a multiply-reduce instead, deliberately: inductor fuses several over
    the same rows into one pass (separate cuBLAS calls would each read the rows), generates
    it without a (B, R, n) temporary, and splits the long reduction over n across a GPU's
    multiprocessors itself."""
    if torch.compiler.is_compiling():
        return (rows * v.unsqueeze(1)).sum(2).double()
    return torch.bmm(rows, v.unsqueeze(2)).squeeze(2).double()


def _chronological(matrix: Tensor, order: Tensor) -> Tensor:
    """(B, m, m) by slot → by chronological position: out[b, i, j] = matrix[b, o_i, o_j]."""
    m = matrix.shape[1]
    rows = matrix.gather(1, order.unsqueeze(2).expand(-1, -1, m))
    return rows.gather(2, order.unsqueeze(1).expand(-1, m, -1))


def _put(
    target: Tensor, dim: int, index: Tensor, values: Tensor, mask: Tensor, flat: bool = False
) -> None:
    """target's column (dim 2) or row (dim 1) `index[b]` := values[b] where mask[b]; with
    `flat`, the single element index[b] of a (B, N) view."""
    if flat:
        where = index.view(-1, 1)
        target.scatter_(
            1, where, torch.where(mask[:, None], values[:, None], target.gather(1, where))
        )
        return
    m = target.shape[1]
    if dim == 2:
        where = index.view(-1, 1, 1).expand(-1, m, 1)
        new = values.unsqueeze(2)
    else:
        where = index.view(-1, 1, 1).expand(-1, 1, m)
        new = values.unsqueeze(1)
    target.scatter_(dim, where, torch.where(mask.view(-1, 1, 1), new, target.gather(dim, where)))
