"""Benchmarks for medsets: how fast do raw downloads become a dataset, and at what PNG level?

Each build benchmark writes one synthetic replica of a raw download and, on that same replica, times
the ways of getting its images into a dataset:

    raw-read                 walk the folder and read every image file's bytes: the floor for any builder
    imagefolder (b1)         datasets.load_dataset("imagefolder") on a class-folder tree of the images
    imagefolder+parquet (b2) b1, then to_parquet(); this writes image *paths*, not bytes (build-hep2 only)
    imagefolder+embed (b3)   b1, then embed the image bytes and write Parquet shards as push_to_hub does:
                             the output comparable to ours, which embeds the image bytes
    medsets num_proc=N (c)   medsets.export.build(...): checks, report, hub folder

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
Every stage imports datasets and medsets first; the `baseline` stage does only that, so subtract its
RSS to see what the work itself costs. The stage's input is read once (untimed) before every run, so
all stages read from the page cache.

--work DIR keeps the replica in DIR and reuses it on the next run with the same --scale (writing the
full C-NMC replica, ~9 GB, takes minutes); delete DIR to force a fresh one.

    .venv/bin/python -m benchmarks build-hep2                 # full size, a few minutes
    .venv/bin/python -m benchmarks build-hep2 --scale 0.1 --repeat 3 --json /tmp/quick.json
    .venv/bin/python -m benchmarks build-leukemia --scale 0.02                  # a quick look
    .venv/bin/python -m benchmarks build-leukemia --work /tmp/leukemia-bench    # full: ~15 min, ~7 reusing
    .venv/bin/python -m benchmarks png-levels --work /tmp/leukemia-bench
    .venv/bin/python -m benchmarks build-gzmh --work /tmp/gzmh-bench    # 78 images: ~2 min to write + stages
    .venv/bin/python -m benchmarks build-gzmh --scale 0.01 --small-fraction 0.5   # 14 images, a quick look
    .venv/bin/python -m benchmarks png-levels --source ~/data/C-NMC_Leukemia   # on the real BMPs
    .venv/bin/python -m benchmarks train-classification                 # CPU: ViT-tiny, HEp-2 replica
    python -m benchmarks train-classification --replica leukemia --model_size base --batch_size 256  # GPU
    .venv/bin/python -m benchmarks train-segmentation --image_size 128   # CPU: SegFormer-B0, BIS5k replica
    python -m benchmarks train-segmentation --replica gzmh-tiles --batch_size 32                 # GPU
"""
