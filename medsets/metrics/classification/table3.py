"""Table 3 of the HEp-2 ICPR 2012 report (ConvNeXt-B and CoAtNet): F1 per class and accuracy on the
contest's test set, and our scores laid out beside it.

Beside the classification metric, and like it free of every other medsets module, so that the
fine-tuning script and `medsets evaluate` print the same table.
"""

# The report's numbers: F1 per class and accuracy on the ICPR 2012 contest's test set (734 cells).
PAPER_TABLE3 = {
    "ConvNeXt-B ImageNet-22K 224²": {"nucleolar": 0.78, "homogeneous": 0.70, "coarse_speckled": 0.75,
                                     "centromere": 0.88, "cytoplasmatic": 0.98, "fine_speckled": 0.47, "accuracy": 0.739},
    "Custom CoAtNet JFT-3B 224²": {"nucleolar": 0.80, "homogeneous": 0.69, "coarse_speckled": 0.86,
                                   "centromere": 0.85, "cytoplasmatic": 0.91, "fine_speckled": 0.54, "accuracy": 0.756},
}

def table3(scores: dict, label_names: list[str], model_name: str, paper: bool) -> str:
    """Rows as in the report's Table 3 (F1 per class, then accuracy), with its two models beside ours
    when the data is the report's (hep2 icpr2012), plus the contests' MCA and C-NMC's weighted F1."""
    papers = list(PAPER_TABLE3) if paper else []

    def row(name, ours, key=None, digits=2):
        cells = [f"{ours:.{digits}f}"] + [f"{PAPER_TABLE3[p][key]:.{digits}f}" if key in PAPER_TABLE3[p] else ""
                                          for p in papers]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines = ["| | " + " | ".join([model_name] + papers) + " |", "|---|" + "---|" * (1 + len(papers))]
    lines += [row(f"f1 score for {name}", scores["f1_by_class"][name], name) for name in label_names]
    lines += [row("Average classification accuracy", scores["accuracy"], "accuracy", 3),
              row("Mean class accuracy", scores["mean_class_accuracy"], digits=3),
              row("Weighted F1", scores["weighted_f1"], digits=3)]
    return "\n".join(lines) + "\n"
