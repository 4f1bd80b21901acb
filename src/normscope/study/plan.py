"""The plan of a study: which variants, the (variant, seed) jobs, and where each run stands.

A :class:`Job` holds everything one run needs (its Variant, with the study's and its cell's
overrides, the seed, the data, the run directory); it is JSON-able (``to_dict``), so it
crosses process boundaries and can be handed to any engine; `worker.train_one` carries it
out. A study may cross factors (``--factor KEY=V1,V2``): every cell (a combination of their
levels) × variant × seed is a job, paired by seed within each cell.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import normscope.rundir as runs
from normscope import norms
from normscope.errors import NormscopeError
from normscope.fileio import safe_component
from normscope.rundir import ATTRIBUTION_JSON
from normscope.spec.overrides import Override, parse_override, value_text
from normscope.spec.settings import flag_settings
from normscope.spec.variant import Variant
from normscope.study.layout import RUNS, STUDY

# settings two calls on one study directory must agree on
PROTOCOL = ("family", "data", "epochs", "subset", "test_subset", "batch_size", "lr", "sets", "factors")


class StudyError(NormscopeError):
    pass


def parse_variants(text: str | None) -> list[str]:
    """`all` (or nothing): the thesis' variants; else a comma-separated list of any variants."""
    if text in (None, "", "all"):
        return list(norms.VARIANTS)
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in chosen if v not in norms.ALL_VARIANTS]
    if bad:
        raise StudyError(f"--variants: unknown {', '.join(bad)} (choose from all, {', '.join(norms.ALL_VARIANTS)})")
    return list(dict.fromkeys(chosen))


def run_state(run_dir: Path) -> str:
    """done | failed | running (a live process trains it) | partial (a checkpoint to resume:
    interrupted, its process dead) | new. From `runs.effective_status`, so a run whose
    process died is not taken for a running one."""
    status = runs.effective_status(run_dir)
    if status in ("completed", "failed", "running"):
        return {"completed": "done"}.get(status, status)
    return "partial" if (Path(run_dir) / runs.LAST).is_file() else "new"


def needs_attribution(job: Job) -> bool:
    """A reuse run of a study that attributes, not attributed yet."""
    return bool(job.attribute) and bool(job.variant.reuse) and not (Path(job.run_dir) / ATTRIBUTION_JSON).is_file()


def is_finished(job: Job) -> bool:
    return run_state(Path(job.run_dir)) == "done" and not needs_attribution(job)


@dataclass(frozen=True)
class Factor:
    """A study factor: one `--set` key and its levels (``--factor norm_options.bn.momentum=0.9,0.99``)."""

    key: str
    levels: tuple[Override, ...]

    @property
    def short(self) -> str:
        return self.key.rsplit(".", 1)[-1]


def split_levels(text: str) -> list[str]:
    """``0.9,0.99`` -> ['0.9', '0.99']; commas inside [...] or {...} belong to one level."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return out + [current]


def parse_factor(text: str) -> Factor:
    """``KEY=V1,V2,...`` -> a Factor of at least two distinct levels, each a valid --set."""
    if not isinstance(text, str) or "=" not in text:
        raise StudyError(f"--factor {text!r}: expected KEY=VALUE1,VALUE2 (e.g. norm_options.bn.momentum=0.9,0.99)")
    key, _, values = text.partition("=")
    key = key.strip()
    levels = tuple(parse_override(f"{key}={v.strip()}", "--factor") for v in split_levels(values))
    seen = [o.value for o in levels]
    if len(levels) < 2 or any(seen.count(v) > 1 for v in seen):
        raise StudyError(f"--factor {key}: give at least two different levels, got {values!r}")
    if key.startswith("train.") and key.split(".")[1] == "seed":
        raise StudyError("--factor train.seed: the seeds are a study's replicates; use --seeds")
    return Factor(key, levels)


def parse_factors(texts) -> tuple[Factor, ...]:
    factors = tuple(parse_factor(t) for t in texts or ())
    keys = [f.key for f in factors]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise StudyError(f"--factor {dup[0]} is given twice")
    return factors


def cells(factors: tuple[Factor, ...]) -> list[tuple[Override, ...]]:
    """Every combination of the factors' levels (one empty cell without factors)."""
    return [tuple(combo) for combo in itertools.product(*(f.levels for f in factors))]


def cell_name(cell: tuple[Override, ...], factors: tuple[Factor, ...]) -> str:
    """A cell in run names: ``momentum0.9-lr0.0003`` (the full key where two factors share a last part)."""
    shorts = [f.short for f in factors]
    parts = []
    for over, f in zip(cell, factors):
        label = f.short if shorts.count(f.short) == 1 else f.key.replace(".", "_")
        parts.append(f"{label}{value_text(over.value)}")
    return "-".join(parts)


@dataclass
class Job:
    """One run of a study, everything it needs; JSON-able (``to_dict``) to cross processes."""

    variant: Variant  # the description, norm, reuse, and the study's and the cell's overrides
    seed: int
    run_dir: str
    data: str
    cell: dict = field(default_factory=dict)  # factor key -> level
    data_dir: str | None = None
    test_subset: int | None = None
    device: str = "auto"
    attribute: bool = True
    attribute_samples: int = 1000
    threads: int | None = None
    plugins: list = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.variant.key

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return d | {"variant": self.variant.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(**(dict(d) | {"variant": Variant.from_dict(d["variant"])}))


def make_plan(description, family: str, data: str, variants: list[str], seeds: int, settings: dict) -> dict:
    """What study.json records: the description, the variants and seeds, the settings given
    (epochs, subset, lr, ...; None = the description's), the overrides (`sets`) and factors."""
    return {
        "description": str(Path(description).resolve()),
        "family": family,
        "data": data,
        "variants": list(variants),
        "seeds": list(range(seeds)),
        **settings,
    }


def check_protocol(study_dir: Path, plan: dict) -> None:
    """Refuse to continue a study in `study_dir` that was started with other settings."""
    existing = study_dir / STUDY
    if not existing.is_file():
        return
    old = runs.read_json(existing)
    for key in PROTOCOL + tuple(s.name for s in flag_settings(study=True) if s.name not in PROTOCOL):
        if _empty(old.get(key)) != _empty(plan.get(key)):
            raise StudyError(
                f"{study_dir} holds a study with {key}={old.get(key)!r}, not {plan.get(key)!r}; "
                "use another --out to start a new one"
            )


def _empty(value):
    return None if value in (None, [], {}) else value


def run_name(family: str, variant: str, seed: int, cell: str = "") -> str:
    name = norms.variant_name(family, *norms.parse_variant(variant))
    return f"{name}-{cell}-s{seed}" if cell else f"{name}-s{seed}"


def make_jobs(base: Variant, study_dir: Path, plan: dict, factors: tuple[Factor, ...] = (), **common) -> list[Job]:
    """One job per (cell, variant, seed), cells outermost, in the plan's order. ``base``: the
    description with the study's overrides; ``common``: the Job fields every run shares."""
    jobs = []
    for cell in cells(factors):
        label = cell_name(cell, factors)
        for key in plan["variants"]:
            norm, reuse = norms.parse_variant(key)
            variant = replace(base.with_overrides(cell), norm=norm, reuse=reuse)
            for seed in plan["seeds"]:
                run_dir = study_dir / RUNS / safe_component(run_name(plan["family"], key, seed, label), "-", 120)
                levels = {o.key: o.value for o in cell}
                jobs.append(Job(variant, seed, str(run_dir), plan["data"], levels, **common))
    return jobs


def plan_runs(jobs: list[Job], study_dir: Path) -> list[dict]:
    """study.json's `runs`: each job's variant, seed, cell, run directory (relative) and state."""
    return [
        {
            "variant": j.key,
            "seed": j.seed,
            **({"cell": j.cell} if j.cell else {}),
            "run_dir": os.path.relpath(j.run_dir, study_dir),
            "state": run_state(Path(j.run_dir)),
        }
        for j in jobs
    ]


def update_states(plan: dict, study_dir: Path) -> None:
    for entry in plan["runs"]:
        entry["state"] = run_state(study_dir / entry["run_dir"])
