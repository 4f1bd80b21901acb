"""Whole studies: every variant of a description × several seeds, then a comparison.

A study directory:

    <out>/<family>-<data>/
      study.json        the plan (description, variants, seeds, settings) and each run's state
      runs/<variant name>-s<seed>/   one run directory per (variant, seed) (see runs.py)
      table.md, table.csv, paired.md, chart.png   written by `compare`

Interrupted studies resume: finished runs are kept, unfinished ones continue from their
last checkpoint, missing ones start.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from normscope.train import runs
from normscope.norms import VARIANTS, variant_name
from normscope.spec import load_spec
from normscope.errors import NormscopeError
from normscope.fileio import atomic_write

STUDY = "study.json"
METRICS = ("loss", "precision", "recall", "auc", "accuracy", "top5_accuracy", "macro_f1")
LABELS = {"loss": "loss", "precision": "precision", "recall": "recall", "auc": "AUC",
          "accuracy": "accuracy", "top5_accuracy": "top-5", "macro_f1": "macro F1",
          "params": "params", "stats_share": "reliance on stats"}

# The thesis' test-set numbers (study.md): loss, precision, recall, AUC, accuracy; one run each.
THESIS = {
    "vgg16": {"none": (2.974, 0.544, 0.331, 0.878, 0.394), "bn": (3.275, 0.532, 0.464, 0.859, 0.483),
              "bn_v2": (53879.512, 0.475, 0.475, 0.735, 0.475), "gdn": (2.923, 0.613, 0.204, 0.886, 0.335),
              "gdn_v2": (2.324, 0.737, 0.218, 0.935, 0.398), "in": (3.948, 0.483, 0.410, 0.825, 0.429),
              "in_v2": (2.383, 0.633, 0.306, 0.916, 0.413)},
    "perceptnet": {"none": (3.430, 0.598, 0.032, 0.855, 0.193), "bn": (3.519, 0.566, 0.026, 0.842, 0.181),
                   "bn_v2": (3.641, 0.561, 0.028, 0.825, 0.162), "gdn": (3.133, 0.644, 0.073, 0.878, 0.242),
                   "gdn_v2": (2.904, 0.679, 0.090, 0.900, 0.285), "in": (4.606, 0.0, 0.0, 0.500, 0.010),
                   "in_v2": (3.102, 0.621, 0.089, 0.881, 0.265)},
}
THESIS_METRICS = ("loss", "precision", "recall", "auc", "accuracy")


class StudyError(NormscopeError):
    pass


def parse_variants(text: str | None) -> list[str]:
    if text in (None, "", "all"):
        return list(VARIANTS)
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in chosen if v not in VARIANTS]
    if bad:
        raise StudyError(f"--variants: unknown {', '.join(bad)} (choose from all, {', '.join(VARIANTS)})")
    return list(dict.fromkeys(chosen))


def _split_variant(key: str) -> tuple[str, bool]:
    norm, _, v2 = key.partition("_")
    return norm, bool(v2)


def _run_state(run_dir: Path) -> str:
    """done | partial (has a checkpoint to resume) | failed | new."""
    results = run_dir / runs.RESULTS
    if results.is_file():
        status = runs.read_json(results).get("status")
        if status == "completed":
            return "done"
        if status == "failed":
            return "failed"
    return "partial" if (run_dir / runs.LAST).is_file() else "new"


def _train_one(job: dict) -> dict:
    """One (variant, seed): train or resume, then attribute reuse runs. Runs in a worker."""
    import torch

    from normscope.train.loop import TrainingFailed, train

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    run_dir = Path(job["run_dir"])
    state = _run_state(run_dir)
    try:
        if state == "partial":
            train(resume=run_dir, device=job["device"], data_dir=job["data_dir"], progress="none")
        elif state in ("new", "failed"):
            if run_dir.exists():
                shutil.rmtree(run_dir)          # nothing to keep: no finished epoch, or diverged
            norm, reuse = _split_variant(job["variant"])
            train(job["description"], data=job["data"], data_dir=job["data_dir"], out=run_dir.parent,
                  name=run_dir.name, norm=norm, reuse=reuse, epochs=job["epochs"], seed=job["seed"],
                  subset=job["subset"], test_subset=job["test_subset"], device=job["device"],
                  fit_data=True, batch_size=job["batch_size"], lr=job["lr"], progress="none")
    except TrainingFailed as exc:
        return {"run_dir": str(run_dir), "status": "failed", "message": str(exc)}
    if job["attribute"] and _split_variant(job["variant"])[1] and not (run_dir / "attribution.json").is_file():
        from normscope.analysis import attribute_run

        attribute_run(run_dir, samples=job["attribute_samples"], device=job["device"], quiet=True)
    return {"run_dir": str(run_dir), "status": "completed"}


def run_study(description, *, variants=None, seeds: int = 3, data: str | None = None,
              epochs: int | None = None, parallel: int = 1, out="studies", device: str = "auto",
              subset: int | None = None, test_subset: int | None = None, batch_size: int | None = None,
              lr: float | None = None, data_dir=None, attribute: bool = True, attribute_samples: int = 1000,
              log=print) -> Path:
    """Train every variant × seed (resuming what an earlier call left), attribute the reuse
    runs, and write the comparison. Returns the study directory."""
    spec = load_spec(description)
    variants = parse_variants(variants) if isinstance(variants, (str, type(None))) else list(variants)
    data = data or spec.train.get("data")
    if not data:
        raise StudyError(f"{spec.file}: no data set: pass --data or set train.data in the description")
    if seeds < 1 or parallel < 1:
        raise StudyError("--seeds and --parallel must be at least 1")
    from normscope.data import load_dataset

    load_dataset(data, data_dir=data_dir)       # a missing or unknown data set fails before anything is written
    study_dir = Path(out) / runs.safe_name(spec.family, data)
    plan = {"description": str(Path(description).resolve()), "family": spec.family, "data": data,
            "variants": variants, "seeds": list(range(seeds)), "epochs": epochs, "subset": subset,
            "test_subset": test_subset, "batch_size": batch_size, "lr": lr}
    existing = study_dir / STUDY
    if existing.is_file():
        old = runs.read_json(existing)
        for key in ("family", "data", "epochs", "subset", "test_subset", "batch_size", "lr"):
            if old.get(key) != plan[key]:
                raise StudyError(f"{study_dir} holds a study with {key}={old.get(key)!r}, not {plan[key]!r}; "
                                 "use another --out to start a new one")
    (study_dir / "runs").mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    jobs = []
    for variant in variants:
        for seed in range(seeds):
            name = f"{variant_name(spec.family, *_split_variant(variant))}-s{seed}"
            jobs.append({"description": str(description), "variant": variant, "seed": seed, "data": data,
                         "data_dir": str(data_dir) if data_dir else None, "epochs": epochs,
                         "subset": subset, "test_subset": test_subset, "batch_size": batch_size, "lr": lr,
                         "device": device, "attribute": attribute, "attribute_samples": attribute_samples,
                         "threads": threads, "run_dir": str(study_dir / "runs" / name)})
    plan["runs"] = [{"variant": j["variant"], "seed": j["seed"], "run_dir": os.path.relpath(j["run_dir"], study_dir),
                     "state": _run_state(Path(j["run_dir"]))} for j in jobs]
    runs.write_json(existing, plan)
    todo = [j for j in jobs if _run_state(Path(j["run_dir"])) != "done"
            or (attribute and _split_variant(j["variant"])[1]
                and not (Path(j["run_dir"]) / "attribution.json").is_file())]
    log(f"study {study_dir}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
        f"({parallel} at a time)")
    start = time.time()
    results = []
    if parallel == 1:
        for i, job in enumerate(todo, 1):
            results.append(_train_one(job))
            log(f"[{i}/{len(todo)}] {Path(job['run_dir']).name}: {results[-1]['status']} "
                f"({time.time() - start:.0f} s)")
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=parallel, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_train_one, job): job for job in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                results.append(fut.result())
                log(f"[{i}/{len(todo)}] {Path(futures[fut]['run_dir']).name}: {results[-1]['status']} "
                    f"({time.time() - start:.0f} s)")
    for entry in plan["runs"]:
        entry["state"] = _run_state(study_dir / entry["run_dir"])
    plan["seconds_last_call"] = round(time.time() - start, 1)
    runs.write_json(existing, plan)
    failed = [r for r in results if r["status"] == "failed"]
    for r in failed:
        log(f"failed: {r['run_dir']}: {r.get('message', '')}")
    write_comparison(collect([study_dir]), study_dir)
    return study_dir


# --- compare -----------------------------------------------------------------------------

def _run_dirs(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if (p / runs.RESULTS).is_file() or (p / runs.CONFIG).is_file():
            found.append(p)
        elif (p / STUDY).is_file() or (p / "runs").is_dir():
            found += sorted(d for d in (p / "runs").iterdir() if (d / runs.RESULTS).is_file())
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if (d / runs.RESULTS).is_file())
        else:
            raise StudyError(f"{p}: not a study or run directory")
    if not found:
        raise StudyError(f"no finished runs (results.json) under {', '.join(map(str, paths))}")
    return found


def collect(paths) -> list[dict]:
    """One row per completed run: family, variant, seed, the test metrics, params, stats share."""
    rows = []
    for d in _run_dirs(paths):
        res = runs.read_json(d / runs.RESULTS)
        if res.get("status") != "completed" or "test" not in res:
            continue
        cfg = runs.read_json(d / runs.CONFIG) if (d / runs.CONFIG).is_file() else {}
        row = {"run": str(d), "family": cfg.get("family", res.get("name")), "variant": res.get("variant"),
               "seed": res.get("seed"), "data": res.get("data"), "params": res.get("params", {}).get("total"),
               "best_epoch": res.get("best_epoch")}
        row.update({m: res["test"].get(m) for m in METRICS})
        attribution = d / "attribution.json"
        row["stats_share"] = runs.read_json(attribution).get("stats_share") if attribution.is_file() else None
        rows.append(row)
    if not rows:
        raise StudyError("none of the runs has finished (status completed)")
    return rows


def _mean_std(values) -> tuple[float | None, float | None, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None, 0
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return mean, std, len(vals)


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds, per (family, variant), in VARIANTS order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["variant"]), []).append(r)
    order = {v: i for i, v in enumerate(VARIANTS)}
    out = []
    for (family, variant), members in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        entry = {"family": family, "variant": variant, "n": len(members),
                 "seeds": sorted(m["seed"] for m in members)}
        for key in METRICS + ("params", "stats_share"):
            mean, std, _ = _mean_std([m[key] for m in members])
            entry[key], entry[key + "_std"] = mean, std
        out.append(entry)
    return out


def paired(agg: list[dict], metric: str = "auc") -> list[dict]:
    """Plain versus v2 per normalization: difference of means and whether it exceeds the
    seed-to-seed spread (|difference| > 2 standard errors of the difference)."""
    by = {(a["family"], a["variant"]): a for a in agg}
    out = []
    for family in dict.fromkeys(a["family"] for a in agg):
        for norm in ("bn", "in", "gdn"):
            plain, v2 = by.get((family, norm)), by.get((family, norm + "_v2"))
            if not plain or not v2 or plain[metric] is None or v2[metric] is None:
                continue
            diff = v2[metric] - plain[metric]
            se = None
            if plain[metric + "_std"] is not None and v2[metric + "_std"] is not None:
                se = math.sqrt(plain[metric + "_std"] ** 2 / plain["n"] + v2[metric + "_std"] ** 2 / v2["n"])
            out.append({"family": family, "norm": norm, "metric": metric, "plain": plain[metric],
                        "v2": v2[metric], "difference": diff, "se": se,
                        "beyond_spread": None if se is None else abs(diff) > 2 * se,
                        "n_plain": plain["n"], "n_v2": v2["n"]})
    return out


def _fmt(mean, std, key) -> str:
    if mean is None:
        return "—"
    if key == "params":
        return f"{mean:,.0f}"
    digits = 3 if key != "loss" or abs(mean) < 1000 else 1
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def table_markdown(agg: list[dict], reference: str | None = None) -> str:
    cols = METRICS[:5] + ("top5_accuracy", "params", "stats_share")
    lines = []
    for family in dict.fromkeys(a["family"] for a in agg):
        ref = THESIS.get(family) if reference == "thesis" else None
        lines += [f"### {family}", "",
                  "| model | n | " + " | ".join(LABELS[c] for c in cols) + " |",
                  "|---|---|" + "---|" * len(cols)]
        for a in (a for a in agg if a["family"] == family):
            name = variant_name(family, *_split_variant(a["variant"]))
            lines.append(f"| {name} | {a['n']} | " + " | ".join(_fmt(a[c], a[c + '_std'], c) for c in cols) + " |")
            if ref and a["variant"] in ref:
                vals = dict(zip(THESIS_METRICS, ref[a["variant"]]))
                lines.append("| *thesis* | 1 | " + " | ".join(
                    (f"{vals[c]:.3f}" if c in vals else "") for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def paired_markdown(pairs: list[dict]) -> str:
    lines = ["| family | norm | metric | plain | v2 | v2 − plain | 2·SE | beyond seed spread |",
             "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        se = "—" if p["se"] is None else f"{2 * p['se']:.4f}"
        verdict = "—" if p["beyond_spread"] is None else ("yes" if p["beyond_spread"] else "no")
        lines.append(f"| {p['family']} | {p['norm']} | {p['metric']} | {p['plain']:.4f} | {p['v2']:.4f} | "
                     f"{p['difference']:+.4f} | {se} | {verdict} |")
    return "\n".join(lines) + "\n"


def write_csv(agg: list[dict], path: Path) -> None:
    import csv
    import io

    cols = ["family", "variant", "n"] + [k for m in METRICS + ("params", "stats_share") for k in (m, m + "_std")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(agg)
    runs.write_text(path, buf.getvalue())


def bar_chart(agg: list[dict], path: Path, metrics=("accuracy", "auc", "precision", "recall")) -> None:
    """Grouped bars per variant (one group per metric), error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    families = list(dict.fromkeys(a["family"] for a in agg))
    fig, axes = plt.subplots(1, len(families), figsize=(7 * len(families), 4.2), squeeze=False)
    for ax, family in zip(axes[0], families):
        members = [a for a in agg if a["family"] == family]
        x = np.arange(len(metrics))
        width = 0.8 / max(len(members), 1)
        for i, a in enumerate(members):
            means = [a[m] or 0 for m in metrics]
            errs = [a[m + "_std"] or 0 for m in metrics]
            ax.bar(x + (i - (len(members) - 1) / 2) * width, means, width, yerr=errs, capsize=2,
                   label=variant_name(family, *_split_variant(a["variant"])))
        ax.set_xticks(x, [LABELS[m] for m in metrics])
        ax.set_ylim(0, 1)
        ax.set_title(f"{family} (test set; mean ± std over seeds)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def write_comparison(rows: list[dict], out_dir: Path, reference: str | None = None) -> dict:
    """table.md, table.csv, paired.md, chart.png (and study-level JSON) into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    pairs = paired(agg, "auc") + paired(agg, "accuracy")
    runs.write_text(out_dir / "table.md", table_markdown(agg, reference))
    runs.write_text(out_dir / "paired.md", paired_markdown(pairs))
    write_csv(agg, out_dir / "table.csv")
    bar_chart(agg, out_dir / "chart.png")
    summary = {"rows": rows, "aggregate": agg, "paired": pairs}
    runs.write_json(out_dir / "comparison.json", summary)
    return summary
