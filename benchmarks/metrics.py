"""segmentation-metric: the BIS5k toolkit (medsets.metrics.segmentation) on N mask pairs, against the slow
reference of its definitions."""

from __future__ import annotations

import os
import time

from .common import machine_info, write_json


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


def segmentation_metric(args):
    import evaluate

    from medsets import metric_path
    from medsets.metrics import segmentation as toolkit
    from medsets.metrics.segmentation import reference

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
    metric = evaluate.load(metric_path("segmentation"))
    for num_proc in sorted({1, os.cpu_count() or 1}):
        via_evaluate = timed(f"evaluate, pack() bytes, num_proc={num_proc}", lambda: metric.compute(
            predictions=[toolkit.pack(p) for p, _ in pairs], references=[toolkit.pack(g) for _, g in pairs],
            num_proc=num_proc))
        assert all(abs(via_evaluate[k] - direct[k]) < 1e-9 for k in direct)
    sample = pairs[:args.reference_sample]
    slow = timed(f"slow reference, {len(sample)} pairs", lambda: reference.ref_toolkit(sample))
    fast_sample = toolkit.summarize(toolkit.toolkit_scores(p, g) for p, g in sample)
    assert all(abs(slow[k] - fast_sample[k]) < 1e-6 for k in slow)
    per_pair_slow = results[f"slow reference, {len(sample)} pairs"]["wall_s"] / len(sample)
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


def intervals_benchmark(args):
    """Issue 24's goals for medsets.intervals, measured in one run: 2,000 resamples of 3,000 predictions in
    under a second (classification); under 10% of the metric's own time for segmentation (the BIS5k
    toolkit on mask pairs) and mitosis detection; and the coverage of the nominal 95% on simulated
    clustered data, where the truth is known."""
    import numpy as np

    from medsets.intervals import (Bootstrap, classification_statistics, confusion_rows, f1_statistics, per_unit,
                                   toolkit_rows, toolkit_statistics)
    from medsets.metrics.mitosis import image_counts
    from medsets.metrics.segmentation.segmentation import toolkit_scores

    rng = np.random.default_rng(0)
    results = {}
    truth = rng.integers(0, 6, args.predictions)
    predicted = np.where(rng.random(args.predictions) < 0.8, truth, rng.integers(0, 6, args.predictions))
    units = rng.integers(0, 28, args.predictions)  # 28 specimens, as ICPR 2012's slide images
    start = time.perf_counter()
    Bootstrap(args.resamples).intervals(per_unit(confusion_rows(predicted, truth, 6), units)[0],
                                        classification_statistics(6), "specimen")
    results["classification_s"] = time.perf_counter() - start
    start = time.perf_counter()
    Bootstrap(args.resamples).intervals(confusion_rows(predicted, truth, 6), classification_statistics(6), "image")
    results["classification_unclustered_s"] = time.perf_counter() - start

    pairs = metric_pairs(args.pairs, args.size)
    start = time.perf_counter()
    per_image = [toolkit_scores(prediction, truth_mask) for prediction, truth_mask in pairs]
    metric_s = time.perf_counter() - start
    start = time.perf_counter()
    Bootstrap(args.resamples).intervals(toolkit_rows(per_image), toolkit_statistics(), "image")
    results["segmentation"] = {"metric_s": metric_s, "intervals_s": time.perf_counter() - start}

    fields = [(rng.random((40, 3)) * [2084, 2084, 1], rng.random((3, 2)) * 2084) for _ in range(args.fields)]
    start = time.perf_counter()
    for threshold in np.arange(0.05, 0.951, 0.05):  # the scoring as `medsets evaluate` runs it: the sweep, both rules
        for rule in ("one_to_one", "gzmh_authors"):
            counts = [image_counts(found.tolist(), truth_points.tolist(), 20.0, threshold, rule)
                      for found, truth_points in fields]
    metric_s = time.perf_counter() - start
    counts = [image_counts(found.tolist(), truth_points.tolist(), 20.0, 0.5) for found, truth_points in fields]
    start = time.perf_counter()
    Bootstrap(args.resamples).intervals(np.asarray(counts, float), f1_statistics(), "field")
    results["mitosis"] = {"metric_s": metric_s, "intervals_s": time.perf_counter() - start}

    covered = 0  # 40 specimens of 20 cells, each specimen's accuracy drawn around 0.8: the pooled truth is 0.8
    for trial in range(args.trials):
        accuracy = rng.beta(8, 2, 40)
        right = rng.random((40, 20)) < accuracy[:, None]
        items = confusion_rows(np.where(right.ravel(), 0, 1), np.zeros(800, np.int64), 2)
        found = Bootstrap(1000, seed=trial).intervals(per_unit(items, np.repeat(np.arange(40), 20))[0],
                                                      {"accuracy": classification_statistics(2)["accuracy"]},
                                                      "specimen")["accuracy"]
        covered += found.ci_low <= 0.8 <= found.ci_high
    results["coverage"] = {"trials": args.trials, "covered": covered / args.trials, "nominal": 0.95}

    seg, mit = results["segmentation"], results["mitosis"]
    print(f"Intervals ({args.resamples} resamples), {machine_info()['cpu_count']} CPUs:")
    print(f"  classification, {args.predictions} predictions in 28 specimens: {results['classification_s']:.3f} s "
          f"(goal < 1 s); each prediction its own unit: {results['classification_unclustered_s']:.3f} s")
    print(f"  segmentation, {args.pairs} mask pairs of {args.size}x{args.size}: {seg['intervals_s']:.3f} s against the "
          f"toolkit's {seg['metric_s']:.2f} s = {seg['intervals_s'] / seg['metric_s']:.1%} (goal < 10%)")
    print(f"  mitosis F1, {args.fields} fields: {mit['intervals_s']:.3f} s against the scoring's {mit['metric_s']:.2f} s (19 thresholds, both rules)"
          f" = {mit['intervals_s'] / mit['metric_s']:.1%} (goal < 10%)")
    print(f"  coverage of the nominal 95% over {args.trials} simulated test sets of 40 specimens x 20 cells: "
          f"{results['coverage']['covered']:.1%} (goal 92-98%)")
    write_json(args.json, {"benchmark": "intervals", "machine": machine_info(), **results})
