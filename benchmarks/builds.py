"""build-hep2, build-leukemia, build-gzmh: raw read vs imagefolder vs medsets build on one replica each."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import (DiskWatch, common_columns, folder_size, image_files, link_or_copy, machine_info, make_replica,
                     medsets_stages, per_image, print_table, rate_column, ratio_column, run_plan,
                     sort_into_class_folders, write_json)
from .png_levels import PNG_LEVELS, png_levels, print_png_levels


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
        stages.append(("medsets num_proc=1, no near-duplicate search",
                       dict(base, stage="medsets", num_proc=1, near_duplicates=False)))
        plan = [{"label": label, "spec": spec, "rows": images, "warm": [source, work / "by-class"]}
                for label, spec in stages]
        results = run_plan(plan, work, args)
        scaling = near_duplicate_scaling(source)

    base_mib = results["baseline"]["peak_rss_mib"]
    (wall, rate), rss = common_columns(results, base_mib)
    refs = [("x raw", 7, 1, "raw-read"), ("x b1", 6, 2, "imagefolder (b1)"),
            ("x b2", 6, 2, "imagefolder+parquet (b2)"), ("x b3", 6, 2, "imagefolder+embed (b3)")]
    print_table(results, [wall, rate, *rss] + [(h, w, ratio_column(results[ref], d)) for h, w, d, ref in refs])
    ours = [r for label, r in results.items() if label.startswith("medsets")][0]
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+medsets took "
          f"{results['baseline']['imports_s']:.2f} s per process (not included). Page cache warm.")
    print("RSS: peak of the stage process (includes the imports); -base: minus the baseline stage; "
          "worker: largest peak among its worker processes.")
    print(f"Sizes: raw input {raw_bytes / 2**20:.1f} MiB; medsets output folder "
          f"{ours['output_bytes'] / 2**20:.1f} MiB ({ours['output_bytes'] / raw_bytes:.2f}x raw)")
    for label in ("imagefolder+parquet (b2)", "imagefolder+embed (b3)"):
        r = results[label]
        print(f"       {label} Parquet {r['parquet_bytes'] / 2**20:.1f} MiB ({r['parquet_bytes'] / raw_bytes:.2f}x"
              f" raw), image bytes {'embedded' if r['parquet_embeds_bytes'] else 'NOT embedded: paths only'}")
    with_search = results["medsets num_proc=1 (c)"]["wall_s"]
    without = results["medsets num_proc=1, no near-duplicate search"]["wall_s"]
    print(f"\nNear-duplicate search (issue 23, goal: at most 1.5x the build without it): {with_search:.2f} s with, "
          f"{without:.2f} s without: {with_search / without:.2f}x")
    print("Search alone on the replica's signatures (candidates + verification), three sizes; n log n would keep "
          "the last column flat:")
    for n, seconds in scaling:
        print(f"  {n:6d} images  {seconds:6.2f} s  {seconds / (n * np.log2(n)) * 1e6:6.2f} us per n log2 n")
    write_json(args.json, {"benchmark": "build-hep2", "scale": args.scale, "images": images,
                           "raw_input_bytes": raw_bytes, "repeat": args.repeat, "page_cache": "warm",
                           "machine": machine_info(), "stages": results,
                           "near_duplicate_search": {"ratio": with_search / without,
                                                     "scaling": [{"images": n, "seconds": s} for n, s in scaling]}})


def near_duplicate_scaling(source: Path) -> list[tuple[int, float]]:
    """The search (medsets.near_duplicates.near_pairs) timed alone on a quarter, a half and all of the
    replica's images, their signatures made first (untimed)."""
    from PIL import Image

    from medsets.near_duplicates import thumbnails_of, near_pairs, signature

    signatures = [signature(Image.open(path)) for path in image_files(source, ".png")]
    times = []
    for n in (len(signatures) // 4, len(signatures) // 2, len(signatures)):
        crops = thumbnails_of(signatures[:n])
        start = time.perf_counter()
        near_pairs(crops)
        times.append((n, time.perf_counter() - start))
    return times


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
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+medsets took "
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


def gzmh_goals(results: dict, base_mib: float, input_bytes: int) -> dict:
    """The ratios the tiles work is held to, from this run's stages: tiles per source image against full, the
    speed-up of tiles on all cores, the tiles config's size against the input, one pass against two builds."""
    cores = os.cpu_count() or 1
    one = {c: results[f"medsets {c} num_proc=1 (c)"] for c in ("full", "tiles", "both")}
    many = {c: results.get(f"medsets {c} num_proc={cores} (c)") for c in ("full", "tiles", "both")}
    tiles_vs_full = one["tiles"]["wall_s"] / one["full"]["wall_s"]
    out = {"tiles_over_full_per_image": tiles_vs_full,
           "tiles_output_over_input": one["tiles"]["output_bytes"] / input_bytes,
           "both_over_separate_wall": one["both"]["wall_s"] / (one["full"]["wall_s"] + one["tiles"]["wall_s"]),
           "both_peak_above_baseline_mib": one["both"]["peak_rss_mib"] - base_mib,
           "separate_peak_above_baseline_mib": max(one[c]["peak_rss_mib"] for c in ("full", "tiles")) - base_mib}
    lines = [f"tiles {one['tiles']['wall_s'] / one['tiles']['images'] * 1000:.0f} ms per source image, full "
             f"{one['full']['wall_s'] / one['full']['images'] * 1000:.0f}: {tiles_vs_full:.2f}x (goal: at most 2x)",
             f"tiles folder {one['tiles']['output_bytes'] / 2**20:.0f} MiB for {input_bytes / 2**20:.0f} MiB of input: "
             f"{out['tiles_output_over_input']:.2f}x (goal: at most 2x for JPEG sources)",
             f"one pass (both configs) {one['both']['wall_s']:.1f} s against full + tiles built apart "
             f"{one['full']['wall_s'] + one['tiles']['wall_s']:.1f} s: {out['both_over_separate_wall']:.2f}x the time; "
             f"peak {out['both_peak_above_baseline_mib']:.0f} MiB above the baseline against "
             f"{out['separate_peak_above_baseline_mib']:.0f} MiB for the larger of the two"]
    for config in ("tiles", "both"):
        if cores > 1 and many[config]:
            speedup = one[config]["wall_s"] / many[config]["wall_s"]
            out[f"{config}_speedup_{cores}_cores"] = speedup
            lines.append(f"{config} on {cores} cores: {speedup:.2f}x faster than on one"
                         + (" (goal: at least 1.7x on 2 cores)" if config == "tiles" else ""))
    out["lines"] = lines
    return out


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
    from medsets.builders.gzmh import GZMHConfig
    from medsets.objects import tiles
    from medsets.synthetic import GZMH_SIZE

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
            # `medsets build gzmh` writes both configs from one pass ("both"); against the two separate builds.
            for config, rows_per_image in (("full", 1), ("tiles", per_image_tiles), ("both", 1 + per_image_tiles)):
                plan += [{"label": label.replace("medsets ", f"medsets {config} "), "spec": spec, **everything,
                          "rows": images * rows_per_image, "config": config}
                         for label, spec in medsets_stages(dict(base, config=None if config == "both" else config),
                                                           args)]
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
        if r.get("config") in ("tiles", "both") and seen != r["images"]:
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
    print(f"\nWall: work only, best of {args.repeat}; imports of datasets+medsets took "
          f"{results['baseline']['imports_s']:.2f} s per process (not included). Page cache warm.")
    print(f"rows: rows written (raw-read: files read, image + mask; tiles: {per_image_tiles} tiles of {tile_size}x"
          f"{tile_size}, overlap {tile_overlap}, per image); images: source images. images/s, /core and the x "
          "columns are per source image: x raw = seconds per image / raw-read's (which reads image and mask).")
    print(f"imagefolder reads train/images/ only ({splits['train']} JPEGs, no masks, no objects) and keeps the "
          "JPEG bytes: the plain-loader reference. medsets reads all splits, images and masks, and writes the "
          "JPEG bytes as they are (full) or JPEG tiles with the source's tables (tiles), PNG masks and the objects; "
          "'both' is `medsets build gzmh` (tiles and full from one pass).")
    print("/core: images/s divided by the processes that did the work (num_proc when datasets started a pool, "
          "else 1).")
    print("RSS: peak of the stage process (includes the imports); -base: minus the baseline stage; "
          "worker: largest peak among its worker processes (forked: includes the imports too).")
    print(f"Sizes: input {(jpg_bytes + png_bytes) / 2**20:.0f} MiB (JPEG {jpg_bytes / 2**20:.0f}, masks "
          f"{png_bytes / 2**20:.0f}; train/images {train_bytes / 2**20:.0f}); out = medsets hub folder or "
          "imagefolder Parquet (JPEG bytes embedded); x in = out / the stage's input.")

    goals = gzmh_goals(results, base_mib, jpg_bytes + png_bytes)
    print("\nGoals (issue 18), measured in this run:")
    print("\n".join(f"  {line}" for line in goals["lines"]))

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
        "decoded_image_bytes": DECODED_IMAGE_BYTES, "memory_scaling": scaling, "goals": goals, "scaling_statement": statement,
        "extrapolated_full_s": extrapolated, "peak_disk_extra_bytes": disk.peak_extra, "total_s": round(elapsed, 1)})
