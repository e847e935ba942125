"""The request parameters of `lgen explore`'s endpoints: parsed, checked, one-line errors.

Owns `BadRequest` (what a handler answers with HTTP 4xx and its one-line message) and one
parser per kind of value a page sends: the continuous codes c, a category d (or a class
name through the bundle's d -> class table), a seed, a step count, the index of a c. Every
value is refused unless it is what the generator may be given: a finite number within
±C_RANGE, an existing d, an integer seed numpy accepts. Nothing here knows HTTP beyond the
status code: the handler (server.py) maps the query string to these functions.
"""

from __future__ import annotations

from typing import Mapping, Optional

from lifelong_gen.errors import LgenError
from lifelong_gen.runtime.codes import parse_finite

# The sliders' range: the priors are N(0, I), so ±3 covers 99.7% of what training drew;
# beyond it the generator extrapolates and a user learns nothing about what c means.
C_RANGE = 3.0
# numpy's default_rng takes any non-negative int; the page's seed box is a 32-bit field.
MAX_SEED = 2**32 - 1
# Images in one strip or one grid row: the page shows them side by side.
MAX_STEPS = 16
# The longest query value read: a c list of a few numbers or a class name is far shorter.
MAX_VALUE_CHARS = 400


class BadRequest(LgenError):
    """A request the explorer refuses: the handler answers `status` with the one-line message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(" ".join(str(message).split()))  # one line whatever the message held
        self.status = status


def known(query: Mapping[str, list[str]], names: tuple[str, ...]) -> None:
    """Refuse a parameter the endpoint does not read: a typo (`seeed=3`) must not pass as the default."""
    unknown = sorted(set(query) - set(names))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0][:40]!r}: this endpoint takes {', '.join(names)}")


def one(query: Mapping[str, list[str]], name: str, default: Optional[str] = None) -> Optional[str]:
    """The single value of query parameter `name` (parse_qs's lists), or `default` when absent."""
    values = query.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise BadRequest(f"{name} given {len(values)} times")
    if len(values[0]) > MAX_VALUE_CHARS:
        raise BadRequest(f"{name} is longer than {MAX_VALUE_CHARS} characters")
    return values[0]


def parse_number(text: str, name: str, limit: float = C_RANGE) -> float:
    """A finite float within ±limit; `nan`, `inf` and `1e999` are refused, not clipped."""
    try:
        value = parse_finite(text, name)
    except LgenError as e:
        raise BadRequest(str(e)) from None
    if abs(value) > limit:
        raise BadRequest(f"{name} = {value:g} is out of range: within ±{limit:g}")
    return value


def parse_c(text: Optional[str], c_dim: int) -> list[float]:
    """`c=0.5,-1.2` -> one value per continuous code (all 0 when absent)."""
    if text is None or text == "":
        return [0.0] * c_dim
    parts = text.split(",")
    if len(parts) != c_dim:
        raise BadRequest(f"c needs {c_dim} comma-separated values (one per continuous code), got {len(parts)}")
    return [parse_number(p.strip(), f"c{k + 1}") for k, p in enumerate(parts)]


def parse_int(text: Optional[str], name: str, lo: int, hi: int, default: Optional[int] = None) -> int:
    """An integer in [lo, hi]; `default` when absent (a missing required one is a 400)."""
    if text is None:
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    stripped = text.strip()
    if not (stripped.isdigit() or (stripped[:1] == "-" and stripped[1:].isdigit())):
        raise BadRequest(f"{name}: {text[:40]!r} is not an integer")
    value = int(stripped)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} = {value} is out of range: {lo}..{hi}")
    return value


def parse_seed(text: Optional[str]) -> int:
    return parse_int(text, "seed", 0, MAX_SEED, default=0)


def parse_category(query: Mapping[str, list[str]], name: str, model, table) -> int:
    """The category a request names: `NAME=D` (0-based) or `NAME_class=CLASS` through d_classes.json.

    Args:
        name: "d" for the image and grid, "from"/"to" for the ends of a strip.
        table: the bundle's DTable, or None (then only an index is accepted).
    """
    index, class_name = one(query, name), one(query, f"{name}_class")
    if (index is None) == (class_name is None):
        raise BadRequest(f"give {name}=D (0..{model.d_dim - 1}) or {name}_class=NAME, one of them")
    if index is not None:
        return parse_int(index, name, 0, model.d_dim - 1)
    if table is None:
        raise BadRequest("this model has no d -> class table (d_classes.json): pick d by index")
    from lifelong_gen.bundle import d_classes

    try:
        d, _ = d_classes.choose(table, table.path.parent, class_name, model.d_dim, flag=f"{name}_class")
    except LgenError as e:
        raise BadRequest(str(e)) from None
    return d
