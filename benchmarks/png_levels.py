"""png-levels: PNG zlib level 0..9 on C-NMC BMPs, and the level recommended for Leukemia.PNG_COMPRESS_LEVEL."""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from pathlib import Path

from .common import image_files, machine_info, make_replica, write_json

PNG_LEVELS = (0, 1, 2, 3, 6, 9)
# png-levels recommends stepping up from level 1 only for this much smaller output at this much time.
STEP_UP_MIN_SAVING, STEP_UP_MAX_SLOWDOWN = 0.10, 3.0


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
