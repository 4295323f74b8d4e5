"""Benchmarks for medsets. First subcommand: how fast do the HEp-2 ICPR 2014 cells become a dataset?

build-hep2 writes one synthetic replica of the processed 78x78 download (13,596 cells at --scale 1.0)
and, on that same replica, times three ways of getting the cells into a dataset:

    raw-read                 walk the folder and read every PNG's bytes: the floor for any builder
    imagefolder (b1)         datasets.load_dataset("imagefolder") on a class-folder copy of the PNGs
    imagefolder+parquet (b2) b1, then ds["train"].to_parquet(); this writes image *paths*, not bytes
    imagefolder+embed (b3)   b1, then embed the image bytes as push_to_hub does, then to_parquet():
                             the output comparable to ours, which embeds the image bytes
    medsets num_proc=N (c)   builders.export.build(HEp2, ..., "icpr2014"): checks, report, hub folder

Every stage runs in a fresh subprocess, so its peak RSS is its own; wall time covers the work only
(not interpreter start or imports). Every stage imports datasets and builders first; the `baseline`
stage does only that, so subtract its RSS to see what the work itself costs. The page cache is warmed
before timing, so all stages read from memory.

    .venv/bin/python scripts/benchmark.py build-hep2                 # full size, a few minutes
    .venv/bin/python scripts/benchmark.py build-hep2 --scale 0.1 --repeat 3 --json /tmp/quick.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

MARK = "BENCHMARK-RESULT "


# -- child side: one stage, one process ----------------------------------------------------------------
def run_stage(spec: dict):
    start = time.perf_counter()
    import datasets
    import builders
    from builders import export
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    imports = time.perf_counter() - start

    scratch, name = Path(spec["scratch"]), spec["stage"]
    start = time.perf_counter()
    if name == "baseline":
        rows = 0
    elif name == "raw-read":
        rows = 0
        for root, _, files in os.walk(spec["source"]):
            for file in files:
                if file.lower().endswith(".png"):
                    Path(root, file).read_bytes()
                    rows += 1
    elif name.startswith("imagefolder"):
        ds = datasets.load_dataset("imagefolder", data_dir=spec["class_dir"], cache_dir=str(scratch / "cache"))
        ds = ds["train"]
        rows = ds.num_rows
        if name == "imagefolder+embed":  # what Dataset.push_to_hub does before writing each shard
            from datasets.table import embed_table_storage
            ds = ds.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
        if name != "imagefolder":
            ds.to_parquet(str(scratch / "imagefolder.parquet"))
    elif name == "medsets":
        _, report = export.build(builders.HEp2, spec["source"], "icpr2014", scratch / "out",
                                 num_proc=spec["num_proc"])
        rows = sum(c["total"] for c in report.counts.values())
    else:
        raise SystemExit(f"unknown stage {name!r}")
    wall = time.perf_counter() - start
    print(MARK + json.dumps({
        "wall_s": wall, "imports_s": imports, "rows": rows,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }), flush=True)


# -- parent side ---------------------------------------------------------------------------------------
def make_replica(work: Path, scale: float) -> Path:
    from builders import synthetic
    return Path(synthetic.write_hep2_icpr2014(work / "replica", "processed", scale=scale, seed=0))


def sort_into_class_folders(source: Path, dest: Path) -> int:
    """Hard-link (or copy) every PNG to dest/<class>/<name>.png, classes from gt_training.csv."""
    with open(source / "gt_training.csv", newline="", encoding="utf-8") as f:
        label = {int(row["Image ID"]): row["Image class"] for row in csv.DictReader(f)}
    count = 0
    for png in sorted(source.rglob("*.png")):
        target = dest / label[int(png.stem)] / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(png, target)
        except OSError:
            shutil.copy2(png, target)
        count += 1
    return count


def warm_page_cache(*folders: Path):
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                path.read_bytes()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def parquet_embeds_bytes(path: Path) -> bool:
    import pyarrow.parquet as pq
    first = pq.read_table(path).slice(0, 1).column("image").to_pylist()[0]
    return bool(first and first.get("bytes"))


def run_child(spec: dict, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """One stage in a fresh process (own process group, so a hung stage's workers are killed with it)."""
    child = subprocess.Popen([sys.executable, __file__, "_stage", json.dumps(spec)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        err += f"\nkilled after the --stage-timeout of {timeout:g} s"
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def measure(label: str, spec: dict, work: Path, repeat: int, timeout: float) -> dict:
    """Run one stage `repeat` times in fresh processes; keep the best wall time and the peak RSS."""
    runs = []
    for i in range(repeat):
        print(f"  {label} (run {i + 1}/{repeat}) ...", end=" ", flush=True)
        scratch = work / "runs" / f"{label.replace(' ', '_')}-{i}"
        scratch.mkdir(parents=True)
        env = dict(os.environ, HF_HOME=str(work / "hf-home"), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
        done = run_child(dict(spec, scratch=str(scratch)), env, timeout)
        lines = [l for l in done.stdout.splitlines() if l.startswith(MARK)]
        if done.returncode or not lines:
            sys.exit(f"\nstage {label} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        run = json.loads(lines[-1][len(MARK):])
        if spec["stage"] in ("imagefolder+parquet", "imagefolder+embed"):
            run["parquet_bytes"] = (scratch / "imagefolder.parquet").stat().st_size
            run["parquet_embeds_bytes"] = parquet_embeds_bytes(scratch / "imagefolder.parquet")
        if spec["stage"] == "medsets":
            run["output_bytes"] = folder_size(scratch / "out")
        shutil.rmtree(scratch)
        print(f"{run['wall_s']:.2f} s, {run['peak_rss_mib']:.0f} MiB", flush=True)
        runs.append(run)
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best.update(peak_rss_mib=max(r["peak_rss_mib"] for r in runs),
                peak_rss_worker_mib=max(r["peak_rss_worker_mib"] for r in runs), runs=runs)
    return best


def machine_info() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            **{f"{pkg}_version": version(pkg) for pkg in ("datasets", "pyarrow", "pillow", "medsets")}}


def print_table(results: dict, images: int, baseline_mib: float):
    raw = results["raw-read"]["wall_s"]
    b1, b2, b3 = (results[f"imagefolder{s}"]["wall_s"] for s in (" (b1)", "+parquet (b2)", "+embed (b3)"))
    head = (f"{'stage':<26} {'wall s':>8} {'images/s':>9} {'RSS MiB':>8} {'-base':>7} {'worker':>7}"
            f" {'x raw':>7} {'x b1':>6} {'x b2':>6} {'x b3':>6}")
    print("\n" + head + "\n" + "-" * len(head))
    for label, r in results.items():
        wall = r["wall_s"]
        rate = f"{images / wall:9.0f}" if label != "baseline" and wall > 0 else f"{'':>9}"
        ratios = f"{wall / raw:7.1f} {wall / b1:6.2f} {wall / b2:6.2f} {wall / b3:6.2f}" if label != "baseline" else ""
        worker = f"{r['peak_rss_worker_mib']:7.0f}" if r["peak_rss_worker_mib"] else f"{'-':>7}"
        print(f"{label:<26} {wall:8.2f} {rate} {r['peak_rss_mib']:8.0f} "
              f"{r['peak_rss_mib'] - baseline_mib:7.0f} {worker} {ratios}".rstrip())


def build_hep2(args):
    with tempfile.TemporaryDirectory(prefix="medsets-bench-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"Writing the synthetic replica (scale {args.scale}) under {work} ...", flush=True)
        source = make_replica(work, args.scale)
        images = sort_into_class_folders(source, work / "by-class")
        raw_bytes = folder_size(source)
        print(f"{images} images, {raw_bytes / 2**20:.1f} MiB raw; warming the page cache "
              "(every file read once, untimed), so all stages read from memory.", flush=True)
        warm_page_cache(source, work / "by-class")

        base = {"source": str(source), "class_dir": str(work / "by-class"), "num_proc": None}
        plan = [("baseline", "baseline"), ("raw-read", "raw-read"), ("imagefolder (b1)", "imagefolder"),
                ("imagefolder+parquet (b2)", "imagefolder+parquet"), ("imagefolder+embed (b3)", "imagefolder+embed")]
        plan += [(f"medsets num_proc={n} (c)", "medsets", n)
                 for n in sorted({1, os.cpu_count() or 1} | set(args.num_proc or []))]
        results = {}
        for step, (label, stage, *num_proc) in enumerate(plan, 1):
            print(f"[{step}/{len(plan)}] {label}", flush=True)
            spec = dict(base, stage=stage, **({"num_proc": num_proc[0]} if num_proc else {}))
            results[label] = measure(label, spec, work, args.repeat, args.stage_timeout)
            if stage != "baseline" and results[label]["rows"] != images:
                print(f"  WARNING: {label} produced {results[label]['rows']} rows, expected {images}")
        if args.work:
            shutil.rmtree(work / "runs", ignore_errors=True)

    print_table(results, images, results["baseline"]["peak_rss_mib"])
    ours = [r for label, r in results.items() if label.startswith("medsets")][0]
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+builders took "
          f"{results['baseline']['imports_s']:.2f} s per process (not included). Page cache warm.")
    print("RSS: peak of the stage process (includes the imports); -base: minus the baseline stage; "
          "worker: largest peak among its worker processes.")
    print(f"Sizes: raw input {raw_bytes / 2**20:.1f} MiB; medsets output folder "
          f"{ours['output_bytes'] / 2**20:.1f} MiB ({ours['output_bytes'] / raw_bytes:.2f}x raw)")
    for label in ("imagefolder+parquet (b2)", "imagefolder+embed (b3)"):
        r = results[label]
        print(f"       {label} Parquet {r['parquet_bytes'] / 2**20:.1f} MiB ({r['parquet_bytes'] / raw_bytes:.2f}x"
              f" raw), image bytes {'embedded' if r['parquet_embeds_bytes'] else 'NOT embedded: paths only'}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "build-hep2", "scale": args.scale, "images": images,
                               "raw_input_bytes": raw_bytes, "repeat": args.repeat, "page_cache": "warm",
                               "machine": machine_info(), "stages": results}, indent=2) + "\n")
    print(f"Results written to {out}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_stage"]:  # hidden: one measured stage, run by `measure` in a fresh process
        return run_stage(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hep2 = commands.add_parser("build-hep2", help="raw read vs imagefolder vs medsets build on HEp-2 ICPR 2014",
                               description="Time raw read, imagefolder (+to_parquet) and medsets build on one "
                               "synthetic replica of the HEp-2 ICPR 2014 processed download.")
    hep2.add_argument("--scale", type=float, default=1.0, help="replica size; 1.0 = all 13,596 cells (default)")
    hep2.add_argument("--repeat", type=int, default=1, help="runs per stage; the best wall time is kept (default 1)")
    hep2.add_argument("--num-proc", type=int, action="append", metavar="N",
                      help="also build with num_proc=N (repeatable); 1 and the CPU count always run")
    hep2.add_argument("--json", default="benchmark-results/build-hep2.json", help="where to write all numbers "
                      "(default: %(default)s)")
    hep2.add_argument("--stage-timeout", type=float, default=1800, metavar="S",
                      help="kill a stage run after S seconds and stop (default %(default)s)")
    hep2.add_argument("--work", metavar="DIR", help="keep the replica here instead of a temporary folder")
    args = parser.parse_args(argv)
    if args.command == "build-hep2":
        build_hep2(args)


if __name__ == "__main__":
    main()
