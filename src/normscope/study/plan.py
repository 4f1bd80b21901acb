"""The plan of a study: which variants, the (variant, seed) jobs, and where each run stands.

A job is a plain dict (JSON-able, so it crosses process boundaries and can be handed to any
engine) that holds everything one run needs; `execute.train_one` carries it out.
"""

from __future__ import annotations

import os
from pathlib import Path

from normscope import norms
from normscope.analysis import ATTRIBUTION_JSON
from normscope.errors import NormscopeError
from normscope.study.layout import RUNS, STUDY
from normscope.train import runs

# settings two calls on one study directory must agree on
PROTOCOL = ("family", "data", "epochs", "subset", "test_subset", "batch_size", "lr")


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


def needs_attribution(job: dict) -> bool:
    """A reuse run of a study that attributes, not attributed yet."""
    _, reuse = norms.parse_variant(job["variant"])
    return bool(job["attribute"]) and reuse and not (Path(job["run_dir"]) / ATTRIBUTION_JSON).is_file()


def is_finished(job: dict) -> bool:
    return run_state(Path(job["run_dir"])) == "done" and not needs_attribution(job)


def make_plan(description, family: str, data: str, variants: list[str], seeds: int, settings: dict) -> dict:
    """What study.json records: the description, the variants and seeds, and the training settings
    (epochs, subset, test_subset, batch_size, lr; None = the description's)."""
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
    for key in PROTOCOL:
        if old.get(key) != plan[key]:
            raise StudyError(
                f"{study_dir} holds a study with {key}={old.get(key)!r}, not {plan[key]!r}; "
                "use another --out to start a new one"
            )


def run_name(family: str, variant: str, seed: int) -> str:
    return f"{norms.variant_name(family, *norms.parse_variant(variant))}-s{seed}"


def make_jobs(
    description,
    study_dir: Path,
    plan: dict,
    *,
    data_dir=None,
    device: str = "auto",
    attribute: bool = True,
    attribute_samples: int = 1000,
    threads: int | None = None,
) -> list[dict]:
    """One job per (variant, seed), in the plan's order."""
    jobs = []
    for variant in plan["variants"]:
        for seed in plan["seeds"]:
            run_dir = study_dir / RUNS / run_name(plan["family"], variant, seed)
            jobs.append(
                {
                    "description": str(description),
                    "variant": variant,
                    "seed": seed,
                    "data": plan["data"],
                    "data_dir": str(data_dir) if data_dir else None,
                    "epochs": plan["epochs"],
                    "subset": plan["subset"],
                    "test_subset": plan["test_subset"],
                    "batch_size": plan["batch_size"],
                    "lr": plan["lr"],
                    "device": device,
                    "attribute": attribute,
                    "attribute_samples": attribute_samples,
                    "threads": threads,
                    "run_dir": str(run_dir),
                }
            )
    return jobs


def plan_runs(jobs: list[dict], study_dir: Path) -> list[dict]:
    """study.json's `runs`: each job's variant, seed, run directory (relative) and state."""
    return [
        {
            "variant": j["variant"],
            "seed": j["seed"],
            "run_dir": os.path.relpath(j["run_dir"], study_dir),
            "state": run_state(Path(j["run_dir"])),
        }
        for j in jobs
    ]


def update_states(plan: dict, study_dir: Path) -> None:
    for entry in plan["runs"]:
        entry["state"] = run_state(study_dir / entry["run_dir"])
