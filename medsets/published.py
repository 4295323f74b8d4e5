"""Published results beside ours: each number with the protocol behind it and whether it can be compared
with a score on what medsets builds.

A dataset module lists its results as data (`PUBLISHED_RESULTS`, a tuple of `PublishedResult`); the card
renders them as a table (`published_table`) and `medsets evaluate` prints the ones comparable with the
config and split it scored (`comparable_lines`). A number is comparable only when its test set and its
measure are the ones medsets builds and computes; the others are listed so that nobody compares with them
by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedResult:
    config: str  # the medsets config whose data it is about
    metric: str  # as the paper states it
    value: float  # in [0, 1]
    method: str
    protocol: str  # the test set and split behind the number
    citation: str
    comparable_split: str | None = None  # the split of the built config a score on is comparable, else None
    medsets_metric: str | None = None  # the column of `medsets evaluate` that computes the same measure


def published_table(results: tuple[PublishedResult, ...], config: str | None = None) -> str:
    """A Markdown table of the published results (of one config, or all), with their protocols."""
    rows = [r for r in results if config is None or r.config == config]
    if not rows:
        return ""
    lines = ["| config | method | measure | value | protocol | comparable with medsets | source |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        comparable = (f"yes: `{r.medsets_metric}` on `{r.comparable_split}`" if r.comparable_split else "no")
        lines.append(f"| {r.config} | {r.method} | {r.metric} | {r.value:.4g} | {r.protocol} | {comparable} | "
                     f"{r.citation} |")
    return "\n".join(lines)


def comparable_lines(results: tuple[PublishedResult, ...], config: str | None, split: str,
                     scored: dict) -> list[str]:
    """What `medsets evaluate` prints under its table: the published numbers on this config's split, each
    beside the same measure of ours; then how many others there are that do not compare."""
    mine = [r for r in results if r.config == config]
    lines = []
    for r in mine:
        if r.comparable_split == split and r.medsets_metric in scored:
            ours = scored[r.medsets_metric]
            lines.append(f"  {r.method}: {r.metric} {r.value:.4f} ({r.protocol}; {r.citation}); "
                         f"this run: {ours:.4f}")
    others = len(mine) - len(lines)
    if others:
        lines.append(f"  {others} other published result{'s' if others > 1 else ''} on this config use another "
                     "test set or protocol and do not compare (the dataset card lists them)")
    return (["Published results on this split:"] + lines) if lines else []
