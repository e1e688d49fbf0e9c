"""L-BFGS's curvature history for a batch of images (Nocedal & Wright 2006, §7.2), on the device.

Each image keeps a ring of its newest m curvature pairs (s_k, y_k) in one device buffer with
their inner products. The direction −H g uses the compact representation of Byrd, Nocedal &
Schnabel (1994), equal to the two-loop recursion in exact arithmetic: two batched
matrix-vector products with the stored pairs and m×m triangular solves (float64, on the
device), where the two-loop recursion would launch ~4m small kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nst_ops.compiling import row_products
from nst_ops.state import state

FIRST_STEP = 0.1  # max pixel change of a steepest-descent step (no pairs yet, or a restart)


@state
@dataclass
class LBFGSHistory:
    """Up to m pairs per image. buffer (B, 2m, n): rows [0, m) hold s, rows [m, 2m) hold y, by
    slot (ring order); sy[b, i, j] = s_i·y_j and yy[b, i, j] = y_i·y_j by slot (float64);
    count (B,) pairs stored; head (B,) the slot of the oldest pair once the ring is full."""

    m: int
    buffer: Tensor
    sy: Tensor
    yy: Tensor
    count: Tensor
    head: Tensor

    @classmethod
    def empty(cls, batch: int, n: int, m: int, like: Tensor) -> LBFGSHistory:
        """No pairs yet, for `batch` images of n values (like's dtype and device)."""
        sy = torch.zeros((batch, m, m), dtype=torch.float64, device=like.device)
        count = torch.zeros(batch, dtype=torch.long, device=like.device)
        buffer = like.new_zeros((batch, 2 * m, n))
        return cls(m, buffer, sy, torch.zeros_like(sy), count, torch.zeros_like(count))

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
        return row_products(self.buffer, v)

    def once_written(self, current: Tensor, v: Tensor, rows: Tensor, values: Tensor) -> Tensor:
        """`products(v)` of the buffer as `write(rows, values)` will leave it, from `current`
        = `products(v)` before that write: rows `rows` replaced by values·v (B, 2)."""
        return current.scatter(1, rows, row_products(values, v))

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


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per image a_b·b_b (B,) as float64. One BLAS dot per image, deliberately: a batched
    product or a sum rounds differently in float32, and L-BFGS on Gram losses amplifies a 1e-7
    difference in sᵀy to 1e-2 in the loss within 30 iterations (measured at 64 px), so this
    keeps the rows those of the former host-side L-BFGS (tests/nst_ops/test_lbfgs.py). B small
    kernels per call, no host sync."""
    return torch.stack([a[i].dot(b[i]) for i in range(a.shape[0])]).double()


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
