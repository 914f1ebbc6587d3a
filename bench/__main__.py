"""python -m bench [--quick] [--device auto|cpu|cuda] [--data-dir DIR] [--report FILE]."""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time

import torch
from PIL import Image, ImageDraw

from core.config import ModelConfig, default_train_config
from core.data import data_dir_from_env, load_mnist
from core.devices import resolve_device
from core.digits.evaluate import evaluate
from core.digits.inside import build_map, drawing_views
from core.digits.predict import call_times_ms, predict, predict_batch
from core.digits.train import EpochReport, train
from core.numbers.read import read_number
from core.preprocess import preprocess

from .app_training import PAIRS
from .app_training import measure as measure_app_training
from .classic import classic_eval_rate, classic_mlp, train_classic
from .store import measure_both as measure_store

MLP_THRESHOLDS = (97.5, 98.0)
CNN_THRESHOLDS = (99.0, 99.4)
CLASSIC_EPOCHS = {"quick": 6, "full": 15}
LATENCY_SAMPLES = {"quick": 100, "full": 400}
STORE_SAMPLES = {"quick": 60, "full": 200}  # saves (each a new drawing) and listings
BATCH_IMAGES = 256
WARMUP_RUNS = 10  # predictions before timing: first calls allocate and load kernels
P99 = 0.99


def first_time_to(history: list[tuple[float, float]], threshold: float) -> float | None:
    """Training seconds at the first epoch whose test accuracy reaches threshold."""
    return next((round(seconds, 2) for seconds, accuracy in history if accuracy >= threshold), None)


def ratio(slow: float | None, fast: float | None) -> float | None:
    return round(slow / fast, 1) if slow and fast else None


def ours(arch: str, data, device: torch.device):
    epochs: list[EpochReport] = []

    def keep(update):
        if isinstance(update, EpochReport):
            epochs.append(update)

    result = train(ModelConfig(arch), default_train_config(arch, device=str(device)), data, callback=keep)
    return result, [(e.seconds, e.test_accuracy) for e in epochs]


def canvas_png() -> bytes:
    """A 280x280 canvas drawing of a 7, as the Predict page receives it."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(image).line([(60, 40), (200, 40), (110, 240)], fill=(255, 255, 255, 255), width=18)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


NUMBER_CANVAS = (700, 220)
NUMBER_DIGITS = 6


def number_png() -> bytes:
    """A 700x220 Number-mode canvas with six 7s written side by side."""
    image = Image.new("RGBA", NUMBER_CANVAS, (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    for i in range(NUMBER_DIGITS):
        x = 40 + 105 * i
        draw.line([(x, 40), (x + 75, 40), (x + 25, 180)], fill=(255, 255, 255, 255), width=14)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def number_ms_p50(model, samples: int) -> float:
    """p50 milliseconds to read a 6-digit canvas: cleaning, the number reader, the digit model."""
    png = number_png()
    return round(statistics.median(call_times_ms(lambda: read_number(model, png), samples, WARMUP_RUNS)), 2)


def latency_ms(model, samples: int) -> tuple[float, float]:
    """(p50, p99) milliseconds for preprocess + forward of one canvas PNG."""
    png = canvas_png()
    times = sorted(call_times_ms(lambda: predict(model, png), samples, WARMUP_RUNS))
    return round(statistics.median(times), 2), round(times[int(P99 * (len(times) - 1))], 2)


def inside_ms_p50(model, embedding, samples: int) -> float:
    """p50 milliseconds for everything the Inside page computes per drawing: preprocessing, the
    prediction, the layer views, and the drawing's place and neighbours on the embedding map."""

    def views():
        processed = predict(model, png).processed
        drawing_views(model, processed.tensor, processed.image28, embedding)

    png = canvas_png()
    return round(statistics.median(call_times_ms(views, samples, WARMUP_RUNS)), 2)


def map_build_s(model, test) -> tuple[float, object]:
    started = time.perf_counter()
    embedding = build_map(model, test)
    return round(time.perf_counter() - started, 2), embedding


def batch_rate(model) -> float:
    processed = [preprocess(canvas_png())] * BATCH_IMAGES
    started = time.perf_counter()
    predict_batch(model, processed)
    return round(BATCH_IMAGES / (time.perf_counter() - started))


def run(args: argparse.Namespace) -> dict:
    mode = "quick" if args.quick else "full"
    device = resolve_device(args.device)
    data_dir = str(data_dir_from_env(args.data_dir))

    classic = train_classic(data_dir, device, CLASSIC_EPOCHS[mode], lambda acc: args.quick and acc >= 97.5)
    data = load_mnist(data_dir, device=device)
    mlp, mlp_history = ours("mlp", data, device)
    cnn, cnn_history = ours("cnn", data, device)

    classic_eval = classic_eval_rate(data_dir, classic_mlp(), device)
    started = time.perf_counter()
    evaluate(mlp.model, data.test)
    our_eval = len(data.test) / (time.perf_counter() - started)

    cpu_mlp, cpu_cnn = mlp.model.cpu(), cnn.model.cpu()  # the app predicts on the CPU
    mlp_p50, mlp_p99 = latency_ms(cpu_mlp, LATENCY_SAMPLES[mode])
    cnn_p50, cnn_p99 = latency_ms(cpu_cnn, LATENCY_SAMPLES[mode])
    test_cpu = data.test.to("cpu")
    mlp_map_s, mlp_map = map_build_s(cpu_mlp, test_cpu)
    cnn_map_s, cnn_map = map_build_s(cpu_cnn, test_cpu)
    mlp_inside = inside_ms_p50(cpu_mlp, mlp_map, LATENCY_SAMPLES[mode])
    cnn_inside = inside_ms_p50(cpu_cnn, cnn_map, LATENCY_SAMPLES[mode])
    classic_97_5 = first_time_to(classic, 97.5)
    mlp_97_5 = first_time_to(mlp_history, 97.5)
    store = measure_store(STORE_SAMPLES[mode])
    # Last: it runs a server. 0 pairs skips it (a GPU machine without Chromium or Streamlit).
    watched = measure_app_training(["mlp", "cnn"], data_dir, args.app_pairs) if args.app_pairs else {}
    return {
        "device": str(device),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "mode": mode,
        "classic_seconds_per_epoch": round(classic[0][0], 2),
        "classic_seconds_to_97_5": classic_97_5,
        "classic_seconds_to_98_0": first_time_to(classic, 98.0),
        "classic_final_accuracy": round(classic[-1][1], 2),
        "classic_epochs": len(classic),
        "mlp_seconds_per_epoch": round(mlp_history[-1][0] / len(mlp_history), 2),
        "mlp_seconds_to_97_5": mlp_97_5,
        "mlp_seconds_to_98_0": first_time_to(mlp_history, 98.0),
        "mlp_test_accuracy": round(mlp.final.test_accuracy, 2),
        "mlp_train_seconds": round(mlp.train_seconds, 2),
        "train_speedup_vs_classic": ratio(classic_97_5, mlp_97_5),
        "cnn_seconds_to_99_0": first_time_to(cnn_history, 99.0),
        "cnn_seconds_to_99_4": first_time_to(cnn_history, 99.4),
        "cnn_test_accuracy": round(cnn.final.test_accuracy, 2),
        "cnn_train_seconds": round(cnn.train_seconds, 2),
        "classic_eval_images_per_s": round(classic_eval),
        "eval_images_per_s": round(our_eval),
        "eval_speedup_vs_classic": ratio(our_eval, classic_eval),
        "predict_ms_p50": mlp_p50,
        "predict_ms_p99": mlp_p99,
        "cnn_predict_ms_p50": cnn_p50,
        "cnn_predict_ms_p99": cnn_p99,
        "mlp_batch_predict_images_per_s": batch_rate(cpu_mlp),
        "cnn_batch_predict_images_per_s": batch_rate(cpu_cnn),
        "number_ms_p50": number_ms_p50(cpu_cnn, LATENCY_SAMPLES[mode]),  # the CNN: the default model
        "inspect_ms_p50": max(mlp_inside, cnn_inside),  # the slower model's
        "mlp_inspect_ms_p50": mlp_inside,
        "cnn_inspect_ms_p50": cnn_inside,
        "embedding_build_s": max(mlp_map_s, cnn_map_s),
        "mlp_embedding_build_s": mlp_map_s,
        "cnn_embedding_build_s": cnn_map_s,
        **store,
        **watched,
    }


def _s(value, unit=" s") -> str:
    return "not reached" if value is None else f"{value}{unit}"


def markdown(r: dict) -> str:
    """The results as a markdown table (classic, core, ratio)."""
    epoch_ratio = ratio(r["classic_seconds_per_epoch"], r["mlp_seconds_per_epoch"])
    cnn_times = f"{_s(r['cnn_seconds_to_99_0'])} / {_s(r['cnn_seconds_to_99_4'])}"
    rows = [
        ("seconds per epoch (MLP)", r["classic_seconds_per_epoch"], r["mlp_seconds_per_epoch"], epoch_ratio),
        ("time to 97.5 % (MLP)", _s(r["classic_seconds_to_97_5"]), _s(r["mlp_seconds_to_97_5"]),
         r["train_speedup_vs_classic"]),
        ("time to 98.0 % (MLP)", _s(r["classic_seconds_to_98_0"]), _s(r["mlp_seconds_to_98_0"]), None),
        ("final MLP test accuracy", f"{r['classic_final_accuracy']} % ({r['classic_epochs']} epochs)",
         f"{r['mlp_test_accuracy']} % ({r['mlp_train_seconds']} s)", None),
        ("CNN time to 99.0 % / 99.4 %", "", cnn_times, None),
        ("evaluation, test images/s", f"{r['classic_eval_images_per_s']:,}", f"{r['eval_images_per_s']:,}",
         r["eval_speedup_vs_classic"]),
        ("predict one canvas p50 / p99, MLP", "", f"{r['predict_ms_p50']} / {r['predict_ms_p99']} ms", None),
        ("predict one canvas p50 / p99, CNN", "", f"{r['cnn_predict_ms_p50']} / {r['cnn_predict_ms_p99']} ms",
         None),
        ("batch prediction images/s, MLP / CNN", "",
         f"{r['mlp_batch_predict_images_per_s']:,} / {r['cnn_batch_predict_images_per_s']:,}", None),
        ("read a 6-digit number p50, CNN", "", f"{r['number_ms_p50']} ms", None),
        ("Inside page per drawing p50, MLP / CNN", "",
         f"{r['mlp_inspect_ms_p50']} / {r['cnn_inspect_ms_p50']} ms", None),
        ("embedding map first build, MLP / CNN", "",
         f"{r['mlp_embedding_build_s']} / {r['cnn_embedding_build_s']} s", None),
        ("store: mark a drawing p50, SQLite / PostgreSQL", "",
         f"{r['store_add_ms_p50']} / {r['postgresql_store_add_ms_p50']} ms", None),
        ("store: list My digits' 60 newest p50, SQLite / PostgreSQL", "",
         f"{r['store_list_ms_p50']} / {r['postgresql_store_list_ms_p50']} ms", None),
        ("store: load a stored CNN, uncached, SQLite / PostgreSQL", "",
         f"{r['store_load_model_ms']} / {r['postgresql_store_load_model_ms']} ms", None),
    ]  # fmt: skip
    rows += [
        (f"training watched in Chromium / CLI, {arch.upper()}", "",
         f"{r[f'{arch}_app_train_s']} / {r[f'{arch}_cli_train_s']} s", r[f"app_train_ratio_{arch}"])
        for arch in ("mlp", "cnn") if f"app_train_ratio_{arch}" in r
    ]  # fmt: skip
    quick = " --quick" if r["mode"] == "quick" else ""
    lines = [
        f"Measured with `python -m bench{quick}` on {r['device']} ({r['machine']}), "
        "both pipelines in one process, back to back.",
        "",
        "| measure | classic tutorial | core | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {old} | {new} | {f'{x}x' if x else ''} |" for name, old, new, x in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="stop the classic run at 97.5 %% (< 3 min)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--data-dir", help="folder with MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    parser.add_argument(
        "--app-pairs", type=int, default=PAIRS, help=f"CLI/app training pairs ({PAIRS}; 0 skips them)"
    )
    parser.add_argument("--report", help="also write the markdown table to this file")
    args = parser.parse_args()
    results = run(args)
    table = markdown(results)
    print(table)
    if args.report:
        with open(args.report, "w") as f:
            f.write(table + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
