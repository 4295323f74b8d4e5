"""What the fine-tuning scripts (scripts/finetune_*.py) share; they import it, never each other.

- `arguments`: Trainer's defaults for these scripts, `--help` with the docstring and every default,
  the learning rate when none is given, logging as the transformers examples set it;
- `splits`: validation carved from train, stratified and by whole groups;
- `checkpoints`: the best epoch reloaded and saved with its image processor;
- `image_pipeline`: decode once into a memory-mapped cache, per-sample crops in the workers, batch
  augmentation on the device (`BatchAugment` with its `AugmentOptions`), mixup and cutmix;
- `full_images`: tile predictions back on full images, scored by centre F1 (GZMH mitoses, HEp-2 slide
  cells) and COCO mAP, and their table; `detection_picture`: one full image with its detections;
- `segmentation_scores`: IoU and Dice per class, the BIS5k toolkit's columns, the table.

Needs the `train` extra (torch, torchvision, transformers, accelerate).
"""
