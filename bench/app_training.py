"""python -m bench.app_training [--arch mlp|cnn ...]: what watching costs a training run.

Trains each arch's default recipe from the CLI, then from the Train page with the page open in
headless Chromium until the run ends, in alternating pairs. Both use the same data, recipe and
device; the median over pairs of their checkpoints' `train_seconds` ratio (app / CLI) is the cost of
the live page. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from core.checkpoint import load_checkpoint
from core.config import ARCHS
from core.data import data_dir_from_env
from core.store import blobs as stored

from .app_latency import CHROMIUM, CHROMIUM_ARGS, ROOT, VIEWPORT, serve_app

RUN_LIMIT_S = 20 * 60  # a CNN run on a slow 2-core machine takes minutes
POLL_MS = 200
PAIRS = 3


def cli_train_seconds(arch: str, data_dir: str, out: Path) -> float:
    command = [sys.executable, "-m", "core", "train", "--arch", arch, "--device", "cpu",
               "--data-dir", data_dir, "--no-download", "--out", str(out)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return load_checkpoint(out).metrics["train_seconds"]


def app_train_seconds(browser, url: str, arch: str, store: str) -> float:
    """Start the recipe on the Train page (a shared link picks the arch) and watch it to the end."""
    before = {name for name, _, _ in stored.listing(store)}
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/train?arch={arch}")
    page.get_by_role("button", name="Start training").click()
    deadline = time.monotonic() + RUN_LIMIT_S
    # The run's model in the store, not the page's text: a tiny run can end before its Stop button is
    # drawn, and the page may still show the previous run's "Training finished".
    while not (saved := {name for name, _, _ in stored.listing(store)} - before):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {arch} run from the Train page did not finish in {RUN_LIMIT_S} s")
        page.wait_for_timeout(POLL_MS)
    page.close()
    (name,) = saved
    payload = torch.load(io.BytesIO(stored.load(name, store)), weights_only=True)
    return payload["metrics"]["train_seconds"]


def measure(archs: list[str], data_dir: str, pairs: int) -> dict:
    """CLI and app runs alternate, `pairs` times per arch: this shared machine's speed drifts by
    tens of percent over minutes, so each app run is compared with the CLI run just before it."""
    from playwright.sync_api import sync_playwright

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{Path(folder) / 'store.sqlite'}"  # where the app saves what it trains
        env = {"MNIST_DATA_DIR": data_dir, "MNIST_STORE_URL": store}
        with serve_app(env, Path(folder) / "streamlit.log") as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for arch in archs:
                cli, app = [], []
                for _ in range(pairs):
                    cli.append(cli_train_seconds(arch, data_dir, Path(folder) / f"cli-{arch}.pt"))
                    app.append(app_train_seconds(browser, url, arch, store))
                results[f"{arch}_cli_train_s"] = [round(s, 2) for s in cli]
                results[f"{arch}_app_train_s"] = [round(s, 2) for s in app]
                ratios = [a / c for a, c in zip(app, cli, strict=True)]
                results[f"app_train_ratio_{arch}"] = round(statistics.median(ratios), 2)
            browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_training", description=__doc__)
    parser.add_argument("--arch", nargs="+", choices=ARCHS, default=list(ARCHS), help="default: all")
    parser.add_argument("--pairs", type=int, default=PAIRS, help=f"CLI/app run pairs per arch ({PAIRS})")
    parser.add_argument("--data-dir", help="folder with MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    args = parser.parse_args()
    print(json.dumps(measure(args.arch, str(data_dir_from_env(args.data_dir)), args.pairs)))


if __name__ == "__main__":
    main()
