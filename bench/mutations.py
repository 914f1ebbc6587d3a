"""python -m bench.mutations [--ref REV]: how many hand-written bugs the fast tests catch.

Each mutation puts one bug into a copy of the tree (the working tree, or git revision REV) and runs
the fast tests that should catch it (browser and real-MNIST tests left out, stopping at the first
failure). Killed: they fail. Survived: they pass. A mutation whose code is not in that tree is
"absent". The last stdout line is JSON. Not run by CI: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = "not browser and not mnist"
PER_MUTATION_S = 600
PYTEST_TESTS_FAILED = 1
DATA_DIR_ENV = "MNIST_DATA_DIR"  # as core.data names it (not imported: this module stays torch-free)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str  # must occur in the file exactly once
    new: str
    tests: tuple[str, ...]  # test files that should catch it
    marks: str = FAST  # the tests run: a chart click or a drawing is seen only by browser tests
    keyword: str | None = None  # pytest -k: the browser test that should catch it, not the whole file


PREPROCESS, PREDICT = "core/preprocess.py", "core/digits/predict.py"
CLI, CLI_TRAIN = "core/cli/using.py", "core/cli/training.py"
RUN_VIEW = "app/run_view.py"
ZIPS = "core/corrections_zip.py"
STORE, INSIDE, TRAIN_PAGE, SESSION, SHOW = (
    "core/corrections.py",
    "core/digits/inside.py",
    "app_pages/train.py",
    "app/session.py",
    "app/show.py",
)
CATALOG = "core/catalog.py"
T_PRE, T_APP, T_CLI = "tests/test_core_preprocess.py", "tests/test_app.py", "tests/test_cli.py"
T_STORE, T_INSIDE = "tests/test_core_corrections.py", "tests/test_core_inside.py"
ACCESS, JOBS, T_ACCESS, T_JOBS = (
    "core/access.py",
    "core/runs/jobs.py",
    "tests/test_core_access.py",
    "tests/test_core_jobs.py",
)
T_READER = "tests/test_core_reader.py"
T_APP_ACCESS = "tests/test_app_access.py"
T_CKPT, T_CLASS = "tests/test_core_checkpoint.py", "tests/test_core_classroom.py"
T_DATA, T_TRAIN = "tests/test_core_data.py", "tests/test_core_train.py"
MUTATIONS = [
    Mutation("stroke-width normalisation removed", PREPROCESS,
             "digit = _normalise_stroke(", "digit = (",
             (T_PRE,)),
    Mutation("MNIST centre moved to 13.5", PREPROCESS,
             "MNIST_CENTRE = IMAGE_SIDE / 2", "MNIST_CENTRE = (IMAGE_SIDE - 1) / 2", (T_PRE,)),
    Mutation("saliency for the wrong digit", PREDICT,
             "scores = model(path)[:, digit].sum()", "scores = model(path)[:, (digit + 1) % 10].sum()",
             (T_PRE,)),
    Mutation("low_confidence always False", PREDICT,
             "low_confidence=float(confidence) < LOW_CONFIDENCE,", "low_confidence=False,", (T_CLI, T_APP)),
    Mutation("20 MB file limit removed", "core/images.py",
             "if len(source) > MAX_FILE_BYTES:", "if False:", (T_PRE, T_APP)),
    Mutation("a faint smudge is not blank", PREPROCESS,
             "if peak < MIN_CONTRAST:", "if peak < 0.01:", (T_PRE,)),
    Mutation("a dot is read as a digit", PREPROCESS,
             "return DOT if span <= MAX_BLOB_SPAN * stroke else None", "return None", (T_PRE, T_APP)),
    Mutation("checkpoint cache ignores the file's time", "app/cache.py",
             "return _checkpoint(str(path), checkpoint_version(path))", "return _checkpoint(str(path), 0.0)",
             ("tests/test_core_cache.py", T_APP)),
    Mutation("evaluation cache ignores the file's time", "app/cache.py",
             "return _evaluation(str(path), checkpoint_version(path), str(data_dir_from_env()))",
             "return _evaluation(str(path), 0.0, str(data_dir_from_env()))",
             ("tests/test_core_cache.py", T_APP)),
    Mutation("--hidden ignored", CLI_TRAIN,
             'ModelConfig(arch=arch, **({"hidden": args.hidden} if args.hidden is not None else {}))',
             "ModelConfig(arch=arch)", (T_CLI,)),
    # Each `old` names the digit models' line: the reader's options have lines like it.
    Mutation("--lr ignored", CLI_TRAIN, '"lr": args.lr, "augment"', '"lr": None, "augment"', (T_CLI,)),
    Mutation("--seed ignored", CLI_TRAIN, '"device": args.device, "seed": args.seed}',
             '"device": args.device, "seed": None}', (T_CLI,)),
    Mutation("--batch-size ignored", CLI_TRAIN,
             'return {"epochs": args.epochs, "batch_size": args.batch_size,',
             'return {"epochs": args.epochs, "batch_size": None,', (T_CLI,)),
    Mutation("no Ctrl-C handler", CLI_TRAIN,
             "signal.signal(signal.SIGINT, lambda *_: stop.set())\n    device = resolve_device",
             "device = resolve_device", (T_CLI,)),
    Mutation("validation overlaps training", "core/data.py",
             "val_idx, train_idx = order[:val_size], order[val_size:]",
             "val_idx, train_idx = order[:val_size], order", ("tests/test_core_data.py",)),
    Mutation("validation split ignores its seed", "core/data.py",
             "generator=torch.Generator().manual_seed(seed)", "generator=torch.Generator().manual_seed(0)",
             ("tests/test_core_data.py",)),
    Mutation("one-cycle schedule off", "core/digits/train.py",
             "        run.schedule.step()\n", "", ("tests/test_core_train.py",)),
    Mutation("stop ignored by the training loop", "core/digits/train.py",
             "if stop is not None and stop.is_set():", "if False:",
             ("tests/test_core_train.py", "tests/test_core_jobs.py")),
    Mutation("uploads keyed by file name", "app_pages/predict.py",
             'prediction, model, key=f"upload-{index}", blank_message',
             'prediction, model, key=f"upload-{name}", blank_message', (T_APP,)),
    Mutation("a model without an accuracy breaks the picker", SESSION,
             'accuracy = "—" if info.test_accuracy is None else f"{info.test_accuracy:.2f}%"',
             'accuracy = f"{info.test_accuracy:.2f}%"', (T_APP,)),
    Mutation("Evaluate's filters ignored", "app_pages/evaluate.py",
             "if true_digit in (ANY, m.label) and predicted_digit in (ANY, m.predicted)", "", (T_APP,)),
    # Behaviours no fast test pinned down (issue #23), and the defects it found.
    Mutation("zip-bomb guard reads the packed size", ZIPS,
             "total = sum(info.file_size for info", "total = sum(info.compress_size for info", (T_STORE,)),
    Mutation("import commits each example on its own", ZIPS,
             "with write(where) as conn:\n        new = sum(corrections.insert(conn, example)[1]",
             "if True:\n        new = sum(corrections.add_example(example, where, by=by)[1]", (T_STORE,)),
    Mutation("add_example trusts the label", STORE,
             "    check_label(example.label)\n    if example.source", "    if example.source", (T_STORE,)),
    Mutation("hand-made zips need every column", ZIPS,
             'REQUIRED_CSV_FIELDS = ("file", "label")', "REQUIRED_CSV_FIELDS = CSV_FIELDS[:-1]", (T_STORE,)),
    Mutation("number boxes at half scale", "core/numbers/read.py",
             "return round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale)",
             "return round(x0), round(y0), round(x1), round(y1)", ("tests/test_core_number.py",)),
    Mutation("CTC decoding merges a digit repeated across a blank", "core/numbers/reader.py",
             "runs[-1][0] == label and runs[-1][2] == t:", "runs[-1][0] == label:", (T_READER,)),
    Mutation("touching digits' ink divided midway between their peaks", "core/numbers/read.py",
             "PEAK_LEAD = 0.1", "PEAK_LEAD = 0.5", ("tests/test_core_number.py",)),
    Mutation("a lone digit in Number mode is not read as Draw reads it", "core/numbers/read.py",
             "digits = _lone_digit(model, image, _box(parts[0].ink > 0, scale))",
             "digits = _digits(model, parts, scale)",
             ("tests/test_core_number.py",)),
    Mutation("Number mode joins pieces only when its surest digit is unsure", "core/numbers/read.py",
             "min(d.confidence for d in read) < UNSURE", "max(d.confidence for d in read) < UNSURE",
             ("tests/test_core_number.py",)),
    Mutation("a lifted bar joins the digit it overlaps least", "core/numbers/read.py",
             "        host = max(\n", "        host = min(\n", ("tests/test_core_number.py",)),
    Mutation("the reader's training numbers written with test digits", "core/numbers/train.py",
             "train = write_lines(True, data_dir", "train = write_lines(False, data_dir", (T_READER,)),
    Mutation("the map flips between builds", INSIDE, "    axes *= signs\n", "", (T_INSIDE,)),
    Mutation("the map's variance shares from singular values", INSIDE,
             "variance = singular**2", "variance = singular", (T_INSIDE,)),
    Mutation("integrated gradients from the last step only", PREDICT,
             "grads.mean(0, keepdim=True)", "grads[-1:]", (T_PRE,)),
    Mutation("share links accept any value past a range's top", "core/share.py",
             "return lambda value: low <= value <= high", "return lambda value: low <= value",
             ("tests/test_core_share.py",)),
    Mutation("Train ignores the hidden width", TRAIN_PAGE,
             'ModelConfig(arch, hidden=int(values["hidden"]))', "ModelConfig(arch)", (T_APP,)),
    Mutation("Train ignores the device", TRAIN_PAGE,
             "device=st.session_state[DEVICE_KEY].id,\n    )", ")", (T_APP,)),
    Mutation("a failed run's error not shown", TRAIN_PAGE, "st.error(snap.error)", "pass", (T_APP,)),
    Mutation("no warning for a run that cannot be queued", SESSION,
             "        st.warning(notice)", "        pass", (T_APP,)),
    Mutation("the finished run offers no download", RUN_VIEW,
             '        cols[1].download_button(\n            "Download checkpoint"',
             '        (\n            "Download checkpoint"', (T_APP,)),
    Mutation("owners may not stop another's run", ACCESS,
             "return actor.owner or (actor.signed_in and actor.email == started_by.email)",
             "return actor.signed_in and actor.email == started_by.email", (T_JOBS, T_APP)),
    Mutation("a short dash is read as a digit", PREPROCESS,
             "flat = width > height and height <= MAX_DASH_HEIGHT",
             "flat = False and height <= MAX_DASH_HEIGHT", (T_PRE,)),
    Mutation("versions by importing torchvision", "core/checkpoint.py",
             "        return importlib.metadata.version(name)",
             "        return __import__(name).__version__", ("tests/test_core_checkpoint.py",)),
    Mutation("a non-network download failure escapes", "core/data.py",
             "    except Exception as exc:\n        for folder in created:",
             "    except DataError as exc:\n        for folder in created:",
             ("tests/test_core_data.py", T_APP)),
    Mutation("an unwritable file is a traceback", "core/checkpoint.py",
             "        raise _cannot_write(path, exc) from exc\n    try:", "        raise\n    try:",
             ("tests/test_cli_corrections.py",)),
    Mutation("train loads MNIST before checking its settings", CLI_TRAIN,
             "    stop = threading.Event()\n    # Ctrl-C",
             "    load_mnist(args.data_dir, download=args.download)\n"
             "    stop = threading.Event()\n    # Ctrl-C", (T_CLI,)),
    Mutation("a deleted model silently replaced", SESSION, "            st.session_state[MODEL_GONE_KEY] = (",
             "            _said = (", (T_APP,)),
    Mutation("the Models table hides fine-tuning", CATALOG,
             'return f"fine-tuned from {self.finetuned_from}" if self.finetuned_from else "trained here"',
             'return "trained here"', (T_APP,)),
    # Who may do what (issue #25): each rule in core, and the queue.
    Mutation("a user may change anyone's example", ACCESS,
             "return actor.owner or (actor.role == USER and author == actor.email)",
             "return actor.owner or actor.role == USER", (T_ACCESS,)),
    Mutation("a visitor may teach", ACCESS, "return self.role in (OWNER, USER)", "return True", (T_ACCESS,)),
    Mutation("any user may import a zip", ZIPS, '    require_owner(by, "import a zip")\n', "", (T_ACCESS,)),
    Mutation("a user may list anyone's examples", ACCESS,
             'sign in first")\n    return actor.email', 'sign in first")\n    return whose', (T_ACCESS,)),
    Mutation("an outside domain may sign in", ACCESS,
             'if settings.allowed_domains and email.rsplit("@", 1)[1] not in settings.allowed_domains:',
             "if False:", (T_ACCESS,)),
    Mutation("a user may delete models", CATALOG,
             '    require_owner(by, "delete models")\n', "", (T_ACCESS,)),
    Mutation("one person may queue many runs", JOBS,
             "if (mine := self.waiting_run_of(by)) is not None:", "if (mine := None) is not None:",
             (T_JOBS,)),
    Mutation("a queued run waits for a page to start it", JOBS,
             "TrainingJob(request, by, on_end=self._next)", "TrainingJob(request, by, on_end=None)",
             (T_JOBS,)),
    Mutation("a fine-tune keeps all it forgot", "core/digits/finetune.py",
             "if guard_before - accuracy_and_loss(model, guard)[0] <= MAX_GUARD_DROP:", "if True:",
             ("tests/test_core_finetune.py",)),
    # What the class tour and the mutation audit of issue #32 found no test for.
    Mutation("checkpoint format version not checked", "core/checkpoint.py",
             'if payload["format"] != FORMAT_VERSION:', "if False:", (T_CKPT,)),
    Mutation("checkpoints loaded without weights_only", "core/checkpoint.py",
             'torch.load(source, map_location="cpu", weights_only=True)',
             'torch.load(source, map_location="cpu")', (T_CKPT,)),
    Mutation("the queue takes the last waiting run", JOBS,
             "run = self.waiting.pop(0)", "run = self.waiting.pop()", (T_JOBS,)),
    Mutation("the loss curve's x one epoch late", "core/digits/train.py",
             "return self.epoch - 1 + self.batch / self.batches_per_epoch",
             "return self.epoch + self.batch / self.batches_per_epoch", (T_JOBS,)),
    Mutation("the local user's listing shows everyone's", STORE,
             "    if whose == EVERYONE:", "    if whose in (EVERYONE, None):", (T_STORE,)),
    Mutation("an import accepts any confidence", ZIPS,
             "if not 0 <= number <= 1:", "if False:", (T_STORE,)),
    Mutation("a person's examples counted from everyone's", "core/digits/classroom.py",
             "PersonReport(author, len(pairs),", "PersonReport(author, len(examples),", (T_CLASS,)),
    Mutation("a mistake's true and read digits swapped", "core/digits/classroom.py",
             "Counter((label, r) for label, r in pairs if label != r)",
             "Counter((r, label) for label, r in pairs if label != r)", (T_CLASS,)),
    Mutation("the fine-tune's guard is the MNIST test set", "core/digits/finetune.py",
             'blend = _keep_mnist(start, result, guard.to("cpu"), data.test.to("cpu"))',
             'blend = _keep_mnist(start, result, data.test.to("cpu"), data.test.to("cpu"))',
             ("tests/test_core_finetune.py",)),
    Mutation("export does not check its format", "core/digits/export.py",
             "if fmt not in EXPORT_FORMATS:", "if False:", ("tests/test_export.py",)),
    Mutation("--no-download ignored by evaluate", CLI,
             "test = load_split(train=False, data_dir=args.data_dir, download=args.download)",
             "test = load_split(train=False, data_dir=args.data_dir, download=True)", (T_CLI,)),
    Mutation("only the first MNIST mirror tried", "core/data.py",
             "for mirror in MNIST.mirrors:", "for mirror in MNIST.mirrors[:1]:", (T_DATA,)),
    Mutation("the validation size not range-checked", "core/data.py",
             "if not 0 < val_size < len(train):", "if False:", (T_DATA,)),
    Mutation("the ETA always 0", "core/digits/train.py",
             "eta_s=elapsed / done * (self.total_steps - done),", "eta_s=0.0,", (T_TRAIN,)),
    Mutation("logits_for leaves the model in eval mode", "core/digits/evaluate.py",
             "        model.train(was_training)", "        model.eval()", (T_TRAIN,)),
    Mutation("a number reader read as a digit model", "core/checkpoint.py",
             "    if kind_of(payload) == NUMBER_READER:\n        raise NumberReaderCheckpoint",
             "    if False:\n        raise NumberReaderCheckpoint", (T_CKPT, T_CLI)),
    Mutation("Train runs on the CPU whatever device was chosen", TRAIN_PAGE,
             "device=st.session_state[DEVICE_KEY].id,\n    )  # fmt: skip",
             'device="cpu",\n    )  # fmt: skip', (T_APP,)),
    Mutation("no notice that another person's run is training", TRAIN_PAGE,
             """st.info("Another person's run is training on this server; you can watch its progress.")""",
             "pass", (T_APP_ACCESS,)),
    Mutation("Train shows the server's last run, not the person's own", TRAIN_PAGE,
             "return (queue.latest_run_of(who) if who.may_train else None) or queue.job", "return queue.job",
             (T_APP_ACCESS,)),
    Mutation("a deleted checkpoint still offered on Train", TRAIN_PAGE,
             "if not checkpoint_exists(snap.checkpoint):", "if False:", (T_APP,)),
    Mutation("the Class page reports a reader's run", SHOW,
             "    if not report:\n        return\n    if intro:", "    if intro:", (T_APP,)),
    Mutation("Evaluate's filter ignores the true digit", "app_pages/evaluate.py",
             "if true_digit in (ANY, m.label) and predicted_digit in (ANY, m.predicted)",
             "if predicted_digit in (ANY, m.predicted)", (T_APP,)),
    Mutation("a clicked confusion cell filters nothing", "app_pages/evaluate.py",
             "st.session_state[TRUE_KEY], st.session_state[PREDICTED_KEY] = cell if mistake_cell else",
             "pass  #", ("tests/test_browser.py",), marks="browser", keyword="confusion_cell"),
    Mutation("Home's sample digits gone", "app_pages/home.py",
             "show.digit_image(image, caption=str(int(test.labels[i])))", "pass", (T_APP,)),
    Mutation("Predict's stage strip gone", SHOW,
             'st.image(stage_strip(prediction, heat), caption=" · ".join(STAGE_CAPTIONS))', "pass", (T_APP,)),
    Mutation("the training child's stop watcher on the buffered stdin", "core/runs/child.py",
             "while os.read(stream.fileno(), PIPE_CHUNK):\n        pass", "stream.read()", (T_JOBS,)),
]  # fmt: skip


def _copy_tree(ref: str | None, into: Path) -> None:
    """The working tree (tracked and untracked, not ignored files), or revision `ref`, into `into`,
    made a git repository (a test asks git what the project ignores)."""
    subprocess.run(["git", "init", "-q", str(into)], check=True)
    if ref:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        return
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, target = ROOT / name, into / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


def _environment(mutation: Mutation) -> dict[str, str]:
    """The fast tests run on data they make, as in a fresh clone: without $MNIST_DATA_DIR, which only
    the real-MNIST browser tests need."""
    env = dict(os.environ)
    if mutation.marks == FAST:
        env.pop(DATA_DIR_ENV, None)
    return env


def _first_failure(output: str) -> str:
    """The first failing test's name in pytest's short summary."""
    failed = [line.split()[1] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return failed[0].split("::")[-1] if failed else "(timed out)"


def _outcome(tree: Path, mutation: Mutation) -> str:
    """'killed by TEST', 'survived', 'absent' (its code or its tests are not in this tree) or 'error'."""
    target = tree / mutation.path
    original = target.read_text()
    tests = [t for t in mutation.tests if (tree / t).exists()]
    if original.count(mutation.old) != 1 or not tests:
        return "absent"
    target.write_text(original.replace(mutation.old, mutation.new))
    try:
        chosen = ["-k", mutation.keyword] if mutation.keyword else []
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", mutation.marks,
                   *chosen, *tests]  # fmt: skip
        result = subprocess.run(command, cwd=tree, capture_output=True, timeout=PER_MUTATION_S,
                                env=_environment(mutation))  # fmt: skip
    except subprocess.TimeoutExpired:
        return "killed by the time limit"  # in CI, pytest-timeout fails the hanging test
    finally:
        target.write_text(original)
    if result.returncode == PYTEST_TESTS_FAILED:
        return f"killed by {_first_failure(result.stdout.decode())}"
    return "survived" if result.returncode == 0 else "error"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mutations", description=__doc__)
    parser.add_argument("--ref", help="a git revision to test instead of the working tree")
    parser.add_argument("--only", metavar="TEXT", help="only the mutations whose name holds TEXT")
    args = parser.parse_args()
    outcomes = {}
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        _copy_tree(args.ref, tree)
        for mutation in (m for m in MUTATIONS if args.only is None or args.only in m.name):
            outcomes[mutation.name] = _outcome(tree, mutation)
            print(f"{mutation.name}: {outcomes[mutation.name]}", flush=True)
    tried = [o for o in outcomes.values() if o == "survived" or o.startswith("killed")]
    killed = sum(o.startswith("killed") for o in tried)
    survivors = [name for name, o in outcomes.items() if o == "survived"]
    score = round(100 * killed / len(tried), 1) if tried else None
    print(json.dumps({"ref": args.ref or "working tree", "killed": killed, "tried": len(tried),
                      "score_percent": score, "survivors": survivors,
                      "absent": [n for n, o in outcomes.items() if o == "absent"],
                      "errors": [n for n, o in outcomes.items() if o == "error"]}))  # fmt: skip


if __name__ == "__main__":
    main()
