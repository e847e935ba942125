"""What `lgen explore`'s endpoints compute: the model's facts, and PNGs of images, grids and strips.

Owns `Explorer`, one per served model: it holds the onnxruntime model (runtime/), the bundle's
d -> class table and card facts, and answers each endpoint with bytes ready to send (JSON, or
a PNG with the codes that drew it). Parameters are checked by params.py before anything runs;
the HTTP side is server.py. Torch-free: numpy, onnxruntime, Pillow and the torch-free core.

Each PNG holds two text chunks: `lgen-grid` (images.GRID_KEY, the layout `lgen sample`
and `interpolate` record, so that `lgen encode` cuts a downloaded grid into its images) and
`lgen-codes` (CODES_KEY: the seed, the mode and per image its d, c and, once, the shared z, in
the records `lgen sample --json` prints).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from lifelong_gen.errors import LgenError
from lifelong_gen.explore import params as p
from lifelong_gen.images import grid_text, make_grid, to_pil
from lifelong_gen.runtime.codes import Codes, lerp_codes, one_hot, softmax

CODES_KEY = "lgen-codes"
# An upload is one image file; the pixel limit of `lgen encode` (images.MAX_IMAGE_PIXELS) is
# checked from its header after this byte limit, which only keeps a request from filling memory.
MAX_UPLOAD_BYTES = 16 * 1024 * 1024


class Explorer:
    """The served model and everything the page asks of it.

    Args:
        model: a runtime OnnxModel (lifelong_gen.runtime.load_model).
        label: how the page names the model (the --model value, or the embedded model's name).
    """

    def __init__(self, model, label: str):
        from lifelong_gen.bundle import d_classes

        self.model = model
        self.label = label
        self.table = d_classes.load(model.bundle)
        self.facts = model_facts(model, self.table, label)

    # ------------------------------------------------------------ codes -> PNG
    def _z(self, seed: int) -> np.ndarray:
        """The z a seed draws: the first draw of default_rng(seed), as `lgen sample --seed` draws it."""
        return np.random.default_rng(seed).standard_normal((1, self.model.z_dim), dtype=np.float32)  # [1, z_dim]

    def _png(self, codes: Codes, columns: int, mode: str, seed: Optional[int]) -> tuple[bytes, dict]:
        """Run G on `codes` and return the PNG (grid layout + codes in text chunks) and its summary."""
        images = self.model.sample(codes.z, codes.c, codes.d)  # [N, C, H, W]
        record = {"model": self.label, "mode": mode, "seed": seed, "columns": columns,
                  "z": [round(float(v), 6) for v in codes.z[0]], "cells": codes.as_records(include_z=False)}
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        text = {**grid_text(len(codes), columns, images.shape[2:4], padding=0 if len(codes) == 1 else 2),
                CODES_KEY: json.dumps(record, separators=(",", ":"))}
        for key, value in text.items():
            info.add_text(key, value)
        buf = io.BytesIO()
        if len(codes) == 1:  # one image: no border, exactly what `lgen sample --out-dir` writes
            grid = make_grid(images, 1, padding=0)
        else:
            grid = make_grid(images, columns)
        # compress_level 1: a 28x28 PNG is a few hundred bytes either way; level 6 costs ms on a grid
        to_pil(grid).save(buf, format="PNG", pnginfo=info, compress_level=1)
        return buf.getvalue(), record

    def image(self, query: Mapping[str, list[str]]) -> tuple[bytes, dict]:
        """One image: G(z(seed), c, d)."""
        p.known(query, ("d", "d_class", "c", "seed"))
        m = self.model
        d = p.parse_category(query, "d", m, self.table)
        c = p.parse_c(p.one(query, "c"), m.c_dim)
        seed = p.parse_seed(p.one(query, "seed"))
        codes = Codes(self._z(seed), np.asarray([c], np.float32), one_hot(np.asarray([d]), m.d_dim))
        return self._png(codes, 1, "image", seed)

    def grid(self, query: Mapping[str, list[str]]) -> tuple[bytes, dict]:
        """The paper's fig. 3: a column per d, a row per value of c_k from -C_RANGE to C_RANGE, z shared."""
        p.known(query, ("vary", "steps", "c", "seed"))
        m = self.model
        if m.c_dim == 0:
            raise p.BadRequest("this model has no continuous code to vary")
        k = p.parse_int(p.one(query, "vary"), "vary", 1, m.c_dim, default=1) - 1
        rows = p.parse_int(p.one(query, "steps"), "steps", 2, p.MAX_STEPS, default=7)
        c = p.parse_c(p.one(query, "c"), m.c_dim)
        seed = p.parse_seed(p.one(query, "seed"))
        values = np.linspace(-p.C_RANGE, p.C_RANGE, rows, dtype=np.float32)
        cs = np.repeat(np.asarray([c], np.float32), rows * m.d_dim, axis=0)  # [rows * d_dim, c_dim]
        cs[:, k] = np.repeat(values, m.d_dim)
        d = one_hot(np.tile(np.arange(m.d_dim), rows), m.d_dim)
        z = np.repeat(self._z(seed), rows * m.d_dim, axis=0)
        return self._png(Codes(z, cs, d), m.d_dim, f"grid c{k + 1}", seed)

    def strip(self, query: Mapping[str, list[str]]) -> tuple[bytes, dict]:
        """From one class to another (across domains too): d and c on a straight line, z shared."""
        p.known(query, ("from", "from_class", "to", "to_class", "steps", "c", "seed"))
        m = self.model
        a = p.parse_category(query, "from", m, self.table)
        b = p.parse_category(query, "to", m, self.table)
        steps = p.parse_int(p.one(query, "steps"), "steps", 2, p.MAX_STEPS, default=8)
        c = p.parse_c(p.one(query, "c"), m.c_dim)
        seed = p.parse_seed(p.one(query, "seed"))
        ends = one_hot(np.asarray([a, b]), m.d_dim)  # [2, d_dim]
        codes = lerp_codes(m, ends, np.asarray([c, c], np.float32), steps, np.random.default_rng(seed))
        return self._png(codes, steps, "classes", seed)

    def upload_strip(self, query: Mapping[str, list[str]], body: bytes) -> tuple[bytes, dict]:
        """From one uploaded image to another, each encoded with S (as `lgen interpolate --from-image --to-image`).

        The body is the two files back to back; `split` is the byte length of the first (the
        page sends Blob([a, b])): no multipart parser is needed, and neither file is copied twice.
        """
        p.known(query, ("split", "steps", "seed"))
        m = self.model
        steps = p.parse_int(p.one(query, "steps"), "steps", 2, p.MAX_STEPS, default=8)
        seed = p.parse_seed(p.one(query, "seed"))
        split = p.parse_int(p.one(query, "split"), "split", 1, max(1, len(body) - 1))
        pixels = np.stack([read_upload(body[:split], "the first upload", m.image_shape),
                           read_upload(body[split:], "the second upload", m.image_shape)])  # [2, C, R, R]
        d_logits, c_mean = m.encode(pixels)
        probs = softmax(d_logits.astype(np.float64)).astype(np.float32)
        codes = lerp_codes(m, probs, c_mean, steps, np.random.default_rng(seed))
        png, record = self._png(codes, steps, "images", seed)
        record["ends"] = [{"d": int(q.argmax()), "p": round(float(q.max()), 4)} for q in probs]
        return png, record


def read_upload(data: bytes, label: str, image_shape: tuple[int, int, int]) -> np.ndarray:
    """One uploaded file -> float32 [C, R, R] in [-1, 1], read exactly as `lgen encode` reads a file.

    open_image takes a path and applies encode's limits (pixels from the header before
    decoding, truncated data, animated files): the bytes go through a private temporary file
    so that the same function, not a copy of it, decides. Errors name `label`, not the file.
    """
    from lifelong_gen.images import open_image, to_float, to_model_pixels

    with tempfile.TemporaryDirectory(prefix="lgen-explore-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        try:
            image = open_image(path)
        except LgenError as e:
            raise p.BadRequest(str(e).replace(str(path), label)) from None
    channels, resolution, _ = image_shape
    pixels, _ = to_model_pixels(image, channels, resolution)  # uint8 [C, R, R]
    return to_float(pixels)


def model_facts(model, table, label: str) -> dict[str, Any]:
    """What the page shows beside the image: shape, classes by domain, domains, lineage, headline metrics."""
    from lifelong_gen.bundle.model_card import lineage_chain, read_metrics
    from lifelong_gen.config import domain_slots

    run = model.run
    train, cfg = run.train, run.model
    # Ancestors nearest first, as the model card lists them; a Hub id, an embedded name or a path.
    lineage = [{"model": str(r.get("repo_id") or r.get("name") or r.get("model")), "domains": r.get("domains", [])}
               for r in lineage_chain(run)]
    domains = []
    for k, name in enumerate(train.domains):
        if train.d_per_domain is not None and not train.joint:
            first, end = (domain_slots(train, cfg, k - 1) if k else 0), domain_slots(train, cfg, k)
        else:
            first, end = 0, cfg.d_dim
        # The oldest ancestor that already had domain k learned it (model_card.py's rule).
        owners = [r["model"] for r in lineage if len(r["domains"]) > k]
        learned = "this model" if k >= train.inherited_domains or not owners else owners[-1]
        domains.append({"name": name, "d": [first, end - 1], "learned_by": learned})
    metrics, metrics_note = read_metrics(model.bundle)
    return {"model": label, "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "d_dim": cfg.d_dim, "c_range": p.C_RANGE,
            "image_shape": list(model.image_shape), "domains": domains, "classes": class_groups(table, domains),
            "lineage": lineage,
            "metrics": [[name.replace("\\|", "|"), value] for name, value in metrics], "metrics_note": metrics_note,
            "max_upload_bytes": MAX_UPLOAD_BYTES, "max_steps": p.MAX_STEPS}


def class_groups(table, domains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The class picker: per domain its d's, named by d_classes.json (purest first per class) or by index."""
    if table is None:
        return [{"domain": dom["name"], "entries": [{"d": d, "name": f"d {d}"} for d in range(dom["d"][0], dom["d"][1] + 1)]}
                for dom in domains]
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in table.classes}
    for row in sorted(table.rows, key=table._order):
        groups.setdefault(row.domain, []).append({"d": row.d, "name": row.name, "share": row.share})
    return [{"domain": name, "entries": entries} for name, entries in groups.items() if entries]
