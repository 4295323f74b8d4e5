"""`medsets demo`: synthetic replicas of every raw layout, built, loaded offline with plain `datasets`, then
short from-scratch runs of the fine-tuning scripts (from a clone, with the train extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datasets import disable_progress_bars, load_dataset

from . import synthetic
from .builders import BUILDERS
from .export import build_configs

DEMO_MARKER = ".medsets-demo"


def run_demo(out: Path, scale: float) -> int:
    out = out.resolve()
    if out.exists():
        if not (out / DEMO_MARKER).exists():
            print(f"medsets: {out} exists and was not made by `medsets demo`; choose another --out", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    raw = out / "raw"
    raw.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("made by `medsets demo`; safe to delete\n")

    print(f"1. Writing synthetic replicas of the raw downloads ({scale:.0%} of the published counts) to {raw}")
    sources = [
        ("hep2", "icpr2014", synthetic.write_hep2_icpr2014(
            raw / "hep2-processed", "processed", scale=scale, as_zip=True, wrapper="HEp-2")),
        # The MIVIA download: the contest folder and Main_Dataset/ (the slides), cross-checked by the build.
        ("hep2", "icpr2012", synthetic.write_hep2_icpr2012(raw / "hep2-icpr2012", scale=min(1.0, 4 * scale),
                                                           parts=("contest", "main"))),
        ("hep2", "icpr2012_slides", raw / "hep2-icpr2012"),
        # 450x450 cells take ~30 ms each to draw: a fifth of the fraction keeps the demo quick.
        ("leukemia", "cnmc", synthetic.write_leukemia(raw / "C-NMC_Leukemia", "kaggle", scale=scale / 5,
                                                       as_zip=True)),
        ("bis5k", "default", synthetic.write_bis5k(raw / "BIS5k", scale=scale / 5, size=256)),
        # 1024 px fields instead of 2084 px: a quarter of the pixels, the same structure.
        # A plain build of gzmh writes both configs, tiles (the default) and full, from one pass.
        ("gzmh", None, synthetic.write_gzmh(raw / "GZMH Dataset V2", "v2", scale=scale / 5, size=1024,
                                            as_zip=True)),
    ]
    built = []
    print("\n2. Building each with medsets (every report in NAME/reports/CONFIG.txt):")
    disable_progress_bars()  # one line per build here; the reports hold the rest
    for name, config, source in sources:
        option = f" --config {config}" if config else ""
        print(f"   medsets build {name}{option} --source {source.relative_to(out.parent)}", flush=True)
        folder, reports = build_configs(BUILDERS[name], source, config, out / name)
        for config_built, report in reports.items():
            built.append((name, config_built))
            rows = sum(c["total"] for c in report.counts.values())
            notes = [f"{len(report.count_mismatches)} counts differ from the published ones (a scaled-down "
                     "replica)"] if report.count_mismatches else ["counts as published"]
            notes += [f"{len(report.warnings)} warnings"] if report.warnings else []
            copies = report.duplicate_lines()[:1]
            print(f"     {name}/{config_built}: {rows} rows in {len(report.counts)} splits; layout "
                  f"{shortened(report.layout)}; {'; '.join(notes)}" + (f"\n       {shortened(copies[0], 110)}"
                                                                       if copies else ""))

    print("\n3. Loading the built folders offline with plain `datasets` (no medsets code involved):")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as cache:
        for name, config in built:
            ds = load_dataset(str(out / name), config, cache_dir=cache)
            first = next(iter(ds.values()))[0]
            sizes = ", ".join(f"{split} {len(d)}" for split, d in ds.items())
            label = next(iter(ds.values())).features["label"]
            what = (f"{len(first['objects']['bbox'])} objects in its first row" if "objects" in first else
                    f"classes {', '.join(label.names)}" if isinstance(first["label"], int) else
                    f"label mask with class ids {sorted(set(first['label'].getdata()))} in its first row")
            print(f"   load_dataset('{name}', '{config}'): {sizes}; {what}")
    code = demo_training(out)
    print_summary(out, built)
    return code


def shortened(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def print_summary(out: Path, built: list[tuple[str, str]]):
    """Where to look: the built folders, their pictures, and each run's metrics, pictures and log."""
    print(f"\nDone. Built folders (each: data/, README.md card, croissant.json, reports/): "
          f"{', '.join(str(out / n) for n in dict.fromkeys(n for n, _ in built))}")
    pictures = sorted(out.glob("*/sample-*.png"))
    print("Pictures of the data: " + ", ".join(str(p.relative_to(out)) for p in pictures))
    runs = sorted(p.parent for p in out.glob("*/metrics.json"))
    for run in runs:
        shown = [p.name for p in sorted(run.glob("*.png"))] + ["metrics.json", "table.md"]
        print(f"Run {run.relative_to(out)}: {', '.join(shown)}; log: logs/{run.name}.log")
    print(f"(paths relative to {out})")


def scripts_folder() -> Path | None:
    """The fine-tuning scripts of a clone (they live in the repository, as the transformers examples do)."""
    folder = Path(__file__).resolve().parents[1] / "scripts"
    return folder if (folder / "finetune_classification.py").is_file() else None


# Every demo run: from scratch on the CPU, quiet, one checkpoint kept.
DEMO_TRAINING = ["--save_total_limit", "1", "--use_cpu", "True", "--dataloader_num_workers", "0", "--disable_tqdm", "True",
                 "--log_level", "warning"]


def demo_training(out: Path) -> int:
    """Short from-scratch runs of the fine-tuning scripts on the replicas: ViT on HEp-2, SegFormer on BIS5k
    and GZMH tiles, RT-DETR on GZMH tiles (scored on the full images) and on whole HEp-2 slides."""
    scripts = scripts_folder()
    if scripts is None:  # the truth first: the extra alone would not bring them
        print("\n4. Fine-tuning skipped: the fine-tuning scripts live in the repository's scripts/ folder and are "
              "not part of the installed package (as transformers' example scripts are not part of transformers); "
              "clone the repository and run `make demo` there (it installs the train extra).")
        return 0
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        print("\n4. Fine-tuning skipped: it needs the train extra (pip install '.[train]' in the clone).")
        return 0
    runs = [
        ("finetune_classification", "a ViT-tiny on the HEp-2 replica, 10 short epochs",
         ["--dataset", str(out / "hep2"), "--config", "icpr2014", "--output_dir", str(out / "vit-hep2"),
          "--model_size", "tiny", "--image_size", "32", "--patch_size", "8", "--num_train_epochs", "10",
          "--learning_rate", "1e-3"],
         lambda r: f"test accuracy {r['test']['accuracy']:.3f} (chance 1/6), mean class accuracy "
                   f"{r['test']['mean_class_accuracy']:.3f}; table.md, confusion_matrix.png"),
        ("finetune_segmentation", "a SegFormer-B0 on the BIS5k replica at 64 px, 10 epochs",
         ["--dataset", str(out / "bis5k"), "--output_dir", str(out / "segformer-bis5k"), "--model_size", "b0",
          "--image_size", "64", "--num_train_epochs", "10", "--per_device_train_batch_size", "8"],
         lambda r: f"test cancer Dice {r['test']['dice_by_class']['cancer']:.3f}, mean IoU {r['test']['mean_iou']:.3f} "
                   f"(all background: {r['test']['all_background']['mean_iou']:.3f}); table.md, predictions.png"),
        ("finetune_segmentation", "a SegFormer-B0 on the GZMH tiles at 128 px, 8 epochs",
         ["--dataset", str(out / "gzmh"), "--config", "tiles", "--output_dir", str(out / "segformer-gzmh"),
          "--model_size", "b0", "--image_size", "128", "--num_train_epochs", "8", "--per_device_train_batch_size", "8"],
         lambda r: f"test mitosis Dice {r['test']['dice_by_class']['mitosis']:.3f} (all background: 0), mitosis F1 "
                   f"on full images {r['mitosis_f1']['test']['f1']:.3f} (no detections: 0); table.md, "
                   f"predictions.png, detections.png"),
        # 3 epochs (the test's) undertrain the demo's 10 fields: test F1 0.46-0.83 over seeds; 8 give 0.83-1.0.
        ("finetune_detection", "an RT-DETR (tiny) on the GZMH tiles at 128 px, 8 epochs, scored on full images",
         ["--dataset", str(out / "gzmh"), "--config", "tiles", "--output_dir", str(out / "rtdetr-gzmh"),
          "--model_size", "tiny", "--image_size", "128", "--num_train_epochs", "8"],
         lambda r: f"test mitosis F1 {r['test']['f1']:.3f} (precision {r['test']['precision']:.3f}, recall "
                   f"{r['test']['recall']:.3f}; no detections: 0) at threshold {r['test']['threshold']:g}; "
                   f"table.md, detections.png"),
        ("finetune_detection", "an RT-DETR (tiny) finding and classifying the cells on whole HEp-2 slides at 256 px, "
         "10 epochs",
         ["--dataset", str(out / "hep2"), "--config", "icpr2012_slides", "--output_dir", str(out / "rtdetr-hep2-slides"),
          "--model_size", "tiny", "--image_size", "256", "--num_train_epochs", "10", "--match_radius", "40",
          "--per_device_train_batch_size", "4"],
         lambda r: f"test cell F1 {r['test']['f1']:.3f} (centres within 40 px), COCO mAP {r['test']['coco']['map']:.3f} "
                   f"(mAP@.50 {r['test']['coco']['map_50']:.3f}) over six patterns; table.md, detections.png"),
    ]
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    print(f"\n4. Fine-tuning from scratch on the CPU, short runs of scripts/ (each command and its whole output "
          f"in {logs}/):")
    for step, (name, what, args, summary) in enumerate(runs, start=1):
        output_dir = Path(args[args.index("--output_dir") + 1])
        log = logs / f"{output_dir.name}.log"
        print(f"   4.{step}/{len(runs)} {what}", flush=True)
        started = time.monotonic()
        # As a user runs it: a process of its own, whose results are the metrics.json it writes.
        command = [sys.executable, str(scripts / f"{name}.py"), *args, *DEMO_TRAINING]
        with open(log, "w") as handle:
            handle.write(f"$ python scripts/{name}.py {' '.join(args + DEMO_TRAINING)}\n\n")
            handle.flush()
            returncode = run_with_epoch_bar(command, handle, output_dir, int(args[args.index("--num_train_epochs") + 1]))
        if returncode != 0:
            print("       failed")
            tail = log.read_text(errors="replace").splitlines()[-25:]
            print("\n".join(f"     {line}" for line in tail), file=sys.stderr)
            print(f"medsets: demo step 4.{step} (scripts/{name}.py) failed with exit status {returncode}; "
                  f"its whole output is in {log}.", file=sys.stderr)
            return 1
        results = json.loads((output_dir / "metrics.json").read_text())
        print(f"       {time.monotonic() - started:.0f} s: {summary(results)}")
    return 0


def epochs_done(output_dir: Path) -> float:
    """The epochs a running script has finished, from its newest checkpoint's trainer_state.json (Trainer
    saves one every epoch), so the bar follows the run without a word from the script; 0 before the first."""
    done = 0.0
    for state in output_dir.glob("checkpoint-*/trainer_state.json"):
        try:
            done = max(done, float(json.loads(state.read_text())["epoch"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or rotated away by save_total_limit
    return done


def run_with_epoch_bar(command: list[str], log, output_dir: Path, epochs: int, bar_file=None,
                       show: bool | None = None) -> int:
    """Run a fine-tuning script with its output in `log`, and a one-line bar of its epochs (on a terminal,
    unless `show` says)."""
    from tqdm.auto import tqdm

    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with tqdm(total=epochs, unit="epoch", leave=False, disable=None if show is None else not show, file=bar_file,
                  ncols=min(100, shutil.get_terminal_size().columns),
                  bar_format="       {n:.0f}/{total} epochs |{bar}| {elapsed}<{remaining}{postfix}") as bar:
            while process.poll() is None:
                time.sleep(0.5)
                done = epochs_done(output_dir)
                if done > bar.n:
                    bar.update(done - bar.n)
                    if done >= epochs:
                        bar.set_postfix_str("scoring the best epoch", refresh=True)
        return process.returncode
    finally:
        if process.poll() is None:  # interrupted: the script does not outlive the demo
            process.terminate()
            process.wait()
