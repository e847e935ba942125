"""Reading pickled numpy arrays from third-party data packages without running their code.

A pickle is a program: `pickle.load` calls whatever globals the file names (`os.system`,
`builtins.eval`, ...). Some datasets are only published as pickled arrays (the PyPI package
`animal-mnist`), so `load_arrays` reads them with `ArrayUnpickler`, which resolves only the
globals numpy's own array pickling emits and refuses every other one with a one-line
LgenError before anything is called. numpy only; torch-free.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from lifelong_gen.errors import LgenError, one_line

try:  # numpy >= 2 moved the array-rebuilding functions to numpy._core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# (module, name) -> object: what ndarray's pickling writes and nothing else: _reconstruct +
# ndarray + dtype (protocols 2-4), _frombuffer + dtype (protocol 5); numpy 1.x names the
# functions under numpy.core, 2.x under numpy._core. Containers of arrays (dict, list, tuple)
# are built by pickle opcodes and never reach find_class.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
ALLOWED_GLOBALS = tuple(f"{m}.{n}" for m, n in _ALLOWED)


class ArrayUnpickler(pickle.Unpickler):
    """An Unpickler that builds numpy arrays and plain containers, and refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise LgenError(f"refused to unpickle global {module}.{name}: only numpy arrays are read "
                            f"({', '.join(ALLOWED_GLOBALS)})")
        return found


def _check(value: Any, where: str = "the pickle") -> None:
    """Raise LgenError unless `value` is numeric/str arrays, ints, strs and lists/tuples/dicts of them."""
    if isinstance(value, np.ndarray):
        # An object array would hold arbitrary Python objects; real image data never does.
        if value.dtype.hasobject:
            raise LgenError(f"{where} holds an object array; only plain numeric arrays are read")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, f"a key of {where}")
            _check(item, f"{where}[{key!r}]")
    elif not isinstance(value, (int, str)):
        raise LgenError(f"{where} holds a {type(value).__name__}; only numpy arrays, ints, strs "
                        "and lists/tuples/dicts of them are read")


def load_arrays(path: Path) -> Any:
    """What a pickle file of numpy arrays holds (gzip-compressed when the name ends in .gz).

    Args:
        path: the file; its globals are resolved by `ArrayUnpickler`.

    Returns:
        an ndarray, or a list / tuple / dict of arrays, ints and strs, as stored.

    Raises:
        LgenError: one line, when the file is missing, unreadable, names a refused global
            or holds anything else.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            value = ArrayUnpickler(f).load()
    except LgenError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as e:  # missing, truncated or malformed
        raise LgenError(f"cannot read pickled arrays {path}: {one_line(e)}") from None
    _check(value, path.name)
    return value
