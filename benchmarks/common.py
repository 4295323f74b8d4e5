"""What every benchmark shares: measured stages in fresh processes (wall time of the work only, peak RSS
of the process and its workers), the replicas they run on, and the tables they print."""

from __future__ import annotations

import abc
import csv
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

MARK = "BENCHMARK-RESULT "


# -- child side: one stage, one process ----------------------------------------------------------------
def run_stage(spec: dict):
    start = time.perf_counter()
    import datasets

    import medsets
    from medsets import export
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
        _, reports = export.build_configs(getattr(medsets, spec["builder"]), spec["source"], spec["config"],
                                          scratch / "out", num_proc=spec["num_proc"],
                                          near_duplicates=spec.get("near_duplicates", True))
        rows = sum(c["total"] for report in reports.values() for c in report.counts.values())
        extra["counts"] = next(iter(reports.values())).counts  # the first config's (gzmh one pass: tiles)
        extra["configs"] = list(reports)
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
    from medsets import synthetic
    return Path(synthetic.write_hep2_icpr2014(dest, "processed", scale=scale, seed=0))


def write_cnmc(dest: Path, scale: float) -> Path:
    from medsets import synthetic
    return Path(synthetic.write_leukemia(dest, "kaggle", scale=scale, seed=0))


def write_gzmh_v2(dest: Path, scale: float) -> Path:
    from medsets import synthetic
    return Path(synthetic.write_gzmh(dest, "v2", scale=scale, seed=0))  # full 2084x2084 fields


# dataset -> (writer, suffix of the files counted to tell a complete replica; gzmh: the JPEG images,
# each written before its mask, and the marker only after the last one)
REPLICAS = {"hep2": (write_hep2, ".png"), "leukemia": (write_cnmc, ".bmp"), "gzmh": (write_gzmh_v2, ".jpg")}


def synthetic_fingerprint() -> str:
    import medsets.synthetic
    digest = hashlib.sha256()
    for module in sorted(Path(medsets.synthetic.__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


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
                " (medsets/synthetic/ has changed since it was written; delete the folder for a fresh one)"
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
    repository = str(Path(__file__).resolve().parents[1])  # where `benchmarks` imports from, wherever we run
    env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (repository, env.get("PYTHONPATH")) if p)}
    child = subprocess.Popen([sys.executable, "-m", "benchmarks", "_stage", json.dumps(spec)], stdout=subprocess.PIPE,
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
