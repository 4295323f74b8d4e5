"""Benchmarks for medsets: how fast do raw downloads become a dataset, and at what PNG level?

Each build benchmark writes one synthetic replica of a raw download and, on that same replica, times
the ways of getting its images into a dataset:

    raw-read                 walk the folder and read every image file's bytes: the floor for any builder
    imagefolder (b1)         datasets.load_dataset("imagefolder") on a class-folder tree of the images
    imagefolder+parquet (b2) b1, then to_parquet(); this writes image *paths*, not bytes (build-hep2 only)
    imagefolder+embed (b3)   b1, then embed the image bytes and write Parquet shards as push_to_hub does:
                             the output comparable to ours, which embeds the image bytes
    medsets num_proc=N (c)   builders.export.build(...): checks, report, hub folder

Subcommands:

    build-hep2      HEp-2 ICPR 2014, processed download: 13,596 78x78 PNG cells at --scale 1.0.
                    imagefolder reads a class-folder copy (hard links) sorted by gt_training.csv.
    build-leukemia  ISBI 2019 C-NMC, Kaggle layout: 15,114 450x450 BMP cells at --scale 1.0 (the 12,528
                    labelled ones, 10,661 training + 1,867 preliminary test, plus 2,586 final test).
                    imagefolder reads training_data/ (fold_N/{all,hem}/*.bmp) and keeps the BMP bytes;
                    medsets builds all three splits and re-encodes to PNG. Images/s and the "x" ratios
                    are per image, since the stages do not all see the same number of images. Ends
                    with png-levels on the same replica.
    build-gzmh      GZMH mitosis, V2 layout: 2084x2084 JPEGs + PNG masks, 1,534 images at --scale 1.0 (default
                    0.05, 78 images: times for 1,534 are extrapolated from the per-image rate, and said so).
                    imagefolder reads train/images/ only (no masks, no objects; per image ratios as in
                    build-leukemia); medsets builds `full` and `tiles` (512x512, overlap 64: rows are tiles,
                    also shown as tiles/s) with num_proc=1 and the CPU count. Memory check: full and tiles
                    again with num_proc=1 on the first third of each split (hard links, --small-fraction);
                    peak RSS minus the baseline at both sizes, their ratio, and that in decoded images.
    train-classification
                    Training images/s of scripts/finetune_classification.py (its real input pipeline) against
                    the model-only ceiling: the same model on random tensors already on the device, same
                    process, batch size and precision; then the input pipeline alone (the script's DataLoader
                    with nothing else to do), since prefetched batches can flatter a few timed steps. The ratio
                    is the lower of the two rates over the ceiling. Builds a replica unless --dataset is given.
    train-segmentation
                    The same for scripts/finetune_segmentation.py (SegFormer; BIS5k or GZMH tiles replica).
    png-levels      PNG zlib level 0..9 on a sample of C-NMC BMPs: encode and decode ms/image (one core),
                    bytes/image, and a recommended level for the builder (Leukemia.PNG_COMPRESS_LEVEL).

Every build stage runs in a fresh subprocess; wall time covers the work only (not interpreter start or
imports), and peak RSS is the process's own high-water mark (VmHWM, not ru_maxrss, which on Linux
includes the size of the benchmark process that started it), plus the largest among its workers.
Every stage imports datasets and builders first; the `baseline` stage does only that, so subtract its
RSS to see what the work itself costs. The stage's input is read once (untimed) before every run, so
all stages read from the page cache.

--work DIR keeps the replica in DIR and reuses it on the next run with the same --scale (writing the
full C-NMC replica, ~9 GB, takes minutes); delete DIR to force a fresh one.

    .venv/bin/python scripts/benchmark.py build-hep2                 # full size, a few minutes
    .venv/bin/python scripts/benchmark.py build-hep2 --scale 0.1 --repeat 3 --json /tmp/quick.json
    .venv/bin/python scripts/benchmark.py build-leukemia --scale 0.02                  # a quick look
    .venv/bin/python scripts/benchmark.py build-leukemia --work /tmp/leukemia-bench    # full: ~15 min, ~7 reusing
    .venv/bin/python scripts/benchmark.py png-levels --work /tmp/leukemia-bench
    .venv/bin/python scripts/benchmark.py build-gzmh --work /tmp/gzmh-bench    # 78 images: ~2 min to write + stages
    .venv/bin/python scripts/benchmark.py build-gzmh --scale 0.01 --small-fraction 0.5   # 14 images, a quick look
    .venv/bin/python scripts/benchmark.py png-levels --source ~/data/C-NMC_Leukemia   # on the real BMPs
    .venv/bin/python scripts/benchmark.py train-classification                 # CPU: ViT-tiny, HEp-2 replica
    python scripts/benchmark.py train-classification --replica leukemia --model_size base --batch_size 256  # GPU
    .venv/bin/python scripts/benchmark.py train-segmentation --image_size 128   # CPU: SegFormer-B0, BIS5k replica
    python scripts/benchmark.py train-segmentation --replica gzmh-tiles --batch_size 32                 # GPU
"""

from __future__ import annotations

import abc
import argparse
import csv
import hashlib
import io
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path

MARK = "BENCHMARK-RESULT "
PNG_LEVELS = (0, 1, 2, 3, 6, 9)
# png-levels recommends stepping up from level 1 only for this much smaller output at this much time.
STEP_UP_MIN_SAVING, STEP_UP_MAX_SLOWDOWN = 0.10, 3.0


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
    extra = {}
    start = time.perf_counter()
    if name == "baseline":
        rows = 0
    elif name == "raw-read":
        rows, ext = 0, spec["ext"] if isinstance(spec["ext"], str) else tuple(spec["ext"])  # one suffix or several
        for root, _, files in os.walk(spec["source"]):
            for file in files:
                if file.lower().endswith(ext):
                    Path(root, file).read_bytes()
                    rows += 1
    elif name.startswith("imagefolder"):
        ds = datasets.load_dataset("imagefolder", data_dir=spec["class_dir"], cache_dir=str(scratch / "cache"))
        ds = ds["train"]
        rows = ds.num_rows
        if name == "imagefolder+parquet":
            ds.to_parquet(str(scratch / "imagefolder" / "train-00000-of-00001.parquet"))
        elif name == "imagefolder+embed":
            extra["parquet_files"] = write_embedded_shards(ds, scratch / "imagefolder")
    elif name == "medsets":
        _, report = export.build(getattr(builders, spec["builder"]), spec["source"], spec["config"],
                                 scratch / "out", num_proc=spec["num_proc"])
        rows = sum(c["total"] for c in report.counts.values())
        extra["counts"] = report.counts
    else:
        raise SystemExit(f"unknown stage {name!r}")
    wall = time.perf_counter() - start
    if name == "imagefolder":  # what imagefolder made of the folder tree (untimed)
        extra["columns"] = ds.column_names
        if isinstance(ds.features.get("label"), datasets.ClassLabel):
            names = ds.features["label"].names
            extra["label_counts"] = {names[i]: n for i, n in sorted(Counter(ds["label"]).items())}
    print(MARK + json.dumps({
        "wall_s": wall, "imports_s": imports, "rows": rows, "peak_rss_mib": own_peak_rss_mib(),
        "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        **extra,
    }), flush=True)


def own_peak_rss_mib() -> float:
    """Peak RSS of this process since it started. Not ru_maxrss: Linux carries the RSS of the forked
    parent over exec into it, so a stage would report at least the benchmark process's size."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_embedded_shards(ds, folder: Path) -> int:
    """Embed the image bytes and write Parquet shards the way Dataset.push_to_hub does (datasets 5.x):
    shards of at most config.MAX_SHARD_SIZE (estimated from the files), each embedded in memory."""
    from datasets import config
    from datasets.arrow_writer import get_writer_batch_size_from_data_size, get_writer_batch_size_from_features
    from datasets.table import embed_table_storage
    from datasets.utils.py_utils import convert_file_size_to_int

    nbytes = ds._estimate_nbytes()
    batch = get_writer_batch_size_from_features(ds.features) or get_writer_batch_size_from_data_size(len(ds), nbytes)
    num_shards = int(nbytes / convert_file_size_to_int(config.MAX_SHARD_SIZE)) + 1
    for index in range(num_shards):
        shard = ds.shard(num_shards=num_shards, index=index, contiguous=True).with_format("arrow")
        shard = shard.map(embed_table_storage, batched=True, batch_size=batch, keep_in_memory=True)
        shard.to_parquet(str(folder / f"train-{index:05d}-of-{num_shards:05d}.parquet"), batch_size=batch)
    return num_shards


# -- parent side: replicas -----------------------------------------------------------------------------
def write_hep2(dest: Path, scale: float) -> Path:
    from builders import synthetic
    return Path(synthetic.write_hep2_icpr2014(dest, "processed", scale=scale, seed=0))


def write_cnmc(dest: Path, scale: float) -> Path:
    from builders import synthetic
    return Path(synthetic.write_leukemia(dest, "kaggle", scale=scale, seed=0))


def write_gzmh_v2(dest: Path, scale: float) -> Path:
    from builders import synthetic
    return Path(synthetic.write_gzmh(dest, "v2", scale=scale, seed=0))  # full 2084x2084 fields


# dataset -> (writer, suffix of the files counted to tell a complete replica; gzmh: the JPEG images,
# each written before its mask, and the marker only after the last one)
REPLICAS = {"hep2": (write_hep2, ".png"), "leukemia": (write_cnmc, ".bmp"), "gzmh": (write_gzmh_v2, ".jpg")}


def synthetic_fingerprint() -> str:
    import builders.synthetic
    return hashlib.sha256(Path(builders.synthetic.__file__).read_bytes()).hexdigest()[:16]


def image_files(folder: Path, ext: str) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.lower().endswith(ext) and p.is_file())


def make_replica(work: Path, dataset: str, scale: float | None) -> tuple[Path, float, bool]:
    """The replica under work/replica: reused when work/replica.json says it is complete and of this
    scale (any scale when `scale` is None), written (seed 0) otherwise. Returns (path, scale, reused)."""
    write, ext = REPLICAS[dataset]
    marker, folder = work / "replica.json", work / "replica"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        meta = None
    if meta and meta.get("dataset") == dataset and scale in (None, meta["scale"]):
        path = work / meta["path"]
        found = len(image_files(path, ext)) if path.is_dir() else 0
        if found == meta["files"]:
            note = "" if meta.get("synthetic") == synthetic_fingerprint() else \
                " (builders/synthetic.py has changed since it was written; delete the folder for a fresh one)"
            print(f"Reusing the synthetic {dataset} replica (scale {meta['scale']}, {found} files) in {path}{note}",
                  flush=True)
            return path, meta["scale"], True
        print(f"The replica in {folder} is incomplete ({found} of {meta['files']} files); rewriting it.")
    elif meta:
        print(f"{folder} holds a {meta.get('dataset')} replica at scale {meta.get('scale')}; replacing it.")
    scale = 0.02 if scale is None else scale
    marker.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"Writing the synthetic replica (scale {scale}) under {work} ...", flush=True)
    start = time.perf_counter()
    with FileCountProgress(folder, ext):
        path = write(folder, scale)
    files = len(image_files(path, ext))
    marker.write_text(json.dumps({"dataset": dataset, "scale": scale, "seed": 0, "files": files,
                                  "path": str(path.relative_to(work)), "synthetic": synthetic_fingerprint(),
                                  "write_s": round(time.perf_counter() - start, 1)}, indent=2) + "\n")
    return path, scale, False


class Ticker(abc.ABC):
    """Runs `tick()` every `every` seconds on a thread while the `with` block runs (and once at the end
    when `final_tick`)."""

    final_tick = False

    def __init__(self, every: float):
        self.every, self._stop = every, threading.Event()

    def __enter__(self):
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.final_tick:
            self.tick()

    def _run(self):
        while not self._stop.wait(self.every):
            self.tick()

    @abc.abstractmethod
    def tick(self):
        """One report: what the subclass watches (files written, disk used)."""


class FileCountProgress(Ticker):
    """Prints how many files the replica writer has written so far, every 30 s."""

    def __init__(self, folder: Path, ext: str, every: float = 30):
        super().__init__(every)
        self.folder, self.ext = folder, ext

    def tick(self):
        count = sum(name.lower().endswith(self.ext) for _, _, names in os.walk(self.folder) for name in names)
        elapsed = time.perf_counter() - self.started
        print(f"  ... {count} files written in {elapsed:.0f} s", flush=True)


class DiskWatch(Ticker):
    """Samples the used space of the file system holding `folder`, to report the peak."""

    final_tick = True

    def __init__(self, folder: Path, every: float = 0.5):
        super().__init__(every)
        self.folder = folder
        self.start_used = self.peak_used = shutil.disk_usage(folder).used

    def tick(self):
        self.peak_used = max(self.peak_used, shutil.disk_usage(self.folder).used)

    @property
    def peak_extra(self) -> int:
        return self.peak_used - self.start_used


def sort_into_class_folders(source: Path, dest: Path) -> int:
    """Hard-link (or copy) every PNG to dest/<class>/<name>.png, classes from gt_training.csv."""
    with open(source / "gt_training.csv", newline="", encoding="utf-8") as f:
        label = {int(row["Image ID"]): row["Image class"] for row in csv.DictReader(f)}
    shutil.rmtree(dest, ignore_errors=True)
    count = 0
    for png in sorted(source.rglob("*.png")):
        link_or_copy(png, dest / label[int(png.stem)] / png.name)
        count += 1
    return count


def link_or_copy(file: Path, target: Path):
    """Hard link (no extra disk, no time), or a copy where the file system cannot link."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(file, target)
    except OSError:
        shutil.copy2(file, target)


def warm_page_cache(*folders: Path):
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                path.read_bytes()


def folder_size(folder: Path, ext: str = "") -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(ext))


def parquet_embeds_bytes(path: Path) -> bool:
    """Whether the first row's image holds bytes; reads one row, so this process stays small (the stages
    it starts later would otherwise begin as large as it)."""
    import pyarrow.parquet as pq
    with pq.ParquetFile(path) as parquet:
        first = next(parquet.iter_batches(batch_size=1, columns=["image"])).column("image").to_pylist()[0]
    return bool(first and first.get("bytes"))


# -- parent side: stages -------------------------------------------------------------------------------
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


def measure(label: str, spec: dict, work: Path, repeat: int, timeout: float, warm: list[Path]) -> dict:
    """Run one stage `repeat` times in fresh processes, each after reading `warm` once (untimed);
    keep the best wall time and the peak RSS."""
    runs = []
    for i in range(repeat):
        warm_page_cache(*warm)
        print(f"  {label} (run {i + 1}/{repeat}) ...", end=" ", flush=True)
        scratch = work / "runs" / f"{label.replace(' ', '_')}-{i}"
        (scratch / "imagefolder").mkdir(parents=True)
        env = dict(os.environ, HF_HOME=str(work / "hf-home"), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
        done = run_child(dict(spec, scratch=str(scratch)), env, timeout)
        lines = [l for l in done.stdout.splitlines() if l.startswith(MARK)]
        if done.returncode or not lines:
            sys.exit(f"\nstage {label} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        run = json.loads(lines[-1][len(MARK):])
        shards = sorted((scratch / "imagefolder").glob("*.parquet"))
        if shards:
            run["parquet_bytes"] = sum(p.stat().st_size for p in shards)
            run["parquet_embeds_bytes"] = parquet_embeds_bytes(shards[0])
        if spec["stage"] == "medsets":
            run["output_bytes"] = folder_size(scratch / "out")
        # worker processes only when datasets started a pool (it does not for a single shard)
        run["processes"] = (spec.get("num_proc") or 1) if run["peak_rss_worker_mib"] else 1
        shutil.rmtree(scratch)
        print(f"{run['wall_s']:.2f} s, {run['peak_rss_mib']:.0f} MiB", flush=True)
        runs.append(run)
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best.update(peak_rss_mib=max(r["peak_rss_mib"] for r in runs),
                peak_rss_worker_mib=max(r["peak_rss_worker_mib"] for r in runs), runs=runs)
    return best


def run_plan(plan: list[dict], work: Path, args) -> dict:
    """plan: dicts with label, spec, rows (expected), warm (folders), plus anything to keep in the
    results (input_bytes, ...). Returns {label: best run}."""
    shutil.rmtree(work / "runs", ignore_errors=True)
    results = {}
    for step, stage in enumerate(plan, 1):
        label = stage["label"]
        print(f"[{step}/{len(plan)}] {label}", flush=True)
        results[label] = measure(label, stage["spec"], work, args.repeat, args.stage_timeout, stage["warm"])
        results[label].update({k: v for k, v in stage.items() if k not in ("label", "spec", "rows", "warm")})
        if stage["spec"]["stage"] != "baseline" and results[label]["rows"] != stage["rows"]:
            print(f"  WARNING: {label} produced {results[label]['rows']} rows, expected {stage['rows']}")
    shutil.rmtree(work / "runs", ignore_errors=True)
    return results


def medsets_stages(base: dict, args) -> list[tuple[str, dict]]:
    """(label, spec) for num_proc=1, the CPU count and every --num-proc."""
    return [(f"medsets num_proc={n} (c)", dict(base, stage="medsets", num_proc=n))
            for n in sorted({1, os.cpu_count() or 1} | set(args.num_proc or []))]


def machine_info() -> dict:
    from PIL import features
    zlib_ng = features.version_feature("zlib_ng") if "zlib_ng" in features.features else None
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            **{f"{pkg}_version": version(pkg) for pkg in ("datasets", "pyarrow", "pillow", "medsets")},
            "pillow_zlib": features.version("zlib"), "pillow_zlib_ng": zlib_ng}


def write_json(path: str, payload: dict):
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"Results written to {out}")


# -- tables --------------------------------------------------------------------------------------------
def per_image(r: dict) -> float | None:
    """Seconds per image: per source image where the plan says how many (`images`: gzmh tiles write
    several rows per image, raw-read reads image and mask), else per row."""
    images = r.get("images") or r["rows"]
    return r["wall_s"] / images if images and r["wall_s"] > 0 else None


def rate_column(r: dict, per_core: bool = False) -> str:
    if not per_image(r):
        return ""
    return f"{1 / per_image(r) / (r.get('processes', 1) if per_core else 1):.0f}"


def ratio_column(reference: dict, digits: int):
    """Seconds per image relative to `reference` (the plain wall ratio when both saw the same images)."""
    return lambda label, r: f"{per_image(r) / per_image(reference):.{digits}f}" if per_image(r) else ""


def common_columns(results: dict, baseline_mib: float) -> list:
    return [
        ("wall s", 8, lambda label, r: f"{r['wall_s']:.2f}"),
        ("images/s", 9, lambda label, r: rate_column(r)),
    ], [
        ("RSS MiB", 8, lambda label, r: f"{r['peak_rss_mib']:.0f}"),
        ("-base", 7, lambda label, r: f"{round(r['peak_rss_mib'] - baseline_mib)}"),
        ("worker", 7, lambda label, r: f"{r['peak_rss_worker_mib']:.0f}" if r["peak_rss_worker_mib"] else "-"),
    ]


def print_table(results: dict, columns: list, first_width: int = 26):
    """columns: (header, width, cell(label, result) -> str); cells are right-aligned, rows rstripped."""
    head = f"{'stage':<{first_width}}" + "".join(f" {h:>{w}}" for h, w, _ in columns)
    print("\n" + head + "\n" + "-" * len(head))
    for label, r in results.items():
        print((f"{label:<{first_width}}" + "".join(f" {cell(label, r):>{w}}" for _, w, cell in columns)).rstrip())


# -- build-hep2 ----------------------------------------------------------------------------------------
def build_hep2(args):
    with tempfile.TemporaryDirectory(prefix="medsets-bench-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        source, _, _ = make_replica(work, "hep2", args.scale)
        images = sort_into_class_folders(source, work / "by-class")
        raw_bytes = folder_size(source)
        print(f"{images} images, {raw_bytes / 2**20:.1f} MiB raw; warming the page cache "
              "(every file read once, untimed), so all stages read from memory.", flush=True)

        base = {"source": str(source), "class_dir": str(work / "by-class"), "num_proc": None, "ext": ".png",
                "builder": "HEp2", "config": "icpr2014"}
        stages = [("baseline", dict(base, stage="baseline")), ("raw-read", dict(base, stage="raw-read"))]
        stages += [(label, dict(base, stage=stage)) for label, stage in (
            ("imagefolder (b1)", "imagefolder"), ("imagefolder+parquet (b2)", "imagefolder+parquet"),
            ("imagefolder+embed (b3)", "imagefolder+embed"))]
        stages += medsets_stages(base, args)
        plan = [{"label": label, "spec": spec, "rows": images, "warm": [source, work / "by-class"]}
                for label, spec in stages]
        results = run_plan(plan, work, args)

    base_mib = results["baseline"]["peak_rss_mib"]
    (wall, rate), rss = common_columns(results, base_mib)
    refs = [("x raw", 7, 1, "raw-read"), ("x b1", 6, 2, "imagefolder (b1)"),
            ("x b2", 6, 2, "imagefolder+parquet (b2)"), ("x b3", 6, 2, "imagefolder+embed (b3)")]
    print_table(results, [wall, rate, *rss] + [(h, w, ratio_column(results[ref], d)) for h, w, d, ref in refs])
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
    write_json(args.json, {"benchmark": "build-hep2", "scale": args.scale, "images": images,
                           "raw_input_bytes": raw_bytes, "repeat": args.repeat, "page_cache": "warm",
                           "machine": machine_info(), "stages": results})


# -- build-leukemia ------------------------------------------------------------------------------------
def build_leukemia(args):
    with tempfile.TemporaryDirectory(prefix="medsets-bench-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with DiskWatch(work) as disk:
            started = time.perf_counter()
            source, _, reused = make_replica(work, "leukemia", args.scale)
            train_dir = source / "C-NMC_Leukemia" / "training_data"
            bmps, train_bmps = image_files(source, ".bmp"), image_files(train_dir, ".bmp")
            bmp_bytes, train_bytes = (sum(p.stat().st_size for p in files) for files in (bmps, train_bmps))
            replica_bytes = folder_size(source)
            labelled = len(train_bmps) + len(image_files(source / "C-NMC_Leukemia" / "validation_data", ".bmp"))
            print(f"{len(bmps)} BMPs ({labelled} labelled: {len(train_bmps)} training + {labelled - len(train_bmps)}"
                  f" preliminary test; {len(bmps) - labelled} final test), {bmp_bytes / 2**30:.2f} GiB. "
                  "Each stage's input is read once before it runs (untimed), so all stages read from memory.",
                  flush=True)

            base = {"source": str(source), "class_dir": str(train_dir), "num_proc": None, "ext": ".bmp",
                    "builder": "Leukemia", "config": "cnmc"}
            everything = {"rows": len(bmps), "warm": [source], "input_bytes": replica_bytes}
            training = {"rows": len(train_bmps), "warm": [train_dir], "input_bytes": train_bytes}
            plan = [
                {"label": "baseline", "spec": dict(base, stage="baseline"), "rows": 0, "warm": []},
                {"label": "raw-read", "spec": dict(base, stage="raw-read"), **everything, "input_bytes": bmp_bytes},
                {"label": "imagefolder (b1)", "spec": dict(base, stage="imagefolder"), **training},
                {"label": "imagefolder+embed (b3)", "spec": dict(base, stage="imagefolder+embed"), **training},
            ] + [{"label": label, "spec": spec, **everything} for label, spec in medsets_stages(base, args)]
            results = run_plan(plan, work, args)

            levels = None
            if args.png_sample:
                print(f"[png-levels] {min(args.png_sample, len(bmps))} BMPs, levels "
                      f"{','.join(map(str, PNG_LEVELS))}, best of up to {args.png_repeat}", flush=True)
                levels = png_levels(bmps, args.png_sample, args.png_repeat)
            elapsed = time.perf_counter() - started

    base_mib = results["baseline"]["peak_rss_mib"]
    (wall, rate), rss = common_columns(results, base_mib)

    def out_bytes(r):
        return r.get("output_bytes") or (r.get("parquet_bytes") if r.get("parquet_embeds_bytes") else None)

    columns = [("rows", 6, lambda label, r: f"{r['rows']}" if label != "baseline" else ""), wall, rate,
               ("/core", 7, lambda label, r: rate_column(r, per_core=True)), *rss,
               ("out MiB", 8, lambda label, r: f"{out_bytes(r) / 2**20:.0f}" if out_bytes(r) else ""),
               ("x in", 5, lambda label, r: f"{out_bytes(r) / r['input_bytes']:.2f}" if out_bytes(r) else "")]
    columns += [(h, w, ratio_column(results[ref], d)) for h, w, d, ref in
                (("x raw", 7, 1, "raw-read"), ("x b1", 6, 2, "imagefolder (b1)"), ("x b3", 6, 2, "imagefolder+embed (b3)"))]
    print_table(results, columns)
    b1, b3 = results["imagefolder (b1)"], results["imagefolder+embed (b3)"]
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+builders took "
          f"{results['baseline']['imports_s']:.2f} s per process (not included). Page cache warm.")
    print("rows: images the stage handled (imagefolder reads training_data/ only; raw-read and medsets all "
          "three splits). images/s and the x columns are per image: x raw = seconds per image / raw-read's.")
    print("/core: images/s divided by the processes that did the work (num_proc when datasets started a pool, "
          "else 1).")
    print("RSS: peak of the stage process (includes the imports); -base: minus the baseline stage; "
          "worker: largest peak among its worker processes.")
    print(f"Sizes: BMP input {bmp_bytes / 2**20:.0f} MiB (training_data {train_bytes / 2**20:.0f} MiB); "
          "out = medsets hub folder (PNG) or imagefolder Parquet (BMP bytes embedded, "
          f"{b3.get('parquet_files', '?')} shard(s)); x in = out / the stage's input.")
    print(f"imagefolder on training_data/ inferred columns {b1.get('columns')} with labels "
          f"{b1.get('label_counts')}: class from the parent folder (all/hem); fold_N is not kept.")
    if levels:
        print_png_levels(levels, images=len(bmps))
    print(f"\nDisk: peak {disk.peak_extra / 2**30:.2f} GiB above the start (replica "
          f"{replica_bytes / 2**30:.2f} GiB, {'reused: not in the peak' if reused else 'written: in the peak'}); "
          f"total {elapsed / 60:.1f} min")
    write_json(args.json, {
        "benchmark": "build-leukemia", "scale": args.scale, "images": len(bmps), "labelled_images": labelled,
        "training_images": len(train_bmps), "raw_input_bytes": bmp_bytes, "training_input_bytes": train_bytes,
        "repeat": args.repeat, "page_cache": "warm", "machine": machine_info(),
        "imagefolder_inferred": {"columns": b1.get("columns"), "label_counts": b1.get("label_counts")},
        "replica_reused": reused, "stages": results, "png_levels": levels, "peak_disk_extra_bytes": disk.peak_extra,
        "total_s": round(elapsed, 1)})


# -- build-gzmh ----------------------------------------------------------------------------------------
GZMH_FULL_IMAGES = 1534
DECODED_IMAGE_BYTES = 2084 * 2084 * 3  # one decoded 2084x2084 RGB image: 13.0 MB (12.4 MiB)
# The memory check calls a build bounded when its peak grows by less than this many decoded images from
# the small replica to the big one: repeated runs of one stage on one replica differ by up to ~20 MiB
# (1.6 images), while holding every added image would add 52 images' worth at the default scale.
BOUNDED_GROWTH_IMAGES = 3


def link_subset(source: Path, dest: Path, fraction: float) -> int:
    """Hard-link (or copy) the first `fraction` of every split's images, each with its mask, into dest
    with the same V2 layout (<split>/images/NNNN.jpg + <split>/masks/NNNN.png). Returns the images."""
    shutil.rmtree(dest, ignore_errors=True)
    count = 0
    for images_dir in sorted(p for p in source.rglob("images") if p.is_dir()):
        jpgs = image_files(images_dir, ".jpg")
        for jpg in jpgs[:max(1, round(len(jpgs) * fraction))]:
            for file in (jpg, images_dir.parent / "masks" / f"{jpg.stem}.png"):
                link_or_copy(file, dest / file.relative_to(source))
            count += 1
    return count


def in_images(mib: float) -> float:
    return mib * 2**20 / DECODED_IMAGE_BYTES


def memory_scaling(results: dict, base_mib: float, images: int, small: int, num_procs) -> tuple[dict, list]:
    """Peak RSS minus the baseline of medsets full and tiles (num_proc=1) on the replica and, when `small`,
    on the subset, in MiB and in decoded images; the main process and worker peaks of the pooled runs."""
    scaling, lines = {}, []
    for config in ("full", "tiles"):
        big_mib = results[f"medsets {config} num_proc=1 (c)"]["peak_rss_mib"] - base_mib
        entry = {"images": images, "above_baseline_mib": big_mib, "above_baseline_images": in_images(big_mib)}
        line = f"  {config:5s} num_proc=1: {images} images {big_mib:.0f} MiB (~{in_images(big_mib):.1f} images)"
        if small:
            low_mib = results[f"medsets {config} num_proc=1 (c) small"]["peak_rss_mib"] - base_mib
            growth, added = big_mib - low_mib, images - small
            entry.update(small_images=small, small_above_baseline_mib=low_mib,
                         small_above_baseline_images=in_images(low_mib),
                         ratio=big_mib / low_mib if low_mib > 0 else None, growth_mib=growth,
                         growth_images=in_images(growth), bounded=in_images(growth) < BOUNDED_GROWTH_IMAGES)
            ratio = f"{entry['ratio']:.2f}" if entry["ratio"] else "-"
            line = (f"  {config:5s} num_proc=1: {small} images {low_mib:.0f} MiB (~{in_images(low_mib):.1f} images), "
                    f"{images} images {big_mib:.0f} MiB (~{in_images(big_mib):.1f} images): ratio {ratio} for "
                    f"{images / small:.1f}x the images, {growth:+.0f} MiB ({in_images(growth):+.1f} images; holding "
                    f"the {added} added would add {added}) -> "
                    + ("bounded" if entry["bounded"] else "GROWS with the images"))
        lines.append(line)
        for n in sorted({os.cpu_count() or 1} | set(num_procs or [])):
            r = results.get(f"medsets {config} num_proc={n} (c)")
            if n == 1 or not r:
                continue
            main_mib, worker = r["peak_rss_mib"] - base_mib, r["peak_rss_worker_mib"]
            entry[f"num_proc={n}"] = {"above_baseline_mib": main_mib, "worker_peak_mib": worker,
                                      "worker_above_baseline_mib": worker - base_mib if worker else None}
            lines.append(f"  {config:5s} num_proc={n}: main process {main_mib:.0f} MiB (~{in_images(main_mib):.1f} "
                         "images), " + (f"worker peak {worker:.0f} MiB, {worker - base_mib:.0f} above the baseline "
                                        f"(~{in_images(worker - base_mib):.1f} images)" if worker else "no worker pool"))
        scaling[config] = entry
    return scaling, lines


def build_gzmh(args):
    from builders.gzmh import GZMHConfig
    from builders.objects import tiles
    from builders.synthetic import GZMH_SIZE

    tile_size, tile_overlap = GZMHConfig.tile_size, GZMHConfig.tile_overlap
    per_image_tiles = len(tiles(GZMH_SIZE, GZMH_SIZE, tile_size, tile_overlap))
    with tempfile.TemporaryDirectory(prefix="medsets-bench-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with DiskWatch(work) as disk:
            started = time.perf_counter()
            source, _, reused = make_replica(work, "gzmh", args.scale)
            top = source / "GZMH Dataset V2"
            train_dir = top / "train" / "images"
            jpgs, pngs = image_files(source, ".jpg"), image_files(source, ".png")
            splits = {d.name: len(image_files(d / "images", ".jpg")) for d in sorted(top.iterdir()) if d.is_dir()}
            jpg_bytes, png_bytes = (sum(p.stat().st_size for p in files) for files in (jpgs, pngs))
            train_bytes = folder_size(train_dir, ".jpg")
            images = len(jpgs)
            small = link_subset(source, work / "replica-small", args.small_fraction) if args.small_fraction else 0
            small_bytes = folder_size(work / "replica-small") if small else 0
            print(f"{images} JPEG images {GZMH_SIZE}x{GZMH_SIZE} + {len(pngs)} PNG masks "
                  f"({', '.join(f'{k} {v}' for k, v in splits.items())}), {jpg_bytes / 2**20:.0f} + "
                  f"{png_bytes / 2**20:.0f} MiB; full GZMH is {GZMH_FULL_IMAGES:,} images. Memory check on "
                  f"{small} of them (the first {args.small_fraction:.0%} of each split, hard links) in "
                  f"{work / 'replica-small'}. Each stage's input is read once before it runs (untimed).", flush=True)

            base = {"source": str(source), "class_dir": str(train_dir), "num_proc": None, "ext": [".jpg", ".png"],
                    "builder": "GZMH", "config": "full"}
            everything = {"images": images, "warm": [source], "input_bytes": jpg_bytes + png_bytes}
            training = {"rows": splits["train"], "images": splits["train"], "warm": [train_dir],
                        "input_bytes": train_bytes}
            plan = [
                {"label": "baseline", "spec": dict(base, stage="baseline"), "rows": 0, "warm": []},
                {"label": "raw-read", "spec": dict(base, stage="raw-read"), **everything, "rows": images + len(pngs)},
                {"label": "imagefolder (b1)", "spec": dict(base, stage="imagefolder"), **training},
                {"label": "imagefolder+embed (b3)", "spec": dict(base, stage="imagefolder+embed"), **training},
            ]
            for config, rows_per_image in (("full", 1), ("tiles", per_image_tiles)):
                plan += [{"label": label.replace("medsets ", f"medsets {config} "), "spec": spec, **everything,
                          "rows": images * rows_per_image, "config": config}
                         for label, spec in medsets_stages(dict(base, config=config), args)]
            if small:
                small_source = work / "replica-small"
                for config, rows_per_image in (("full", 1), ("tiles", per_image_tiles)):
                    plan.append({"label": f"medsets {config} num_proc=1 (c) small",
                                 "spec": dict(base, stage="medsets", config=config, num_proc=1,
                                              source=str(small_source)),
                                 "rows": small * rows_per_image, "images": small, "warm": [small_source],
                                 "input_bytes": small_bytes, "config": config})
            results = run_plan(plan, work, args)
            shutil.rmtree(work / "replica-small", ignore_errors=True)
            elapsed = time.perf_counter() - started

    for label, r in results.items():  # the source images a tiles build reported against the plan's
        seen = sum(c.get("source_images", 0) for c in r.get("counts", {}).values())
        if r.get("config") == "tiles" and seen != r["images"]:
            print(f"  WARNING: {label} reported {seen} source images, expected {r['images']}")

    base_mib = results["baseline"]["peak_rss_mib"]
    (wall, rate), rss = common_columns(results, base_mib)

    def out_bytes(r):
        return r.get("output_bytes") or (r.get("parquet_bytes") if r.get("parquet_embeds_bytes") else None)

    columns = [("rows", 6, lambda label, r: f"{r['rows']}" if label != "baseline" else ""),
               ("images", 6, lambda label, r: f"{r.get('images', '')}"), wall, rate,
               ("/core", 7, lambda label, r: rate_column(r, per_core=True)),
               ("tiles/s", 8, lambda label, r: f"{r['rows'] / r['wall_s']:.0f}" if r.get("config") == "tiles" else ""),
               *rss,
               ("out MiB", 8, lambda label, r: f"{out_bytes(r) / 2**20:.0f}" if out_bytes(r) else ""),
               ("x in", 5, lambda label, r: f"{out_bytes(r) / r['input_bytes']:.2f}" if out_bytes(r) else "")]
    columns += [(h, w, ratio_column(results[ref], d)) for h, w, d, ref in
                (("x raw", 7, 1, "raw-read"), ("x b1", 6, 2, "imagefolder (b1)"), ("x b3", 6, 2, "imagefolder+embed (b3)"))]
    print_table(results, columns, first_width=34)
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+builders took "
          f"{results['baseline']['imports_s']:.2f} s per process (not included). Page cache warm.")
    print(f"rows: rows written (raw-read: files read, image + mask; tiles: {per_image_tiles} tiles of {tile_size}x"
          f"{tile_size}, overlap {tile_overlap}, per image); images: source images. images/s, /core and the x "
          "columns are per source image: x raw = seconds per image / raw-read's (which reads image and mask).")
    print(f"imagefolder reads train/images/ only ({splits['train']} JPEGs, no masks, no objects) and keeps the "
          "JPEG bytes: the plain-loader reference. medsets reads all splits, images and masks, and writes PNG "
          "(full images, tiles) plus the mask and objects.")
    print("/core: images/s divided by the processes that did the work (num_proc when datasets started a pool, "
          "else 1).")
    print("RSS: peak of the stage process (includes the imports); -base: minus the baseline stage; "
          "worker: largest peak among its worker processes (forked: includes the imports too).")
    print(f"Sizes: input {(jpg_bytes + png_bytes) / 2**20:.0f} MiB (JPEG {jpg_bytes / 2**20:.0f}, masks "
          f"{png_bytes / 2**20:.0f}; train/images {train_bytes / 2**20:.0f}); out = medsets hub folder or "
          "imagefolder Parquet (JPEG bytes embedded); x in = out / the stage's input.")

    scaling, lines = memory_scaling(results, base_mib, images, small, args.num_proc)
    print(f"\nMemory: peak RSS minus the baseline ({base_mib:.0f} MiB), also as decoded {GZMH_SIZE}x{GZMH_SIZE} RGB "
          f"images ({DECODED_IMAGE_BYTES / 1e6:.1f} MB = {DECODED_IMAGE_BYTES / 2**20:.1f} MiB each); bounded = grows "
          f"by under {BOUNDED_GROWTH_IMAGES} images between the two replica sizes (repeated runs of one stage differ "
          "by up to ~20 MiB):")
    print("\n".join(lines))

    # time: extrapolated from the per-image rate, not measured
    statement = (f"Replica at scale {args.scale:g}: {images} of GZMH's {GZMH_FULL_IMAGES:,} images at full size "
                 f"({GZMH_SIZE}x{GZMH_SIZE}, V2 layout, JPEG q90 + PNG masks). Times for {GZMH_FULL_IMAGES:,} images "
                 "are extrapolated linearly from the per-image rate measured here (x "
                 f"{GZMH_FULL_IMAGES / images:.1f}), not measured; " + (
                     "peak memory is not scaled: it did not grow with the number of images (memory_scaling)."
                     if small and all(e["bounded"] for e in scaling.values()) else
                     "peak memory is as measured here, on fewer images: see memory_scaling for how it grew."))
    extrapolated = {label: per_image(r) * GZMH_FULL_IMAGES for label, r in results.items()
                    if label.startswith(("raw-read", "medsets")) and not label.endswith("small") and per_image(r)}
    print(f"\n{statement}")
    for label, seconds in extrapolated.items():
        print(f"  {label:34s} {per_image(results[label]) * 1000:7.0f} ms/image -> {GZMH_FULL_IMAGES:,} images in "
              f"~{seconds / 60:.1f} min (extrapolated)")
    replica = "reused: not in the peak" if reused else "written: in the peak"
    print(f"\nDisk: peak {disk.peak_extra / 2**30:.2f} GiB above the start on the file system holding {work} "
          f"(anything else writing there counts too; replica {(jpg_bytes + png_bytes) / 2**30:.2f} GiB, {replica}); "
          f"total {elapsed / 60:.1f} min")
    write_json(args.json, {
        "benchmark": "build-gzmh", "scale": args.scale, "images": images, "full_gzmh_images": GZMH_FULL_IMAGES,
        "image_size": GZMH_SIZE, "splits": splits, "masks": len(pngs), "raw_input_bytes": jpg_bytes + png_bytes,
        "jpeg_bytes": jpg_bytes, "mask_bytes": png_bytes, "training_input_bytes": train_bytes,
        "tile_size": tile_size, "tile_overlap": tile_overlap, "tiles_per_image": per_image_tiles,
        "small_replica_images": small, "small_fraction": args.small_fraction, "repeat": args.repeat,
        "page_cache": "warm", "machine": machine_info(), "replica_reused": reused, "stages": results,
        "decoded_image_bytes": DECODED_IMAGE_BYTES, "memory_scaling": scaling, "scaling_statement": statement,
        "extrapolated_full_s": extrapolated, "peak_disk_extra_bytes": disk.peak_extra, "total_s": round(elapsed, 1)})


# -- png-levels ----------------------------------------------------------------------------------------
def png_levels(files: list[Path], sample: int, repeat: int, levels=PNG_LEVELS) -> dict:
    """Encode a sample of images at each zlib level (one core): best-of-`repeat` encode and decode
    ms/image, bytes/image, ratio to the source file; checks every PNG decodes to the same pixels."""
    from PIL import Image

    picked = sorted(random.Random(0).sample(files, min(sample, len(files))))
    sources = [p.read_bytes() for p in picked]

    def best_ms(fn, items) -> float:
        """Best of `repeat` passes over `items`, or of fewer once a pass takes over 10 s (level 9)."""
        best, spent = float("inf"), 0.0
        for _ in range(repeat):
            total = 0.0
            for item in items:
                start = time.perf_counter()
                fn(item)
                total += time.perf_counter() - start
            best, spent = min(best, total), spent + total
            if spent > 10:
                break
        return best / len(items) * 1000

    def decode(raw: bytes):
        image = Image.open(io.BytesIO(raw))
        image.load()
        return image

    images = [decode(raw) for raw in sources]
    source_bytes = sum(map(len, sources)) / len(sources)
    rows = []
    for level in levels:
        encoded = {}

        def encode(i):
            buffer = io.BytesIO()
            images[i].save(buffer, "PNG", compress_level=level)
            encoded[i] = buffer.getvalue()

        encode_ms = best_ms(encode, range(len(images)))
        pngs = [encoded[i] for i in range(len(images))]
        if any(decode(png).tobytes() != image.tobytes() for png, image in zip(pngs, images)):
            raise SystemExit(f"PNG level {level} did not round-trip the pixels")
        png_bytes = sum(map(len, pngs)) / len(pngs)
        rows.append({"level": level, "encode_ms": encode_ms, "decode_ms": best_ms(decode, pngs),
                     "bytes": png_bytes, "ratio_to_source": png_bytes / source_bytes})
        print(f"  level {level}: encode {encode_ms:.1f} ms, {png_bytes / 1024:.0f} KiB", flush=True)
    return {"sample": len(picked), "repeat": repeat, "source_format": images[0].format,
            "image_size": list(images[0].size), "mode": images[0].mode, "source_bytes": source_bytes,
            "source_decode_ms": best_ms(decode, sources), "levels": rows,
            "recommendation": recommend_level(rows)}


def recommend_level(rows: list[dict]) -> dict:
    """Level 1 (the fastest that compresses) unless a higher level saves >= STEP_UP_MIN_SAVING of
    level 1's bytes at <= STEP_UP_MAX_SLOWDOWN x its encode time; then the smallest such level."""
    by_level = {r["level"]: r for r in rows}
    fast = by_level.get(1) or min((r for r in rows if r["level"] > 0), key=lambda r: r["encode_ms"])
    qualify = [r for r in rows if r["level"] > fast["level"] and 1 - r["bytes"] / fast["bytes"] >= STEP_UP_MIN_SAVING
               and r["encode_ms"] / fast["encode_ms"] <= STEP_UP_MAX_SLOWDOWN]
    chosen = min(qualify, key=lambda r: r["bytes"]) if qualify else fast
    others = [r for r in rows if r["level"] > chosen["level"] and r["level"] in (6, 9)]
    trade = "; ".join(
        f"level {r['level']} saves {1 - r['bytes'] / chosen['bytes']:.1%} more but costs "
        f"{r['encode_ms'] / chosen['encode_ms']:.1f}x the encode time" for r in others)
    text = (f"level {chosen['level']}: {chosen['encode_ms']:.1f} ms/image to encode, "
            f"{chosen['bytes'] / 1024:.0f} KiB/image ({chosen['ratio_to_source']:.1%} of the BMP), "
            f"{chosen['decode_ms']:.1f} ms/image to decode" + (f"; {trade}" if trade else "") +
            f" (rule: step up from level {fast['level']} only for >= {STEP_UP_MIN_SAVING:.0%} smaller output "
            f"at <= {STEP_UP_MAX_SLOWDOWN:g}x its encode time)")
    return {"level": chosen["level"], "text": text}


def print_png_levels(result: dict, images: int | None = None):
    src = result["source_bytes"]
    print(f"\nPNG compress_level on {result['sample']} {result['image_size'][0]}x{result['image_size'][1]} "
          f"{result['mode']} {result['source_format']}s ({src / 1024:.0f} KiB each; {result['source_format']} "
          f"decode {result['source_decode_ms']:.2f} ms), one core, best of up to {result['repeat']} pass{'es' if result['repeat'] != 1 else ''}:")
    head = f"{'level':>5} {'encode ms':>10} {'KiB/image':>10} {'x BMP':>6} {'decode ms':>10} {'x level 1 time':>15}"
    if images:
        head += f" {f'encode {images} imgs, 1 core':>26} {'output MiB':>11}"
    print(head + "\n" + "-" * len(head))
    level1 = next((r for r in result["levels"] if r["level"] == 1), None)
    for r in result["levels"]:
        line = (f"{r['level']:>5} {r['encode_ms']:>10.2f} {r['bytes'] / 1024:>10.1f} {r['ratio_to_source']:>6.3f}"
                f" {r['decode_ms']:>10.2f} {r['encode_ms'] / level1['encode_ms'] if level1 else float('nan'):>15.2f}")
        if images:
            line += f" {r['encode_ms'] * images / 1000:>24.0f} s {r['bytes'] * images / 2**20:>11.0f}"
        print(line)
    print(f"Recommend {result['recommendation']['text']}.")


def png_levels_command(args):
    with tempfile.TemporaryDirectory(prefix="medsets-bench-") as tmp:
        if args.source:  # real BMPs: the synthetic cells are smoother than real ones and compress better
            source, scale = Path(args.source).resolve(), None
            if not source.is_dir():
                sys.exit(f"png-levels: --source {source} is not a folder (extract the download first)")
        else:
            work = Path(args.work).resolve() if args.work else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            source, scale, _ = make_replica(work, "leukemia", args.scale)
        bmps = image_files(source, ".bmp")
        if not bmps:
            sys.exit(f"png-levels: no .bmp files under {source}")
        print(f"[png-levels] {min(args.sample, len(bmps))} of {len(bmps)} BMPs, levels "
              f"{','.join(map(str, PNG_LEVELS))}, best of up to {args.repeat}", flush=True)
        result = png_levels(bmps, args.sample, args.repeat)
    print_png_levels(result)
    write_json(args.json, {"benchmark": "png-levels", "source": str(source) if args.source else "synthetic replica",
                           "scale": scale, "machine": machine_info(), **result})


# -- train-classification: the fine-tuning script's training img/s vs the model-only ceiling ------------
def replica_dataset(work: Path, kind: str, scale: float) -> tuple[str, str]:
    """A built dataset folder for `kind` (hep2 icpr2014 / icpr2012 / leukemia / bis5k / gzmh tiles), made
    from a replica once."""
    import builders
    from builders import synthetic
    from builders.export import build
    name, config = {"hep2": ("hep2", "icpr2014"), "hep2-2012": ("hep2", "icpr2012"), "leukemia": ("leukemia", "cnmc"),
                    "bis5k": ("bis5k", "default"), "gzmh-tiles": ("gzmh", "tiles")}[kind]
    out = work / f"{kind}-{scale}"
    if not (out / "data" / config).exists():
        raw = work / f"raw-{kind}-{scale}"
        source = {"hep2": lambda: synthetic.write_hep2_icpr2014(raw, "processed", scale=scale),
                  "hep2-2012": lambda: synthetic.write_hep2_icpr2012(raw, scale=scale),
                  "leukemia": lambda: synthetic.write_leukemia(raw, "kaggle", scale=scale),
                  "bis5k": lambda: synthetic.write_bis5k(raw, scale=scale, size=512),
                  "gzmh-tiles": lambda: synthetic.write_gzmh(raw, "v2", scale=scale)}[kind]()
        print(f"Building a {kind} replica (scale {scale}) in {out} ...", flush=True)
        build(builders.BUILDERS[name], source, config, out, overwrite=True)
    return str(out), config


def sync_device():
    """Wait for the GPU's queued work (nothing to wait for on the CPU): the ends of every timed window."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def loader_alone(trainer, batch_size: int, rounds: int = 3) -> float:
    """Sustained img/s of the script's training DataLoader (workers, collation, pinning, the copy to the
    device) with nothing else to do. Timed from the end of the first round of batches (one per worker,
    which includes starting them) over `rounds` more rounds: every batch then is one the workers made
    while being timed, none drawn from what they had prefetched."""
    loader = trainer.get_train_dataloader()
    workers = max(trainer.args.dataloader_num_workers, 1)
    skip, timed = workers, max(rounds * workers, 8)
    seen, start = 0, None
    while seen < skip + timed:
        for batch in loader:
            seen += 1
            if seen == skip:
                sync_device()
                start = time.perf_counter()
            if seen == skip + timed:
                break
    sync_device()
    return timed * batch_size / (time.perf_counter() - start)


def pipeline_vs_ceiling(run, args, random_batch, loss_of) -> dict:
    """Measured in this process, on the same model object and batch size: (1) steps of the script's own
    trainer (`run.trainer`: DataLoader workers, uint8 batches, augmentation on the device, mixed precision
    as the script does), (2) the ceiling: `random_batch` tensors already on the device through the same
    model, `loss_of(model, batch)`, backward and a fused AdamW step under the same autocast, (3) the input
    pipeline alone (`loader_alone`).

    Workers prefetch two batches each (32 batches with 16), so a few timed steps can run on batches made
    before the clock started and look faster than the workers can keep up with. The sustained rate is
    therefore the lower of (1) and (3), and the ratio is taken on it."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()
    total_steps = args.warmup_steps + args.steps
    if args.warmup_steps < 1 or args.steps < 1:
        sys.exit("--warmup_steps and --steps must be at least 1 (the clock starts after the last warm-up step)")

    class StepClock(TrainerCallback):
        """Reads the clock after the last warm-up step and after the last step, synchronising only there: a
        synchronisation every step would leave the GPU idle while the host prepares the next one. On a GPU
        it also lists the host synchronisations of the last warm-up step, batch fetch included (torch's
        sync debug mode), since each one costs every step that idle time."""

        def __init__(self):
            self.times, self.watching, self.syncs = {}, False, []

        def on_step_end(self, training_args, state, control, **kwargs):
            if cuda and state.global_step == args.warmup_steps - 1:
                torch.cuda.set_sync_debug_mode("warn")
                self.watching = True
            if state.global_step in (args.warmup_steps, total_steps):
                if self.watching:
                    torch.cuda.set_sync_debug_mode("default")
                    self.watching = False
                    self.syncs = [f"{Path(w.filename).name}:{w.lineno}" for w in caught
                                  if "synchronizing CUDA operation" in str(w.message)]
                sync_device()
                self.times[state.global_step] = time.perf_counter()

    clock = StepClock()
    run.trainer.add_callback(clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.trainer.train()
    images = args.steps * args.batch_size * run.trainer.args.world_size
    pipeline = images / (clock.times[total_steps] - clock.times[args.warmup_steps])

    model = run.trainer.model
    model.train()
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    batch = random_batch(model, device)
    dtype = torch.bfloat16 if run.trainer.args.bf16 else None
    for step in range(1, total_steps + 1):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == args.warmup_steps:
            sync_device()
            start = time.perf_counter()
    sync_device()
    ceiling = args.steps * args.batch_size / (time.perf_counter() - start)
    del optimizer, batch

    loader = loader_alone(run.trainer, args.batch_size, args.loader_rounds) if args.loader_rounds else None
    sustained = pipeline if loader is None else min(pipeline, loader)
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {"pipeline_img_s": pipeline, "loader_alone_img_s": loader, "sustained_img_s": sustained,
            "ceiling_img_s": ceiling, "ratio": sustained / ceiling,
            "host_syncs_in_one_step": clock.syncs if cuda and args.warmup_steps > 1 else None,
            "precision": "bf16" if dtype else "fp32", "device": device_name,
            "workers": run.trainer.args.dataloader_num_workers}


def timing_argv(args, work: Path) -> list[str]:
    """Trainer options shared by the training benchmarks: fixed steps, no evaluation or saving, full batches."""
    return ["--output_dir", str(work / "run"), "--image_size", str(args.image_size),
            "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(args.warmup_steps + args.steps),
            "--eval_strategy", "no", "--save_strategy", "no", "--logging_strategy", "no", "--disable_tqdm", "True",
            "--dataloader_num_workers", str(args.workers), "--dataloader_drop_last", "True"]


def report_training(args, name: str, dataset: str, config, run, model_name: str, details: str, timing: dict):
    print(f"\n{model_name}, batch {args.batch_size}, {timing['precision']}, {timing['device']}; data {dataset} "
          f"{config or ''} (train split {len(run.sets['train'])} rows per epoch){details}, {timing['workers']} "
          f"DataLoader workers; {args.steps} steps timed after {args.warmup_steps}")
    print(f"  training through {name} (real input pipeline): {timing['pipeline_img_s']:8.1f} img/s")
    if timing["loader_alone_img_s"] is not None:
        print(f"  its input pipeline alone (DataLoader to the device):   {timing['loader_alone_img_s']:8.1f} img/s")
        if timing["loader_alone_img_s"] < timing["pipeline_img_s"]:
            print("  (the timed steps drew on batches the workers had prefetched: the input pipeline alone is the "
                  "sustained rate)")
    print(f"  model-only ceiling (random tensors on the device):   {timing['ceiling_img_s']:8.1f} img/s")
    print(f"  ratio, sustained / ceiling: {timing['ratio']:.3f}")
    if timing["host_syncs_in_one_step"] is not None:
        where = ", ".join(sorted(set(timing["host_syncs_in_one_step"]))) or "none"
        print(f"  host synchronisations in one training step: {len(timing['host_syncs_in_one_step'])} ({where})")
    write_json(args.json, {"benchmark": args.command, "dataset": dataset, "config": config, "model": model_name,
                           "details": details.lstrip(", "),
                           "batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps,
                           **timing, "machine": machine_info()})


def load_script(name: str):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import importlib
    return importlib.import_module(name)


def set_up_run(args, script: str, options: list[str]):
    """The script's own set_up() on --dataset or a replica, with the timing options: (dataset, config, run)."""
    work = Path(args.work or tempfile.mkdtemp(prefix="medsets-train-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset, config = (args.dataset, args.config) if args.dataset else replica_dataset(work, args.replica, args.scale)
    argv = ["--dataset", dataset, "--model_size", args.model_size] + options + timing_argv(args, work)
    argv += ["--config", config] if config and config != "default" else []
    run = load_script(script).set_up(argv)
    if len(run.sets["train"]) < args.batch_size:
        sys.exit(f"the train split has {len(run.sets['train'])} rows, fewer than one batch of {args.batch_size}: "
                 "use a larger --scale or a smaller --batch_size")
    return dataset, config, run


def train_classification(args):
    """finetune_classification.py's training img/s against the model-only ceiling (pipeline_vs_ceiling)."""
    import torch
    dataset, config, run = set_up_run(args, "finetune_classification", ["--patch_size", str(args.patch_size),
                                                                        "--protocol", args.protocol])

    def random_batch(model, device):
        return (torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device),
                torch.randint(model.config.num_labels, (args.batch_size,), device=device))

    def loss_of(model, batch):
        return torch.nn.functional.cross_entropy(model(pixel_values=batch[0]).logits.float(), batch[1])

    timing = pipeline_vs_ceiling(run, args, random_batch, loss_of)
    report_training(args, "finetune_classification", dataset, config, run, run.model_name,
                    f", protocol {run.protocol_name}", timing)


def train_segmentation(args):
    """finetune_segmentation.py's training img/s against the model-only ceiling (pipeline_vs_ceiling); the
    ceiling's loss is SegFormer's own (logits upsampled to the target, cross-entropy), as the script's."""
    import torch
    cache_gb = args.decode_cache_gb
    if cache_gb is None and args.replica == "gzmh-tiles" and not args.dataset:
        cache_gb = 0.0  # as the full dataset would be: real GZMH tiles (~40 GB decoded) are decoded by the workers
    options = [] if cache_gb is None else ["--decode_cache_gb", str(cache_gb)]  # else the script's default
    dataset, config, run = set_up_run(args, "finetune_segmentation", options)

    def random_batch(model, device):
        return (torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device),
                torch.randint(model.config.num_labels, (args.batch_size, args.image_size, args.image_size), device=device))

    def loss_of(model, batch):
        return model(pixel_values=batch[0], labels=batch[1]).loss

    timing = pipeline_vs_ceiling(run, args, random_batch, loss_of)
    decoding = "decoded once (cache)" if run.sets["train"].cached else "decoded by the DataLoader workers"
    report_training(args, "finetune_segmentation", dataset, config, run, run.model_name, f", images {decoding}", timing)


# -- command line --------------------------------------------------------------------------------------
# -- segmentation-metric: the BIS5k toolkit ------------------------------------------------------------
def metric_pairs(count: int, size: int, seed: int = 0) -> list[tuple]:
    """Blob-shaped ground truths (0/255) and grey-level predictions that roughly follow them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        field = np.asarray(Image.fromarray(rng.standard_normal((8, 8)).astype(np.float32), mode="F")
                           .resize((size, size), Image.Resampling.BICUBIC))
        truth = (field > np.quantile(field, rng.uniform(0.4, 0.9))).astype(np.uint8) * 255
        noisy = field + rng.normal(0, 0.6, field.shape).astype(np.float32)
        prediction = (255 / (1 + np.exp(-3 * (noisy - np.quantile(field, 0.6))))).astype(np.uint8)
        pairs.append((prediction, truth))
    return pairs


def load_by_path(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def segmentation_metric(args):
    import evaluate

    root = Path(__file__).resolve().parents[1]
    toolkit = load_by_path(root / "scripts/metrics/segmentation/segmentation.py", "segmentation_toolkit")
    reference = load_by_path(root / "tests/test_segmentation_metric.py", "segmentation_reference")
    print(f"Making {args.pairs} pairs of {args.size}x{args.size} masks (untimed) ...", flush=True)
    pairs = metric_pairs(args.pairs, args.size)
    results = {}

    def timed(label, work):
        print(f"  {label} ...", flush=True)
        start = time.perf_counter()
        value = work()
        results[label] = {"wall_s": time.perf_counter() - start}
        return value

    direct = timed("toolkit_scores + summarize, 1 process",
                   lambda: toolkit.summarize(toolkit.toolkit_scores(p, g) for p, g in pairs))
    metric = evaluate.load(str(root / "scripts/metrics/segmentation"))
    for num_proc in sorted({1, os.cpu_count() or 1}):
        via_evaluate = timed(f"evaluate, pack() bytes, num_proc={num_proc}", lambda: metric.compute(
            predictions=[toolkit.pack(p) for p, _ in pairs], references=[toolkit.pack(g) for _, g in pairs],
            num_proc=num_proc))
        assert all(abs(via_evaluate[k] - direct[k]) < 1e-9 for k in direct)
    sample = pairs[:args.reference_sample]
    slow = timed(f"slow reference (tests), {len(sample)} pairs", lambda: reference.ref_toolkit(sample))
    fast_sample = toolkit.summarize(toolkit.toolkit_scores(p, g) for p, g in sample)
    assert all(abs(slow[k] - fast_sample[k]) < 1e-6 for k in slow)
    per_pair_slow = results[f"slow reference (tests), {len(sample)} pairs"]["wall_s"] / len(sample)
    per_pair_fast = results["toolkit_scores + summarize, 1 process"]["wall_s"] / len(pairs)

    print(f"\nBIS5k toolkit on {len(pairs)} pairs of {args.size}x{args.size} masks ({os.cpu_count()} cores):")
    for label, r in results.items():
        print(f"  {label:45s} {r['wall_s']:8.2f} s")
    print(f"  slow reference extrapolated to {len(pairs)} pairs: {per_pair_slow * len(pairs):8.1f} s; fast version is "
          f"{per_pair_slow / per_pair_fast:.0f}x faster per pair ({per_pair_fast * 1000:.1f} vs "
          f"{per_pair_slow * 1000:.0f} ms)")
    print("  scores: " + ", ".join(f"{k} {v:.4f}" for k, v in direct.items()))
    write_json(args.json, {"benchmark": "segmentation-metric", "pairs": len(pairs), "size": args.size,
                           "machine": machine_info(), "stages": results, "scores": direct,
                           "speedup_per_pair": per_pair_slow / per_pair_fast})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_stage"]:  # hidden: one measured stage, run by `measure` in a fresh process
        return run_stage(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def build_options(sub, name: str, full: str, scale: float = 1.0):
        sub.add_argument("--scale", type=float, default=scale, help=f"replica size; 1.0 = {full}" +
                         (" (default)" if scale == 1.0 else f" (default {scale:g})"))
        sub.add_argument("--repeat", type=int, default=1, help="runs per stage; the best wall time is kept (default 1)")
        sub.add_argument("--num-proc", type=int, action="append", metavar="N",
                         help="also build with num_proc=N (repeatable); 1 and the CPU count always run")
        sub.add_argument("--json", default=f"benchmark-results/{name}.json", help="where to write all numbers "
                         "(default: %(default)s)")
        sub.add_argument("--stage-timeout", type=float, default=1800, metavar="S",
                         help="kill a stage run after S seconds and stop (default %(default)s)")
        sub.add_argument("--work", metavar="DIR", help="keep the replica here instead of a temporary folder, and "
                         "reuse it if DIR already holds one of this --scale")

    def training_benchmark(name: str, script: str, example: str, replicas: list[str], replica_help: str,
                           scale: float, scale_help: str, model_sizes: list[str], image_size: int, batch_size: int,
                           on_a_gpu: str):
        """A train-* subcommand with the options every training benchmark shares; returns it for its own."""
        sub = commands.add_parser(
            name, help=f"training img/s of {script}.py vs the model-only ceiling",
            description=f"Train with scripts/{script}.py for --steps steps and then run the same model on random "
            "tensors already on the device, in one process with one batch size and precision; then time the "
            f"script's DataLoader alone. Prints the three img/s and the ratio. On a GPU: {on_a_gpu}.")
        data = sub.add_mutually_exclusive_group()
        data.add_argument("--dataset", help=f"a built folder ({example}); default: a replica built in --work")
        data.add_argument("--replica", default=replicas[0], choices=replicas,
                          help=f"replica to build when no --dataset{replica_help} (default: %(default)s)")
        sub.add_argument("--config", help="config of --dataset")
        sub.add_argument("--scale", type=float, default=scale, help=f"replica size (default: %(default)s{scale_help})")
        sub.add_argument("--work", metavar="DIR", help="keep the replica and run folder here (reused)")
        sub.add_argument("--model_size", default=model_sizes[0], choices=model_sizes, help="(default: %(default)s)")
        sub.add_argument("--image_size", type=int, default=image_size, help="(default: %(default)s)")
        sub.add_argument("--batch_size", type=int, default=batch_size, help="(default: %(default)s)")
        sub.add_argument("--steps", type=int, default=30, help="timed steps (default: %(default)s)")
        sub.add_argument("--warmup_steps", type=int, default=5, help="untimed steps first (default: %(default)s)")
        sub.add_argument("--loader_rounds", type=int, default=3, help="then time the DataLoader alone for this many "
                         "batches per worker after its first; 0 skips it (default: %(default)s)")
        sub.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                         help="DataLoader workers (default: %(default)s)")
        sub.add_argument("--json", default=f"benchmark-results/{name}.json", help="(default: %(default)s)")
        return sub

    hep2 = commands.add_parser("build-hep2", help="raw read vs imagefolder vs medsets build on HEp-2 ICPR 2014",
                               description="Time raw read, imagefolder (+to_parquet) and medsets build on one "
                               "synthetic replica of the HEp-2 ICPR 2014 processed download.")
    build_options(hep2, "build-hep2", "all 13,596 cells")
    leuk = commands.add_parser(
        "build-leukemia", help="raw read vs imagefolder vs medsets build on C-NMC leukemia, then png-levels",
        description="Time raw read, imagefolder (training_data/, + embedded Parquet) and medsets build on one "
        "synthetic replica of the C-NMC 2019 Kaggle download (450x450 BMPs), then run png-levels on it.")
    build_options(leuk, "build-leukemia", "all 15,114 BMPs: 12,528 labelled + 2,586 final test, ~9 GB")
    leuk.add_argument("--png-sample", type=int, default=200, metavar="N",
                      help="BMPs for the png-levels measurement; 0 skips it (default %(default)s)")
    leuk.add_argument("--png-repeat", type=int, default=3, metavar="N",
                      help="png-levels passes per level; the best is kept (default %(default)s)")
    gzmh = commands.add_parser(
        "build-gzmh", help="raw read vs imagefolder vs medsets full and tiles on GZMH; memory vs images",
        description="Time raw read, imagefolder (train/images/, + embedded Parquet) and medsets full and tiles "
        "builds on one synthetic replica of GZMH V2 at full size (2084x2084 JPEGs + PNG masks), extrapolate the "
        "time to all 1,534 images, and check that peak memory does not grow with the number of images by "
        "building again from a subset (hard links).")
    build_options(gzmh, "build-gzmh", "all 1,534 images, ~35 min to write", scale=0.05)
    gzmh.add_argument("--small-fraction", type=float, default=1 / 3, metavar="F",
                      help="the memory check builds full and tiles (num_proc=1) again from the first F of each "
                      "split's images; 0 skips it (default: a third)")
    png = commands.add_parser(
        "png-levels", help="PNG compress_level 0..9 on C-NMC BMPs: encode/decode ms, size; recommends a level",
        description="Encode a sample of C-NMC BMPs as PNG at compress_level " + ",".join(map(str, PNG_LEVELS)) +
        " (PIL, one core): encode and decode ms/image, bytes/image and ratio to the BMP, and a recommended "
        "level for Leukemia.PNG_COMPRESS_LEVEL.")
    where = png.add_mutually_exclusive_group()
    where.add_argument("--source", metavar="DIR", help="take the sample from the .bmp files under DIR, e.g. the real "
                       "extracted C-NMC download, instead of a synthetic replica")
    where.add_argument("--work", metavar="DIR", help="take the sample from the replica in DIR (any scale), or write "
                       "one there; without either a temporary replica is written")
    png.add_argument("--scale", type=float, default=None,
                     help="replica size when one is written (default 0.02, ~300 BMPs; with --work, reuse any)")
    png.add_argument("--sample", type=int, default=200, metavar="N", help="BMPs to encode (default %(default)s)")
    png.add_argument("--repeat", type=int, default=3, help="passes per level; the best is kept (default %(default)s)")
    png.add_argument("--json", default="benchmark-results/png-levels.json", help="(default: %(default)s)")
    seg = commands.add_parser(
        "segmentation-metric", help="the BIS5k toolkit (scripts/metrics/segmentation) on N mask pairs",
        description="Time the BIS5k evaluation toolkit on N pairs of masks: direct calls, through "
        "evaluate.load(...).compute with 1 and all processes, and the tests' slow reference on a sample.")
    seg.add_argument("--pairs", type=int, default=929, help="mask pairs (default: %(default)s, the BIS5k test set)")
    seg.add_argument("--size", type=int, default=512, help="mask side in pixels (default: %(default)s)")
    seg.add_argument("--reference-sample", type=int, default=5, metavar="N",
                     help="pairs scored by the slow reference; its time is extrapolated (default %(default)s)")
    seg.add_argument("--json", default="benchmark-results/segmentation-metric.json", help="(default: %(default)s)")
    train = training_benchmark("train-classification", "finetune_classification", "./hep2",
                               ["hep2", "hep2-2012", "leukemia"], "", 0.05, "", ["tiny", "small", "base"], 224, 32,
                               "--model_size base --batch_size 256 (ViT-B/16 at 224, bf16)")
    train.add_argument("--patch_size", type=int, default=16, help="(default: %(default)s)")
    train.add_argument("--protocol", default="plain", choices=["plain", "paper"], help="(default: %(default)s)")
    segtrain = training_benchmark("train-segmentation", "finetune_segmentation", "./bis5k", ["bis5k", "gzmh-tiles"],
                                  ": BIS5k at 512x512, or GZMH V2 2084x2084 fields cut into 512x512 tiles", 0.02,
                                  ": 100 BIS5k train images, or 31 GZMH fields = 775 tiles", ["b0", "b2"], 512, 8,
                                  "--batch_size 32 (SegFormer-B0 at 512, bf16)")
    segtrain.add_argument("--decode_cache_gb", type=float, help="the script's option (default: 16, but 0 for the "
                          "gzmh-tiles replica: the real GZMH tiles, ~40 GB decoded, are decoded by the workers)")
    args = parser.parse_args(argv)
    {"build-hep2": build_hep2, "build-leukemia": build_leukemia, "build-gzmh": build_gzmh,
     "png-levels": png_levels_command, "segmentation-metric": segmentation_metric,
     "train-classification": train_classification, "train-segmentation": train_segmentation}[args.command](args)


if __name__ == "__main__":
    main()
