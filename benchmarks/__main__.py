"""The command line of the benchmarks: `python -m benchmarks COMMAND --help`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .builds import build_gzmh, build_hep2, build_leukemia
from .common import run_stage
from .metrics import intervals_benchmark, segmentation_metric
from .png_levels import PNG_LEVELS, png_levels_command
from .training import train_classification, train_segmentation


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
        "segmentation-metric", help="the BIS5k toolkit (medsets.metrics.segmentation) on N mask pairs",
        description="Time the BIS5k evaluation toolkit on N pairs of masks: direct calls, through "
        "evaluate.load(...).compute with 1 and all processes, and the slow reference of its definitions on a sample.")
    seg.add_argument("--pairs", type=int, default=929, help="mask pairs (default: %(default)s, the BIS5k test set)")
    seg.add_argument("--size", type=int, default=512, help="mask side in pixels (default: %(default)s)")
    seg.add_argument("--reference-sample", type=int, default=5, metavar="N",
                     help="pairs scored by the slow reference; its time is extrapolated (default %(default)s)")
    seg.add_argument("--json", default="benchmark-results/segmentation-metric.json", help="(default: %(default)s)")
    ivl = commands.add_parser(
        "intervals", help="medsets.intervals: speed against the metrics, coverage on simulated clustered data",
        description="Time 95%% bootstrap intervals (classification, BIS5k toolkit, mitosis F1) against the metrics "
        "they are for, and measure their coverage on simulated test sets where the truth is known.")
    ivl.add_argument("--predictions", type=int, default=3000, help="classification predictions (default: %(default)s)")
    ivl.add_argument("--resamples", type=int, default=2000, help="(default: %(default)s)")
    ivl.add_argument("--pairs", type=int, default=200, help="mask pairs (default: %(default)s)")
    ivl.add_argument("--size", type=int, default=352, help="mask side (default: %(default)s)")
    ivl.add_argument("--fields", type=int, default=300, help="GZMH-sized fields (default: %(default)s)")
    ivl.add_argument("--trials", type=int, default=400, help="simulated test sets for coverage (default: %(default)s)")
    ivl.add_argument("--json", default="benchmark-results/intervals.json", help="(default: %(default)s)")
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
     "png-levels": png_levels_command, "segmentation-metric": segmentation_metric, "intervals": intervals_benchmark,
     "train-classification": train_classification, "train-segmentation": train_segmentation}[args.command](args)


if __name__ == "__main__":
    main()
