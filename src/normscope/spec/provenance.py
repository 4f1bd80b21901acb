"""Provenance: what a result was made from, in a few fields every output can carry.

`provenance(spec)` -> {"description_sha256", "normscope", "git_commit", "git_dirty"}:

- `description_sha256`: SHA-256 of the fully expanded description, the flat list of
  layers (name, kind, every argument with its default filled in, inputs, aux weight)
  plus name, family, input shape, classes, norm, reuse and the `train:` settings without
  `seed`. Comments, `extends:`, `vars:` and blocks leave no trace: two files that expand
  to the same model and training hash alike; runs of one variant with different seeds too.
  `draw:` (how a diagram looks) is not part of it.
- `normscope`: the package version; `git_commit`, `git_dirty`: the commit of the
  normscope source when it lies in a git checkout (None otherwise, e.g. when installed).

Run directories (results.json), comparisons (comparison.json, table.tex) and diagrams
(.tex comment, PDF metadata) carry it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path

from normscope.fileio import jsonable
from normscope.spec.model_spec import ModelSpec
from normscope.version import __version__

__all__ = ["expanded_description", "description_hash", "git_state", "provenance", "short"]

# train settings that do not change which experiment a run belongs to
_NOT_HASHED = ("seed",)


def expanded_description(spec: ModelSpec) -> dict:
    """The fully expanded description as plain data (what `description_hash` hashes)."""
    return jsonable(
        {
            "name": spec.name,
            "family": spec.family,
            "input": list(spec.input_shape) if spec.input_shape else None,
            "classes": spec.classes,
            "norm": spec.norm,
            "reuse": spec.reuse,
            "layers": [
                {"name": ly.name, "kind": ly.kind, "args": ly.args, "inputs": list(ly.inputs), "aux": ly.aux}
                for ly in spec.layers
            ],
            "train": {k: v for k, v in spec.train.items() if k not in _NOT_HASHED},
        }
    )


def description_hash(spec: ModelSpec) -> str:
    """SHA-256 (hex) of the canonical JSON of `expanded_description(spec)`."""
    text = json.dumps(expanded_description(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=None)
def git_state(where: str | None = None) -> dict:
    """{"commit", "dirty"} of the git checkout holding `where` (default: the normscope
    source); both None outside a checkout or without git."""
    where = where or str(Path(__file__).resolve().parents[1])

    def git(*args):
        return subprocess.run(
            ["git", "-C", where, *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def version() -> str:
    """normscope's version (`normscope.version`)."""
    return __version__


def tool_provenance() -> dict:
    """normscope's version and git commit (for outputs made from several descriptions)."""
    git = git_state()
    return {"normscope": version(), "git_commit": git["commit"], "git_dirty": git["dirty"]}


def provenance(spec: ModelSpec) -> dict:
    """The description hash, normscope's version and git commit (see the module docstring)."""
    return {"description_sha256": description_hash(spec), **tool_provenance()}


def short(prov: dict | None) -> str:
    """One line for a comment or a PDF's metadata: `description sha256 1a2b3c4d5e6f, normscope 0.1.0, git 44a6b7f`."""
    if not prov:
        return "no provenance recorded"
    parts = []
    if prov.get("description_sha256"):
        parts.append(f"description sha256 {prov['description_sha256'][:12]}")
    parts.append(f"normscope {prov.get('normscope')}")
    if prov.get("git_commit"):
        parts.append(f"git {prov['git_commit'][:7]}{' (modified)' if prov.get('git_dirty') else ''}")
    return ", ".join(parts)
