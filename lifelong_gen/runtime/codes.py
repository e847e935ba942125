"""The generator's inputs in numpy: codes drawn from the priors, traversals, interpolation paths.

Owns `Codes` (z, c, d for a batch), `random_codes` (z, c ~ N(0, I), d uniform: the numpy
twin of the torch side's replay.sample_codes), the paper's traversal and d x c grid
layouts, the path between two encoded images, and the parsing of `--cK VALUE` / `--d`.
`model` arguments are anything with z_dim, c_dim and d_dim (lifelong_gen.runtime.OnnxModel, a ModelConfig).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from lifelong_gen.errors import LgenError

if TYPE_CHECKING:
    from lifelong_gen.runtime import OnnxModel

_CODE_FLAG = re.compile(r"--c(\d+)(?:=(.*))?")


def parse_finite(text: str, name: str) -> float:
    """A finite float from `text` (`nan`, `inf`, `1e999` refused), or a one-line LgenError naming `name`."""
    try:
        number = float(text)
    except ValueError:
        raise LgenError(f"{name}: {text[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise LgenError(f"{name} must be finite, got {text[:40]}")
    return number


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def one_hot(indices: np.ndarray, d_dim: int) -> np.ndarray:
    out = np.zeros((len(indices), d_dim), np.float32)
    out[np.arange(len(indices)), indices] = 1.0
    return out


@dataclass
class Codes:
    """A batch of generator inputs: z [N, z_dim], c [N, c_dim], d [N, d_dim] (one-hot or soft)."""

    z: np.ndarray
    c: np.ndarray
    d: np.ndarray

    def __len__(self) -> int:
        return self.z.shape[0]

    def as_records(self, include_z: bool = True) -> list[dict[str, Any]]:
        """Per sample: argmax d, the d vector when it is not one-hot, c (and z), rounded for JSON."""
        records = []
        for i in range(len(self)):
            d = self.d[i]
            rec: dict[str, Any] = {"d": int(d.argmax())}
            if not (np.count_nonzero(d) == 1 and d.max() == 1.0):
                rec["d_probs"] = [round(float(v), 6) for v in d]
            rec["c"] = [round(float(v), 6) for v in self.c[i]]
            if include_z:
                rec["z"] = [round(float(v), 6) for v in self.z[i]]
            records.append(rec)
        return records


def random_codes(model: OnnxModel, n: int, rng: np.random.Generator, *, d: Optional[int] = None,
                 fixed_c: Optional[dict[int, float]] = None) -> Codes:
    """z, c ~ N(0, I) and d uniform over the active categories; `d` and `fixed_c` (0-based index ->
    value) pin codes. Draw order is fixed (z, then c, then d), so a seed gives the same z whatever is pinned."""
    z = rng.standard_normal((n, model.z_dim), dtype=np.float32)
    c = rng.standard_normal((n, model.c_dim), dtype=np.float32)
    d_idx = rng.integers(0, model.d_dim, size=n)
    for k, value in (fixed_c or {}).items():
        c[:, k] = value
    if d is not None:
        d_idx[:] = d
    return Codes(z, c, one_hot(d_idx, model.d_dim))


def traversal_codes(model: OnnxModel, k: int, steps: int, rows: Sequence[int], rng: np.random.Generator,
                    z_per_row: bool = False, lo: float = -1.0, hi: float = 1.0) -> Codes:
    """Vary continuous code c_k from lo to hi along each row (paper fig. 4), the other c at 0.

    Rows are the d categories in `rows`, with one z shared by the whole grid, or (z_per_row)
    one fresh z per row for a single repeated category.
    """
    values = np.linspace(lo, hi, steps, dtype=np.float32)
    n_rows = len(rows)
    z_rows = rng.standard_normal((n_rows if z_per_row else 1, model.z_dim), dtype=np.float32)
    z = np.repeat(z_rows, steps, axis=0) if z_per_row else np.repeat(z_rows, n_rows * steps, axis=0)
    c = np.zeros((n_rows * steps, model.c_dim), np.float32)
    c[:, k] = np.tile(values, n_rows)
    d = one_hot(np.repeat(np.asarray(rows), steps), model.d_dim)
    return Codes(z, c, d)


def category_grid_codes(model: OnnxModel, rows: int, rng: np.random.Generator) -> Codes:
    """The d x c grid (paper fig. 3): one column per category, one row per c ~ N(0, I), z shared."""
    cols = model.d_dim
    z = np.repeat(rng.standard_normal((1, model.z_dim), dtype=np.float32), rows * cols, axis=0)
    c = np.repeat(rng.standard_normal((rows, model.c_dim), dtype=np.float32), cols, axis=0)
    d = one_hot(np.tile(np.arange(cols), rows), model.d_dim)
    return Codes(z, c, d)


def lerp_codes(model: OnnxModel, d_probs: np.ndarray, c_means: np.ndarray, steps: int,
               rng: np.random.Generator) -> Codes:
    """Linear path from u_a = (p_a(d), c_a) to u_b in `steps` points, one shared z.

    Args:
        d_probs: [2, d_dim] softmax of S's d logits for the two endpoints.
        c_means: [2, c_dim] S's c means for the two endpoints.
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # [steps, 1]
    d = (1 - t) * d_probs[0] + t * d_probs[1]  # stays a probability vector
    c = (1 - t) * c_means[0] + t * c_means[1]
    z = np.repeat(rng.standard_normal((1, model.z_dim), dtype=np.float32), steps, axis=0)
    return Codes(z, c.astype(np.float32), d.astype(np.float32))


# ---------------------------------------------------------------- command-line codes


def parse_code_flags(args: list[str], c_dim: int) -> dict[int, float]:
    """`--cK VALUE` / `--cK=VALUE` extra arguments -> {K - 1: VALUE}, checked against c_dim."""
    fixed: dict[int, float] = {}
    i = 0
    while i < len(args):
        token = args[i]
        match = _CODE_FLAG.fullmatch(token)
        if match is None:
            raise LgenError(f"unexpected argument {token!r} (see `lgen sample --help`)")
        k, value = int(match[1]), match[2]
        flag = f"--c{k}"
        if value is None:
            if i + 1 >= len(args):
                raise LgenError(f"{flag} needs a value")
            value = args[i + 1]
            i += 1
        i += 1
        if not 1 <= k <= c_dim:
            have = ", ".join(f"--c{i + 1}" for i in range(c_dim)) if c_dim else "none"
            raise LgenError(f"{flag}: the model has {c_dim} continuous code(s) ({have})")
        number = parse_finite(value, flag)
        if k - 1 in fixed:
            raise LgenError(f"{flag} given twice")
        fixed[k - 1] = number
    return fixed


def check_category(d: Optional[int], model: OnnxModel) -> None:
    """`--d D` must name one of the model's active categories (0-based)."""
    if d is not None and not 0 <= d < model.d_dim:
        raise LgenError(f"--d {d} is out of range: the model has {model.d_dim} categories (0..{model.d_dim - 1})")
