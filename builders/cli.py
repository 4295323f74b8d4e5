"""`medsets`: list the datasets, build one from its raw download, run the demo.

Thin on purpose: it parses, calls `export.build`, prints. Exit status 2 means the input (raw data,
paths, output folder) is at fault; the message lists every problem found and what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

DEMO_MARKER = ".medsets-demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medsets",
        description="Turn raw biomedical microscopy downloads into Hugging Face datasets.",
        epilog="Example: medsets build hep2 --source ~/Downloads/ICIP2013_training_1.0.zip --out ./hep2",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("list", help="the datasets and configs medsets can build")

    build = commands.add_parser(
        "build", help="build a hub-ready folder from a raw download",
        description="Build one config of a dataset from its raw download (the extracted folder, a folder "
                    "above it, or the .zip) into a folder of Parquet shards with a dataset card. The "
                    "layout variant is detected. Building another config into the same folder adds it.")
    build.add_argument("name", help="dataset name (see `medsets list`)")
    build.add_argument("--source", required=True, type=Path, help="raw download: folder, wrapper folder or .zip")
    build.add_argument("--config", help="config to build (default: the dataset's default config)")
    build.add_argument("--out", type=Path, help="output folder (default: ./NAME)")
    build.add_argument("--overwrite", action="store_true", help="rebuild a config the output folder already holds")
    build.add_argument("--skip-bad", action="store_true",
                       help="leave out rows that fail a check instead of refusing to build; each is listed "
                            "in the build report and the card")
    build.add_argument("--num-proc", type=int,
                       help="worker processes for decoding, checking and re-encoding (default: the dataset's "
                            f"measured best: 1 for hep2, all {os.cpu_count()} cores for leukemia and gzmh)")
    tiling = build.add_argument_group("tiling (gzmh --config tiles)")
    tiling.add_argument("--tile-size", type=int, help="tile width and height in pixels (default 512)")
    tiling.add_argument("--tile-overlap", type=int,
                        help="pixels neighbouring tiles share at least (default 64); tiles are spread evenly "
                             "from border to border, so the overlap is usually larger (2084 px: 5 tiles, 119 px)")

    evaluate = commands.add_parser(
        "evaluate", help="score predicted masks with a dataset's own evaluation toolkit",
        description="Score a folder of predicted mask images (grey levels 0-255 or 0/1, matched to the "
                    "dataset's images by file stem) against a built dataset, the way the BIS5k toolkit's "
                    "Eval.py does: prints the table and writes it as CSV with the same column names.")
    evaluate.add_argument("name", choices=["bis5k"], help="dataset whose toolkit to use")
    evaluate.add_argument("--predictions", required=True, type=Path, help="folder of predicted masks (PNG, ...)")
    evaluate.add_argument("--dataset", type=Path, help="built dataset folder (default: ./NAME)")
    evaluate.add_argument("--split", default="test", help="split to score (default: %(default)s)")
    evaluate.add_argument("--csv", type=Path,
                          help="where to write the table (default: NAME-SPLIT-scores.csv beside the predictions)")

    push = commands.add_parser(
        "push", help="publish a built folder as a Hub dataset (private unless --public)",
        description="Create the dataset repository NAMESPACE/NAME on the Hugging Face Hub (private unless "
                    "--public: medical data terms often forbid open redistribution) and upload the built "
                    "folder. Resumable: files already there are skipped. The token comes from HF_TOKEN or "
                    "`hf auth login`.")
    push.add_argument("folder", type=Path, help="a folder written by `medsets build`")
    push.add_argument("--repo", required=True, help="NAMESPACE/NAME of the dataset repository")
    push.add_argument("--public", action="store_true", help="make the repository public (default: private)")

    demo = commands.add_parser(
        "demo", help="build and load synthetic replicas of the raw downloads",
        description="Write synthetic replicas of the raw layouts, build them with medsets, load the "
                    "result offline with datasets.load_dataset, print a summary, and fine-tune a small ViT on "
                    "the HEp-2 replica for a minute (with the train extra installed).")
    demo.add_argument("--out", type=Path, default=Path("medsets-demo"),
                      help="folder for the replicas and the built datasets (default: %(default)s)")
    demo.add_argument("--scale", type=float, default=0.05,
                      help="replica size as a fraction of the published counts (default: %(default)s)")

    args = parser.parse_args(argv)
    # Imported here so that `--help` answers at once.
    from datasets.utils.logging import set_verbosity_error

    from .checks import BuildError
    from .source import SourceError

    set_verbosity_error()  # datasets' own warnings (num_proc adjustments, ...) are noise here
    try:
        if args.command == "list":
            return list_datasets()
        if args.command == "build":
            return build_dataset(args)
        if args.command == "push":
            from .push import push_folder

            print(f"Pushed: {push_folder(args.folder, args.repo, public=args.public)}")
            return 0
        if args.command == "evaluate":
            from .evaluation import evaluate_folder

            return evaluate_folder(args.name, args.predictions, args.dataset or Path(args.name), args.split, args.csv)
        return run_demo(args.out, args.scale)
    except (BuildError, SourceError) as err:
        print(f"medsets: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medsets: interrupted; nothing was written", file=sys.stderr)
        return 130


def list_datasets() -> int:
    from . import BUILDERS

    for name, cls in BUILDERS.items():
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        for config in cls.BUILDER_CONFIGS:
            default = " (default)" if config.name == cls.DEFAULT_CONFIG_NAME else ""
            print(f"  --config {config.name}{default}: {config.description}")
    return 0


def build_dataset(args) -> int:
    from . import BUILDERS
    from .export import build

    if args.name not in BUILDERS:
        print(f"medsets: unknown dataset {args.name!r}; choose one of: {', '.join(BUILDERS)}", file=sys.stderr)
        return 2
    builder_cls = BUILDERS[args.name]
    configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if args.config and args.config not in configs:
        print(f"medsets: {args.name} has no config {args.config!r}; choose one of: {', '.join(configs)}",
              file=sys.stderr)
        return 2
    options = {name: value for name, value in (("tile_size", args.tile_size), ("tile_overlap", args.tile_overlap))
               if value is not None}
    if options and (args.config or builder_cls.DEFAULT_CONFIG_NAME) != "tiles":
        print(f"medsets: --tile-size/--tile-overlap apply to gzmh --config tiles, not to {args.name}", file=sys.stderr)
        return 2
    out, report = build(builder_cls, args.source, args.config, args.out or Path(args.name),
                        overwrite=args.overwrite, skip_bad=args.skip_bad, num_proc=args.num_proc, **options)
    print(report.render())
    print(f"\nWrote {out} (report in {out / 'reports' / (report.config + '.txt')}).")
    print(f"Load it with: datasets.load_dataset({str(out)!r}, {report.config!r})")
    return 0


def run_demo(out: Path, scale: float) -> int:
    from datasets import load_dataset

    from . import BIS5k, GZMH, HEp2, Leukemia, synthetic
    from .export import build

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
        ("hep2", "icpr2012", synthetic.write_hep2_icpr2012(raw / "hep2-icpr2012", scale=min(1.0, 4 * scale))),
        # 450x450 cells take ~30 ms each to draw: a fifth of the fraction keeps the demo quick.
        ("leukemia", "cnmc", synthetic.write_leukemia(raw / "C-NMC_Leukemia", "kaggle", scale=scale / 5,
                                                       as_zip=True)),
        ("bis5k", "default", synthetic.write_bis5k(raw / "BIS5k", scale=scale / 5, size=256)),
        # 1024 px fields instead of 2084 px: a quarter of the pixels, the same structure.
        ("gzmh", "full", synthetic.write_gzmh(raw / "GZMH Dataset V2", "v2", scale=scale / 5, size=1024,
                                              as_zip=True)),
    ]
    sources.append(("gzmh", "tiles", sources[-1][2]))
    builders = {"hep2": HEp2, "leukemia": Leukemia, "bis5k": BIS5k, "gzmh": GZMH}
    for name, config, source in sources:
        print(f"\n2. medsets build {name} --config {config} --source {source.relative_to(out.parent)}")
        folder, report = build(builders[name], source, config, out / name)
        print(f"   layout detected: {report.layout}")
        if report.count_mismatches:
            print(f"   {len(report.count_mismatches)} counts differ from the published ones, as expected for a "
                  f"scaled-down replica (all listed in {folder / 'reports' / (config + '.txt')})")
        for warning in report.warnings:
            print(f"   warning: {warning}")

    print("\n3. Loading the built folders offline with plain `datasets` (no medsets code involved):")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as cache:
        for name, config, _ in sources:
            ds = load_dataset(str(out / name), config, cache_dir=cache)
            first = next(iter(ds.values()))[0]
            sizes = ", ".join(f"{split} {len(d)}" for split, d in ds.items())
            label = next(iter(ds.values())).features["label"]
            print(f"   load_dataset('{name}', '{config}'): {sizes}; columns: {', '.join(first)}")
            if "objects" in first:
                split = next(iter(ds.values()))
                names = split.features["objects"]["category"].feature.names
                # In tiles an object near a border is listed in each tile holding its centroid, counted once.
                objects = sum(sum(o["counted"]) if "counted" in o else len(o["bbox"]) for o in split["objects"])
                print(f"     {len(split)} {split.split} rows hold {objects} objects ({', '.join(names)}); first row: "
                      f"{first['file_name']}, image {first['image'].mode} {first['image'].size}, "
                      f"{len(first['objects']['bbox'])} objects, mask {first['label'].mode}")
            elif isinstance(first["label"], int):
                mask = first.get("mask")
                print(f"     classes: {', '.join(label.names)}")
                print(f"     first row: {first['file_name']} -> {label.int2str(first['label'])}, image "
                      f"{first['image'].mode} {first['image'].size}"
                      + ("" if "mask" not in first else f", mask {'none' if mask is None else f'{mask.mode} {mask.size}'}"))
            else:  # segmentation: the label is the target mask
                values = sorted(set(first["label"].getdata()))
                print(f"     first row: {first['file_name']}, image {first['image'].mode} {first['image'].size}, "
                      f"label mask {first['label'].mode} with class ids {values}")
    print(f"\nDone. Built folders: {', '.join(str(out / n) for n in dict.fromkeys(n for n, _, _ in sources))}")
    demo_training(out)
    return 0


def load_script(name: str):
    """scripts/NAME.py as a module (None when the scripts folder is not there: an install without the clone)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    if not script.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    if str(script.parent) not in sys.path:
        sys.path.insert(0, str(script.parent))
    spec.loader.exec_module(module)
    return module


# Every demo run: from scratch on the CPU, quiet, one checkpoint kept.
DEMO_TRAINING = ["--save_total_limit", "1", "--use_cpu", "True", "--dataloader_num_workers", "0", "--disable_tqdm", "True",
                 "--log_level", "warning"]


def demo_training(out: Path):
    """Short from-scratch runs of the fine-tuning scripts on the replicas: ViT on HEp-2, SegFormer on BIS5k
    and GZMH tiles, RT-DETR on GZMH tiles (scored on the full images)."""
    try:
        import torch  # noqa: F401  (only whether the train extra is installed)
    except ImportError:
        print("\n4. Fine-tuning skipped: torch is not installed (pip install -e '.[train]').")
        return
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
    ]
    print("\n4. Fine-tuning from scratch on the CPU, short runs (scripts/ in the clone; each writes metrics.json):")
    for step, (name, what, args, summary) in enumerate(runs, start=1):
        module = load_script(name)
        if module is None:
            print(f"   skipped {name}: scripts/{name}.py is not there (install from a clone of the repository)")
            continue
        print(f"\n4.{step} {what}:\n   python scripts/{name}.py {' '.join(args)}")
        results = module.main(args + DEMO_TRAINING)
        print(f"   {summary(results)} in {args[args.index('--output_dir') + 1]}")


if __name__ == "__main__":
    sys.exit(main())
