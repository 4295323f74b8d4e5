"""`medsets`: list the datasets, build one from its raw download, score predictions, push, run the demo.

Thin on purpose: it parses, calls `export.build` (or `evaluation`, `push`, `demo`), prints. Exit status 2
means the input (raw data, paths, output folder) is at fault; the message lists every problem found and what to do.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# The core and the builders name Python options in their messages (skip_bad=True, config_name="icpr2012"),
# as a Python user passes them; on the command line they are flags.
FLAGS = {"config_name": "--config", "data_dir": "--source", "out": "--out", "num_proc": "--num-proc",
         "tile_size": "--tile-size", "tile_overlap": "--tile-overlap", "tile_format": "--tile-format"}
SWITCHES = {"skip_bad": "--skip-bad", "drop_duplicates": "--drop-duplicates", "overwrite": "--overwrite"}
SPELLED = {'drop_duplicates="near"': "--drop-duplicates near", "near_duplicates=False": "--near-duplicates off"}



def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value

def bootstrap_of(args):
    """The interval settings of `medsets evaluate`, checked."""
    from .checks import BuildError
    from .intervals import Bootstrap

    if not 0 < args.confidence < 1 or args.resamples < 100:
        raise BuildError(f"--confidence {args.confidence} --resamples {args.resamples}: the level must lie between "
                         "0 and 1 (0.95 for 95%) and the resamples be at least 100 (2,000 by default).")
    return Bootstrap(args.resamples, args.confidence, args.seed)


def as_flags(message: str) -> str:
    """A message of the core, with each Python option named as the command line's flag."""
    for python, flag in SPELLED.items():
        message = message.replace(python, flag)
    message = re.sub(r"\b(" + "|".join(SWITCHES) + r")=True\b", lambda m: SWITCHES[m[1]], message)
    return re.sub(r"\b(" + "|".join(FLAGS) + r')=(?:"([^"\s]*)"|(\S*\w))?',
                  lambda m: FLAGS[m[1]] + (f" {m[2] or m[3]}" if (m[2] or m[3]) else ""), message)


def package_version() -> str:
    try:
        return version("medsets")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_defaults() -> dict:
    """What a build does when not told, read from the dataset modules' own constants."""
    import dataclasses

    from .builder import MedsetsConfig
    from .builders import BUILDERS

    shared = {f.name for f in dataclasses.fields(MedsetsConfig)}
    return {name: {"config": cls.DEFAULT_CONFIG_NAME, "companions": cls.COMPANION_CONFIGS,
                   "num_proc": cls.DEFAULT_NUM_PROC,
                   "options": {f.name: f.default for f in dataclasses.fields(cls.BUILDER_CONFIG_CLASS)
                               if f.name not in shared and f.name in FLAGS and f.default is not dataclasses.MISSING}}
            for name, cls in BUILDERS.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `build --help` and `list` show the defaults the dataset modules declare; importing them takes a second,
    # so only those commands do.
    defaults = build_defaults() if argv[:1] == ["build"] else {}
    tiles = defaults.get("gzmh", {}).get("options", {})
    num_proc = ", ".join(f"{name} {d['num_proc']}" for name, d in defaults.items()) or "the dataset's measured best"
    parser = argparse.ArgumentParser(
        prog="medsets",
        description="Turn raw biomedical microscopy downloads into Hugging Face datasets.",
        epilog="Example: medsets build hep2 --source ~/Downloads/ICIP2013_training_1.0.zip --out ./hep2",
    )
    parser.add_argument("--version", action="version", version=f"medsets {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("list", help="the datasets and configs medsets can build")

    build = commands.add_parser(
        "build", help="build a hub-ready folder from a raw download",
        description="Build a dataset from its raw download (the extracted folder, a folder above it, or the "
                    ".zip) into a folder of Parquet shards with a dataset card. The layout variant is detected. "
                    "Without --config the default config is built (gzmh: tiles and full, from one pass over the "
                    "download); building another config into the same folder adds it.")
    build.add_argument("name", help="dataset name (see `medsets list`)")
    build.add_argument("--source", required=True, type=Path, help="raw download: folder, wrapper folder or .zip")
    build.add_argument("--config", help="the one config to build (default: the dataset's default config; for gzmh "
                                        "both configs, tiles the default)")
    build.add_argument("--out", type=Path, help="output folder (default: ./NAME)")
    build.add_argument("--overwrite", action="store_true", help="rebuild a config the output folder already holds")
    build.add_argument("--skip-bad", action="store_true",
                       help="leave out rows that fail a check instead of refusing to build; each is listed "
                            "in the build report and the card")
    build.add_argument("--drop-duplicates", nargs="?", const="exact", choices=["exact", "near"],
                       help="keep one image of each group of copies (the one in the earliest split: train, "
                            "validation, test; then the lowest image_id) and list every dropped row in the report "
                            "and the card: of pixel-identical images (exact, what the flag alone means), or also of "
                            "the same object imaged again (near). Without it copies are only reported and the "
                            "published splits are kept as they are, so that results stay comparable with papers")
    build.add_argument("--near-duplicates", choices=["on", "off"], default="on",
                       help="look for the same object imaged twice (shifted, re-exposed, noisy, flipped or turned) "
                            "within and across splits (default: %(default)s)")
    build.add_argument("--num-proc", type=positive_int,
                       help="worker processes for decoding, checking and re-encoding (default: each dataset's "
                            f"measured best on this machine: {num_proc})")
    tiling = build.add_argument_group("tiling (gzmh tiles)")
    tiling.add_argument("--tile-size", type=int, help=f"tile width and height in pixels (default {tiles.get('tile_size', 512)})")
    tiling.add_argument("--tile-overlap", type=int,
                        help=f"pixels neighbouring tiles share at least (default {tiles.get('tile_overlap', 64)}); "
                             "tiles are spread evenly from border to border, so the overlap is usually larger "
                             "(2084 px at 512/64: 5 tiles, 112-128 px)")
    tiling.add_argument("--tile-format", choices=["jpeg", "png"],
                        help=f"default {tiles.get('tile_format', 'jpeg')}. jpeg: tiles of a JPEG source are JPEG with its own quantisation tables, cut "
                             "on its block grid where they can be, about the source's size (the report measures "
                             "how their pixels differ); png: every tile lossless, about 8x the size")

    evaluate = commands.add_parser(
        "evaluate", help="score a results file against a built split, the way the dataset's papers do",
        description="Score predictions against a built split: a CSV of predicted labels (file_name or image_id, "
                    "label) for hep2 and leukemia (the HEp-2 report's Table 3, mean class accuracy, C-NMC's "
                    "weighted F1); a folder of predicted masks matched by file stem for bis5k and gzmh (the BIS5k "
                    "toolkit, as its Eval.py or as pysodmetrics); a CSV of detections (image, x, y, score) for "
                    "gzmh mitoses (F1 within 20 px, one-to-one and as the GZMH authors score). Prints the table and "
                    "writes it as CSV. Every image needs its prediction and every prediction its image.")
    evaluate.add_argument("name", choices=["hep2", "leukemia", "bis5k", "gzmh"], help="the dataset")
    evaluate.add_argument("--predictions", required=True, type=Path,
                          help="CSV of predicted labels or of detections, or folder of predicted masks (PNG, ...)")
    evaluate.add_argument("--dataset", type=Path, help="built dataset folder (default: ./NAME)")
    evaluate.add_argument("--config", help="config of the built folder (default: its default; gzmh: full, the whole fields)")
    evaluate.add_argument("--split", default="test", help="split to score (default: %(default)s)")
    evaluate.add_argument("--convention", choices=["uacanet", "pysodmetrics"], default="uacanet",
                          help="masks: whose formulas, uacanet (the BIS5k toolkit, UACANet's Eval.py) or "
                               "pysodmetrics (the package most salient and camouflaged object papers report with); "
                               "default: %(default)s")
    evaluate.add_argument("--threshold", type=float,
                          help="detections: score threshold (default: the one with the best one-to-one F1 on the "
                               "split itself, which flatters; pass the one chosen on validation)")
    evaluate.add_argument("--allow-missing", action="store_true",
                          help="score the images that have a prediction when some have none or some predictions "
                               "name no image (each listed; the table and the CSV then say how many of how many); "
                               "by default that is an error")
    evaluate.add_argument("--csv", type=Path,
                          help="where to write the table (default: PREDICTIONS-NAME-SPLIT-scores.csv beside the "
                               "predictions, named after their file or folder; never replaced without --overwrite)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace the default scores file of an earlier run")
    evaluate.add_argument("--compare", type=Path, metavar="PREDICTIONS",
                          help="a second prediction set of the same kind: both scores, their difference with its "
                               "interval over the same units and a two-sided p-value (accuracy: McNemar's exact test)")
    evaluate.add_argument("--json", type=Path, metavar="PATH",
                          help="also write each headline number with its interval: {metric: {value, ci_low, "
                               "ci_high, unit, n_units}} (and \"comparison\" with --compare)")
    evaluate.add_argument("--confidence", type=float, default=0.95, help="interval level (default: %(default)s)")
    evaluate.add_argument("--resamples", type=int, default=2000,
                          help="bootstrap resamples of the independent unit (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed: a rerun prints the same interval "
                                                               "(default: %(default)s)")

    push = commands.add_parser(
        "push", help="publish a built folder as a Hub dataset (private unless --public)",
        description="Check the card (offline, then by the Hub), create the dataset repository NAMESPACE/NAME "
                    "on the Hugging Face Hub (private unless --public: medical data terms often forbid open "
                    "redistribution) and upload the built folder, the card last. An existing repository of "
                    "another visibility is refused, nothing sent. Resumable: files already there unchanged are "
                    "skipped; hidden files never go. The token comes from HF_TOKEN or `hf auth login`.")
    push.add_argument("folder", type=Path, help="a folder written by `medsets build`")
    push.add_argument("--repo", required=True, help="NAMESPACE/NAME of the dataset repository")
    push.add_argument("--public", action="store_true", help="make the repository public (default: private)")

    replica = commands.add_parser(
        "replica", help="write a synthetic replica of a raw download (its layout and quirks), to try a build on",
        description="Write a synthetic replica of one raw download into OUT: the published layout with the real "
                    "files' quirks (names, CSV dialects, wrapper folders), images drawn so the classes differ. "
                    "What the demo and the tests build from. Replicas: " + "; ".join(
                        f"{name}: {about}" + (f" (--layout {', '.join(layouts)})" if layouts else "")
                        for name, (_, layouts, about) in replica_table().items()))
    replica.add_argument("name", choices=list(replica_table()), help="which download")
    replica.add_argument("--out", type=Path, required=True, help="folder to write into (created; must not exist)")
    replica.add_argument("--layout", help="which layout of the download (default: the first listed)")
    replica.add_argument("--scale", type=float, default=0.05,
                         help="size as a fraction of the published counts (default: %(default)s; 1 = full size)")
    replica.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    replica.add_argument("--zip", action="store_true", help="write OUT.zip instead of a folder")

    demo = commands.add_parser(
        "demo", help="build and load synthetic replicas of the raw downloads, then short training runs",
        description="Write synthetic replicas of every raw layout (HEp-2 ICPR 2014 and the MIVIA download of "
                    "ICPR 2012, C-NMC, BIS5k, GZMH V2) into OUT/raw, build each with medsets into OUT/NAME "
                    "(hep2: icpr2014, icpr2012 and icpr2012_slides; gzmh: tiles and full), load every config "
                    "offline with datasets.load_dataset and print a summary; then, from a clone with the train "
                    "extra, short from-scratch runs of the three fine-tuning scripts (a ViT on HEp-2, SegFormer "
                    "on BIS5k, RT-DETR on GZMH tiles and on the HEp-2 slides) into OUT/runs. "
                    "About 3 minutes on two cores.")
    demo.add_argument("--out", type=Path, default=Path("medsets-demo"),
                      help="folder for the replicas and the built datasets (default: %(default)s)")
    demo.add_argument("--scale", type=float, default=0.05,
                      help="replica size as a fraction of the published counts (default: %(default)s)")

    args = parser.parse_args(argv)
    # Imported here so that `--help` answers at once.
    from datasets.utils.logging import set_verbosity_error

    from .errors import MedsetsError

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
            from .evaluation import evaluate_predictions

            return evaluate_predictions(args.name, args.predictions, args.dataset or Path(args.name), args.split,
                                        args.csv, allow_missing=args.allow_missing, convention=args.convention,
                                        config=args.config, threshold=args.threshold, compare=args.compare,
                                        json_path=args.json, bootstrap=bootstrap_of(args), overwrite=args.overwrite)
        if args.command == "replica":
            return write_replica(args)
        from .demo import run_demo

        return run_demo(args.out, args.scale)
    except MedsetsError as err:
        print(f"medsets: {as_flags(str(err))}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit, Exception) as err:
        # Stopped by SIGINT or SIGTERM: the pool of worker processes may answer with an error of its own
        # while it unwinds, so the signal recorded by the build says why. The build has cleaned up.
        from .processes import interrupted_by

        signum = interrupted_by() or (signal.SIGINT if isinstance(err, KeyboardInterrupt) else None)
        if signum is None:
            raise
        print(f"medsets: stopped by {signal.Signals(signum).name}; nothing was written and the output folder is "
              "as it was", file=sys.stderr)
        return 128 + signum


def replica_table() -> dict:
    from .synthetic import REPLICAS

    return REPLICAS


def write_replica(args) -> int:
    from .errors import MedsetsError

    writer, layouts, _ = replica_table()[args.name]
    if args.layout is not None and args.layout not in layouts:
        raise MedsetsError(f"replica {args.name}: no layout {args.layout!r}; "
                           + (f"choose one of {', '.join(layouts)}." if layouts else "it has one layout, leave --layout out."))
    if not 0 < args.scale <= 1:
        raise MedsetsError(f"--scale {args.scale}: a fraction of the published counts, above 0 and at most 1.")
    target = args.out.with_name(args.out.name + ".zip") if args.zip else args.out
    if target.exists():
        raise MedsetsError(f"{target} exists; nothing was written.")
    options = {"scale": args.scale, "seed": args.seed, "as_zip": args.zip}
    written = writer(args.out, *([args.layout or layouts[0]] if layouts else []), **options)
    files = "" if written.is_file() else f" ({sum(p.is_file() for p in written.rglob('*'))} files)"
    print(f"Wrote a replica of {args.name} ({args.layout or (layouts[0] if layouts else 'its layout')}, scale "
          f"{args.scale}): {written}{files}. Build it: medsets build {args.name.split('-')[0]} "
          f"{'--config icpr2012 ' if args.name == 'hep2-icpr2012' else ''}--source {written} --out OUT"
          + (" (and --config icpr2012_slides for the slides)" if args.name == "hep2-icpr2012" and args.layout != "contest"
             else ""))
    return 0


def list_datasets() -> int:
    from .builders import BUILDERS

    defaults = build_defaults()
    for name, cls in BUILDERS.items():
        d = defaults[name]
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        for config in cls.BUILDER_CONFIGS:
            role = (" (default)" if config.name == d["config"]
                    else " (built with the default)" if config.name in d["companions"] else "")
            print(f"  --config {config.name}{role}: {config.description}")
        options = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in d["options"].items())
        print(f"  build defaults: --num-proc {d['num_proc']}" + (f" {options}" if options else ""))
    return 0


def build_dataset(args) -> int:
    from . import BUILDERS
    from .export import build_configs

    if args.name not in BUILDERS:
        print(f"medsets: unknown dataset {args.name!r}; choose one of: {', '.join(BUILDERS)}", file=sys.stderr)
        return 2
    builder_cls = BUILDERS[args.name]
    configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if args.config and args.config not in configs:
        print(f"medsets: {args.name} has no config {args.config!r}; choose one of: {', '.join(configs)}",
              file=sys.stderr)
        return 2
    options = {name: value for name, value in (("tile_size", args.tile_size), ("tile_overlap", args.tile_overlap),
                                               ("tile_format", args.tile_format)) if value is not None}
    building = [args.config] if args.config else [builder_cls.DEFAULT_CONFIG_NAME, *builder_cls.COMPANION_CONFIGS]
    if options and "tiles" not in building:
        print(f"medsets: --tile-size/--tile-overlap/--tile-format apply to gzmh tiles, not to {args.name} "
              f"{', '.join(building)}", file=sys.stderr)
        return 2
    out, reports = build_configs(builder_cls, args.source, args.config, args.out or Path(args.name),
                                 overwrite=args.overwrite, skip_bad=args.skip_bad, num_proc=args.num_proc,
                                 drop_duplicates=args.drop_duplicates or False,
                                 near_duplicates=args.near_duplicates == "on", **options)
    for report in reports.values():
        print(as_flags(report.render()) + "\n")
    print(f"Wrote {out} (reports in {out / 'reports'}).")
    for config in reports:
        default = "" if config != builder_cls.DEFAULT_CONFIG_NAME else f"  # or datasets.load_dataset({str(out)!r})"
        print(f"Load {config} with: datasets.load_dataset({str(out)!r}, {config!r}){default}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
