"""The class view's figures: what a model gets right and wrong on each person's examples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from core.corrections import Example
from core.digits.evaluate import PERCENT, logits_for
from core.digits.finetune import as_split

LOCAL_AUTHOR = "added locally"  # how the examples of no signed-in person are named


@dataclass
class PersonReport:
    author: str | None  # an email, or None for the local user (and the CLI)
    examples: int
    right: int
    mistakes: list[tuple[int, int, int]]  # (true digit, read as, how often), most frequent first

    @property
    def accuracy(self) -> float:
        return PERCENT * self.right / self.examples

    @property
    def who(self) -> str:
        return self.author or LOCAL_AUTHOR

    def mistakes_text(self, most: int = 3) -> str:
        """'1 read as 7 ×12, 4 read as 9 ×2' (the `most` frequent), or '—'."""
        text = ", ".join(f"{label} read as {read} ×{count}" for label, read, count in self.mistakes[:most])
        return text or "—"


def by_person(model: nn.Module, examples: list[Example]) -> list[PersonReport]:
    """One report per author, most mistakes first, from one pass of the model over every example."""
    if not examples:
        return []
    with torch.inference_mode():
        read = logits_for(model, as_split(examples).images).argmax(1).tolist()
    reports = []
    for author in {example.author for example in examples}:
        pairs = [(e.label, r) for e, r in zip(examples, read, strict=True) if e.author == author]
        wrong = Counter((label, r) for label, r in pairs if label != r)
        mistakes = [(label, r, count) for (label, r), count in wrong.most_common()]
        reports.append(PersonReport(author, len(pairs), len(pairs) - wrong.total(), mistakes))
    return sorted(reports, key=lambda report: (report.right - report.examples, report.who))
