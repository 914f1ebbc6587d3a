"""How the Train page draws a run, by its kind: a digit model's epochs, or a number reader's rounds.

The page picks the view once (`view_of`); each view draws the charts, the progress line, the last
round's caption and, once the run has ended, what its checkpoint is and what to do with it.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import session, show
from app.cache import cached_checkpoint
from core.checkpoint import DIGIT_MODEL, NUMBER_READER, CheckpointError, checkpoint_bytes, file_name
from core.runs.jobs import JobSnapshot

# Distinct hues, not two shades of one: the curves cross.
COLOURS = {"train": "#4c9aff", "test": "#ff8b3d", "validation": "#36b37e", "loss": "#4c9aff"}
# Fixed margins, no automargin: measuring tick labels to fit the margins made Plotly lay each chart
# out twice on every update, most of what a watched run cost the browser.
CHART_LAYOUT = dict(height=260, margin=dict(l=55, r=10, t=30, b=45, autoexpand=False))
ACCURACY_LEGEND = dict(orientation="h", x=1, xanchor="right", y=0.02, yanchor="bottom")


def _waiting_for(figure: go.Figure, what: str) -> None:
    figure.add_annotation(text=what, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)


class RunView:
    """What every run's view draws the same way; a kind's view names its words and report fields."""

    step: str  # "epoch" or "round": also the reports' field that counts them
    items: str  # what it trains on, per second
    rate: str  # the progress report's field for that rate
    loss_title: str
    accuracy_title: str
    curves: dict[str, str]  # curve name -> the end-of-epoch report's field
    optional: frozenset[str] = frozenset()  # curves drawn only when the reports have them
    waiting_accuracy = "Accuracy appears after the first epoch"

    def loss_figure(self, losses: list[tuple[float, float]], epochs: int) -> go.Figure:
        """Smoothed training loss against the epoch position of each report."""
        figure = go.Figure(
            go.Scatter(x=[x for x, _ in losses], y=[y for _, y in losses], mode="lines", name="loss",
                       line=dict(color=COLOURS["loss"]))
        )  # fmt: skip
        figure.update_layout(title=self.loss_title, **CHART_LAYOUT)
        figure.update_xaxes(title=self.step, range=[0, epochs], dtick=1, automargin=False)
        figure.update_yaxes(automargin=False)
        if not losses:
            _waiting_for(figure, "The loss appears once training starts")
        return figure

    def accuracy_figure(self, reports: list, epochs: int) -> go.Figure:
        """Each curve's accuracy after each epoch, on whole-epoch ticks."""
        figure = go.Figure()
        x = [getattr(report, self.step) for report in reports]
        for name, field in self.curves.items():
            values = [getattr(report, field) for report in reports]
            if name not in self.optional or (values and values[0] is not None):
                figure.add_scatter(
                    x=x, y=values, mode="lines+markers", name=name, line=dict(color=COLOURS[name])
                )
        # Inside the plot, bottom right, below the rising curves: the fixed margins leave no room beside it.
        figure.update_layout(
            title=self.accuracy_title, showlegend=True, legend=ACCURACY_LEGEND, **CHART_LAYOUT
        )
        figure.update_xaxes(title=self.step, range=[0.5, epochs + 0.5], dtick=1, automargin=False)
        figure.update_yaxes(automargin=False)
        if not reports:
            figure.update_yaxes(range=[0, 100])
            _waiting_for(figure, self.waiting_accuracy)
        return figure

    def progress(self, snap: JobSnapshot) -> None:
        latest = snap.latest
        st.progress(
            latest.fraction_done,
            f"{self.step} {getattr(latest, self.step)}/{snap.planned_epochs} · "
            f"{getattr(latest, self.rate):,.0f} {self.items}/s · ETA {latest.eta_s:.0f} s",
        )

    def published(self, snap: JobSnapshot, use: str, on_use, help: str | None = None) -> None:
        """A finished run's two buttons: use its checkpoint, or download it."""
        cols = st.columns(2)
        cols[0].button(use, on_click=on_use, args=(snap.checkpoint,), help=help)
        # A callable is read only on click, not on every rerun of this page.
        cols[1].download_button(
            "Download checkpoint",
            lambda: checkpoint_bytes(snap.checkpoint),
            file_name=file_name(snap.checkpoint),
            on_click=session.KEEP_PAGE,
        )


class DigitRunView(RunView):
    """A digit model's run (fresh or fine-tuned): epochs of images."""

    step = "epoch"
    items, rate = "images", "samples_per_s"
    loss_title, accuracy_title = "Training loss (smoothed)", "Accuracy per epoch (%)"
    curves = {"train": "train_accuracy", "test": "test_accuracy", "validation": "val_accuracy"}
    optional = frozenset({"validation"})  # drawn only when the run has a validation split

    def caption(self, snap: JobSnapshot) -> None:
        last = snap.epochs[-1]
        accuracy = saved_accuracy(snap) or last.test_accuracy
        st.caption(f"Epoch {last.epoch}: test accuracy {accuracy:.2f}% after {last.seconds:.1f} s")

    def ended(self, snap: JobSnapshot) -> None:
        show.finetune_report(snap.checkpoint)
        self.published(snap, "Use as active model", session.make_active)


class ReaderRunView(RunView):
    """A number reader's run: rounds of equal time, judged on numbers written with MNIST test digits
    (shown as the "test" curve)."""

    step = "round"
    items, rate = "numbers", "numbers_per_s"
    loss_title, accuracy_title = "CTC loss (smoothed)", "Numbers read exactly, per round (%)"
    curves = {"train": "train_accuracy", "test": "val_accuracy"}

    def caption(self, snap: JobSnapshot) -> None:
        last = snap.epochs[-1]
        st.caption(f"Round {last.round}: {last.val_accuracy:.1f}% of the numbers of test digits read exactly")

    def ended(self, snap: JobSnapshot) -> None:
        best = max(report.val_accuracy for report in snap.epochs)
        st.caption(f"Kept: the round that read {best:.1f}% of the numbers written with MNIST test digits "
                   "exactly right.")  # fmt: skip
        show.warn_if_poor_reader(best)
        self.published(snap, "Read numbers with it", session.use_reader, session.READER_USE_HELP)


VIEWS = {DIGIT_MODEL: DigitRunView(), NUMBER_READER: ReaderRunView()}


def view_of(snap: JobSnapshot | None) -> RunView:
    """The view for the run's kind; before any run, a digit model's (the form's)."""
    return VIEWS[snap.kind] if snap else VIEWS[DIGIT_MODEL]


def saved_accuracy(snap: JobSnapshot) -> float | None:
    """The saved model's test accuracy once the run has ended: a fine-tune's is its blend's, which
    its last epoch report did not know yet (core.digits.finetune). No store query: a model deleted
    since is still in the cache, or is None here."""
    if snap.checkpoint is None:
        return None
    try:
        return cached_checkpoint(snap.checkpoint).test_accuracy
    except CheckpointError:
        return None
