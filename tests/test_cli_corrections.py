"""`python -m core corrections ...` and `train --finetune`, run as scripts run them."""

import json

import pytest

from bench.postgres import POSTGRES_PASSWORD
from core.access import LOCAL
from core.checkpoint import load_checkpoint
from core.corrections import content_hash, list_examples
from core.store import blobs as stored
from core.store.engine import STORE_URL_ENV
from tests.conftest import save_untrained_mlp
from tests.drawings import encode, pen
from tests.test_cli import _one_error_line, last_json, run_cli


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.strip().splitlines()]


@pytest.fixture
def drawings(tmp_path):
    files = []
    for i in range(12):
        files.append(tmp_path / f"d{i}.png")
        files[-1].write_bytes(encode(pen([(100 + 4 * i, 60), (140, 220)])))
    return files


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    """Two stores of one backend: SQLite files, or two databases on a real PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("other_postgres_url")


@pytest.fixture
def other_postgres_url(postgres_url, postgres):
    """A second database on the same server (postgres_url's fixture makes one per request)."""
    name = postgres_url.rsplit("/", 1)[1] + "_other"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    with postgres.admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_add_list_export_import_speak_json_lines(tmp_path, drawings, stores):
    db, other = stores
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    added = run_cli("corrections", "add", drawings[0], bad, drawings[1], "--label", "1", "--db", db)
    records = _lines(added.stdout)
    assert added.returncode == 2  # one file failed; the others were stored
    assert [set(r) for r in records] == [{"file", "id"}, {"file", "error"}, {"file", "id"}]
    assert [r["file"] for r in records] == [str(drawings[0]), str(bad), str(drawings[1])]
    listed = _lines(run_cli("corrections", "list", "--db", db).stdout)
    assert [set(r) for r in listed] == [{"id", "label", "predicted", "source", "created_at", "author"}] * 2
    assert [r["author"] for r in listed] == [None, None]  # the CLI acts as the local user
    assert [(r["id"], r["label"], r["source"]) for r in listed] == [
        (records[0]["id"], 1, "cli"),
        (records[2]["id"], 1, "cli"),
    ]
    exported = run_cli("corrections", "export", tmp_path / "out.zip", "--db", db)
    assert exported.returncode == 0 and last_json(exported.stdout)["exported"] == 2
    imported = run_cli("corrections", "import", tmp_path / "out.zip", "--db", other)
    assert last_json(imported.stdout) == {"imported": 2, "skipped": 0, "total": 2}
    again = run_cli("corrections", "import", tmp_path / "out.zip", "--db", other)
    assert last_json(again.stdout) == {"imported": 0, "skipped": 2, "total": 2}


def test_store_copy_moves_everything_and_proves_it_with_counts_and_hashes(tmp_path, drawings, postgres_url):
    """SQLite to PostgreSQL and back, as a deployment moves in: nothing lost, nothing twice."""
    local, back = tmp_path / "local.sqlite", tmp_path / "back.sqlite"
    for label, drawing in enumerate(drawings[:5]):
        assert run_cli("corrections", "add", drawing, "--label", label, "--db", local).returncode == 0
    save_untrained_mlp(tmp_path / "m.pt", {"test_accuracy": 12.0})
    stored.save("mine.pt", (tmp_path / "m.pt").read_bytes(), "2026-12-05T00:00:00+00:00", local)
    there = run_cli("store", "copy", "--from", local, "--to", postgres_url)
    report = last_json(there.stdout)
    examples, models = report["examples"], report["models"]
    assert there.returncode == 0 and (examples["copied"], examples["from_rows"], examples["to_rows"]) == (
        5,
        5,
        5,
    )
    assert examples["from_hash"] == examples["to_hash"] == content_hash(local) and examples["missing"] == 0
    assert (models["copied"], models["to_rows"]) == (1, 1) and models["from_hash"] == models["to_hash"]
    assert stored.load("mine.pt", postgres_url) == (tmp_path / "m.pt").read_bytes()
    assert (
        report["to"] == postgres_url.replace(POSTGRES_PASSWORD, "***")
        and POSTGRES_PASSWORD not in there.stdout
    )
    again = last_json(run_cli("store", "copy", "--from", local, "--to", postgres_url).stdout)
    assert (again["examples"]["copied"], again["examples"]["skipped"], again["models"]["skipped"]) == (
        0,
        5,
        1,
    )
    home = last_json(run_cli("store", "copy", "--from", postgres_url, "--to", back).stdout)
    assert (
        home["examples"]["to_hash"] == content_hash(local)
        and home["models"]["to_hash"] == models["from_hash"]
    )
    assert "the two stores are the same" in _one_error_line(
        run_cli("store", "copy", "--from", local, "--to", local)
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_train_saves_into_the_store_and_every_verb_takes_its_name(tiny_data_dir, tmp_path, request, backend):
    url = (
        f"sqlite:///{tmp_path / 'store.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    env = {STORE_URL_ENV: url}
    settings = ["--epochs", "1", "--hidden", "16", "--device", "cpu", "--no-download", "--data-dir"]
    trained = run_cli("train", *settings, tiny_data_dir, env=env)
    summary = last_json(trained.stdout)
    name = summary["model"]
    assert trained.returncode == 0 and name.startswith("store:mlp-") and summary["checkpoint"] == name
    listed = [json.loads(line) for line in run_cli("models", env=env).stdout.splitlines()]
    assert [row["path"] for row in listed if not row["shipped"]] == [name]
    evaluated = last_json(
        run_cli("evaluate", "--checkpoint", name, "--data-dir", tiny_data_dir, env=env).stdout
    )
    assert evaluated["checkpoint"] == name and evaluated["count"] == 200
    drawing = tmp_path / "seven.png"
    drawing.write_bytes(encode(pen([(70, 50), (210, 50), (120, 240)])))
    predicted = last_json(run_cli("predict", "--checkpoint", name, drawing, env=env).stdout)
    assert predicted["file"] == str(drawing) and len(predicted["probabilities"]) == 10
    exported = run_cli("export", "--checkpoint", name, "--out", tmp_path / "m.onnx", env=env)
    assert exported.returncode == 0 and (tmp_path / "m.onnx").stat().st_size > 0
    missing = _one_error_line(run_cli("evaluate", "--checkpoint", "store:nothing.pt", env=env))
    assert "no model named nothing.pt" in missing


def test_the_store_defaults_to_the_environment(tmp_path, drawings):
    env = {"MNIST_CORRECTIONS_DB": str(tmp_path / "env.sqlite")}
    assert run_cli("corrections", "add", drawings[0], "--label", "4", env=env).returncode == 0
    assert [e.label for e in list_examples(tmp_path / "env.sqlite", by=LOCAL)] == [4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["corrections", "add", "x.png", "--label", "12"], "invalid choice: 12"),
        (["corrections", "add", "x.png"], "--label"),
        (["corrections", "import", "missing.zip"], "cannot read missing.zip"),
        (["corrections", "list", "--db", "{bad}"], "is not a usable store"),
        (["corrections", "import", "{bad}"], "not a zip"),
        (["train", "--corrections", "x.sqlite"], "--corrections goes with --finetune"),
        (["train", "--finetune", "x.pt"], "--finetune needs --corrections"),
        (["corrections", "export", "{tmp}/no-such-folder/mine.zip"], "no-such-folder/mine.zip: No such file"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, args, message):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not SQLite")
    result = run_cli(*[a.replace("{bad}", str(bad)).replace("{tmp}", str(tmp_path)) for a in args])
    assert message in _one_error_line(result)
    assert bad.read_bytes() == b"this is not SQLite"


def test_finetune_from_a_store_and_from_a_zip(tiny_data_dir, tmp_path, drawings):
    start, db = tmp_path / "start.pt", tmp_path / "c.sqlite"
    save_untrained_mlp(start, {"test_accuracy": 10.0})
    run_cli("corrections", "add", *drawings[:11], "--label", "1", "--db", db)
    run_cli("corrections", "export", tmp_path / "c.zip", "--db", db)
    for corrections in (db, tmp_path / "c.zip"):
        out = tmp_path / f"tuned-{corrections.suffix[1:]}.pt"
        result = run_cli("train", "--finetune", start, "--corrections", corrections, "--epochs", "1",
                         "--device", "cpu", "--data-dir", tiny_data_dir, "--out", out)  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = last_json(result.stdout)
        assert summary["finetuned_from"] == str(start) and summary["corrections"] == 11
        assert summary["checkpoint"] == str(out) and summary["arch"] == "mlp" and summary["epochs"] == 1
        report = load_checkpoint(out).metrics["finetune"]
        assert report["finetuned_from"] == "start.pt" and report["corrections"] == 11
        assert len(report["corrections_hash"]) == 64 and load_checkpoint(out).model_config.hidden == 8
    hashes = {
        load_checkpoint(tmp_path / f"tuned-{s}.pt").metrics["finetune"]["corrections_hash"]
        for s in ("sqlite", "zip")
    }
    assert len(hashes) == 1  # the store and its export hold the same corrections


def test_finetune_with_fewer_than_10_corrections_is_refused(tiny_data_dir, tmp_path, drawings):
    start, db = tmp_path / "start.pt", tmp_path / "c.sqlite"
    save_untrained_mlp(start, {"test_accuracy": 10.0})
    run_cli("corrections", "add", *drawings[:9], "--label", "1", "--db", db)
    result = run_cli("train", "--finetune", start, "--corrections", db, "--device", "cpu",
                     "--data-dir", tiny_data_dir, "--out", tmp_path / "no.pt")  # fmt: skip
    assert "at least 10 corrections; there are 9" in _one_error_line(result)
    assert not (tmp_path / "no.pt").exists()


@pytest.mark.parametrize("problem", ["wrong password", "no such server", "no rights", "not a database URL"])
def test_a_store_that_cannot_be_used_is_one_line_that_never_shows_the_password(
    postgres, postgres_url, problem
):
    with postgres.admin() as admin:  # a user who may connect but not create the store's tables
        admin.execute("DROP ROLE IF EXISTS visitor")
        admin.execute("CREATE ROLE visitor LOGIN PASSWORD 'visitor-pw'")
    urls = {
        "wrong password": postgres.url(postgres_url.rsplit("/", 1)[1], password="not-the-pw"),
        "no such server": postgres_url.replace(str(postgres.port), "9"),  # a closed port
        "no rights": postgres_url.replace(f"postgres:{POSTGRES_PASSWORD}@", "visitor:visitor-pw@"),
        "not a database URL": "mysql://someone:pw-123@127.0.0.1/x",
    }
    result = run_cli("corrections", "list", "--db", urls[problem])
    line = _one_error_line(result)
    assert "Traceback" not in result.stderr
    for secret in (POSTGRES_PASSWORD, "not-the-pw", "visitor-pw", "pw-123"):
        assert secret not in result.stderr + result.stdout
    expected = {"wrong password": "password authentication failed", "no such server": "Connection refused",
                "no rights": "permission denied", "not a database URL": "SQLite or PostgreSQL"}  # fmt: skip
    assert expected[problem] in line, line
