"""The benchmark runs end to end (on tiny data here) and keeps its output contract; no timings asserted."""

import json
import subprocess
import sys

from tests.conftest import ROOT

REQUIRED = {
    "train_speedup_vs_classic",
    "mlp_test_accuracy",
    "mlp_seconds_to_97_5",
    "classic_seconds_to_97_5",
    "cnn_seconds_to_99_4",
    "eval_speedup_vs_classic",
    "predict_ms_p50",
    "device",
    "app_train_ratio_mlp",
    "app_train_ratio_cnn",
    "inspect_ms_p50",
    "number_ms_p50",
    "embedding_build_s",
    "store_add_ms_p50",
    "store_list_ms_p50",
    "postgresql_store_add_ms_p50",
    "postgresql_store_list_ms_p50",
    "store_load_model_ms",
    "postgresql_store_load_model_ms",
}


def test_quick_bench_prints_a_table_and_a_json_last_line(tiny_data_dir, tmp_path):
    report = tmp_path / "results.md"
    command = [sys.executable, "-m", "bench", "--quick", "--data-dir", tiny_data_dir, "--report", report,
               "--app-pairs", "1"]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= REQUIRED and summary["device"] == "cpu"
    assert 0 < summary["predict_ms_p50"] <= summary["predict_ms_p99"]
    assert summary["eval_images_per_s"] > 0 and summary["classic_eval_images_per_s"] > 0
    assert summary["inspect_ms_p50"] == max(summary["mlp_inspect_ms_p50"], summary["cnn_inspect_ms_p50"]) > 0
    assert summary["embedding_build_s"] > 0
    assert summary["store_add_ms_p50"] > 0 and summary["postgresql_store_list_ms_p50"] > 0  # both stores
    assert "| time to 97.5 % (MLP) |" in report.read_text()
    assert summary["app_train_ratio_mlp"] > 0 and summary["app_train_ratio_cnn"] > 0  # both ran, watched
    assert len(summary["mlp_app_train_s"]) == len(summary["cnn_cli_train_s"]) == 1


def test_the_class_simulator_reads_every_stroke_as_a_lone_session_does(tiny_data_dir):
    """Two websocket students against a real server, replaying the recorded frames: a stroke whose
    frame no longer fits the app (a renamed widget, a moved fragment) shows no reading and fails."""
    command = [sys.executable, "-m", "bench.class_load", "--students", "2", "--minutes", "0.15",
               "--data-dir", tiny_data_dir]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["server_cpu_ms_per_stroke"]) == {"draw", "number", "inside"}
    assert all(ms > 0 for ms in summary["server_cpu_ms_per_stroke"].values())
    run = summary["class"]
    assert run["strokes"] > 0 and run["errors"] == 0 and run["not_the_lone_reading"] == 0
    assert run["drawings_read_right"] == run["drawings_finished"] > 0  # the shipped CNN reads them all
    assert 0 < run["p50_s"] <= run["p90_s"] <= run["max_s"] and summary["peak_rss_mb"] > 0
