"""The fine-tuning scripts, one file per task like the transformers examples: run them as programs
(`python scripts/finetune_classification.py --help`). What they share lives in `medsets.training`; the tests
and benchmarks import them from the repository root as `scripts.finetune_classification` and so on."""
