"""Signing in through a real OIDC provider (oidc-provider-mock on a loopback port) in Chromium, with
the app on a real PostgreSQL store: a visitor, a user and an owner each see and may do what their
role allows, an outsider is turned away, and ten signed-in people teach at once."""

# ruff: noqa: F811 (the browser fixture is test_browser's, imported)

import csv
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.app_latency import MOVE_STEPS, VIEWPORT, free_port, serve_app, visible_canvas
from core.access import LOCAL
from core.corrections import list_examples
from tests.conftest import ROOT
from tests.test_browser import WAIT_MS, app_button, browser, open_app, prediction_metric, shot  # noqa: F401

pytestmark = pytest.mark.browser
CLIENT_SECRET, COOKIE_SECRET = "client-s3cret-never-shown", "cookie-s3cret-never-shown"
TEACHER, ADA, EVE = "teacher@school.org", "ada@school.org", "eve@gmail.com"
CLASS_SIZE = 10  # signed-in sessions drawing and teaching at once
STUDENTS = [f"student{i}@school.org" for i in range(CLASS_SIZE)]
PROVIDER_READY_S = 30
SEVEN = [(70, 50), (210, 50), (120, 240)]


def _claims(email: str) -> str:
    return json.dumps({"sub": email.split("@")[0], "email": email, "name": email.split("@")[0].capitalize()})


@contextmanager
def oidc_provider(emails: list[str], log: Path):
    """oidc-provider-mock with one predefined user per email (its login page shows a button each,
    named by the user's `sub`, the email's local part); yields its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "oidc_provider_mock", "-p", str(port)]
    for email in emails:
        command += ["--user-claims", _claims(email)]
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
        try:
            _wait_for(f"{url}/.well-known/openid-configuration", process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + PROVIDER_READY_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the OIDC provider exited"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the OIDC provider did not answer at {url}")


def _secrets(folder: Path, provider: str, app_port: int, access: dict) -> Path:
    """The app's secrets.toml: Streamlit's [auth] for the provider, and the roles."""
    owners = json.dumps(access["owners"])
    lines = [
        "[auth]",
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"',
        f'cookie_secret = "{COOKIE_SECRET}"',
        'client_id = "mnist-app"',
        f'client_secret = "{CLIENT_SECRET}"',
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"',
        "[access]",
        f"owners = {owners}",
        'allowed_domains = ["school.org"]',
        f"users_may_train = {str(access.get('users_may_train', False)).lower()}",
    ]
    path = folder / "secrets.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def signed_in_app(
    tmp_path: Path, tiny_data_dir, store_url: str, emails: list[str], users_may_train: bool = False
):
    """The app, with sign-in through a fresh provider that knows `emails`: yields its URL."""
    with oidc_provider(emails, tmp_path / "oidc.log") as provider:
        port = free_port()
        access = {"owners": [TEACHER], "users_may_train": users_may_train}
        secrets = _secrets(tmp_path, provider, port, access)
        env = {"MNIST_DATA_DIR": str(tiny_data_dir), "MNIST_STORE_URL": store_url,
               "MNIST_MODELS_DIR": str(tmp_path / "trained"),
               "STREAMLIT_SECRETS_FILES": str(secrets)}  # fmt: skip
        with serve_app(env, tmp_path / "streamlit.log", ROOT, port) as url:
            yield url


def sign_in(page, url: str, email: str) -> None:
    """Through the provider's own login page, as a person clicks it."""
    open_app(page, url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=email.split("@")[0], exact=True).click()  # the provider's page
    expect(page.get_by_text(re.compile(rf"Signed in as .*{re.escape(email)}"))).to_be_visible(timeout=WAIT_MS)


def _draw(page, stroke: list[tuple[int, int]]) -> None:
    box = visible_canvas(page).bounding_box()
    (x0, y0), *rest = stroke
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=MOVE_STEPS)
    page.mouse.up()


def _draw_a_seven(page, url: str, shift: int = 0) -> None:
    open_app(page, url, "predict")
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=WAIT_MS)
    _draw(page, [(x + shift, y) for x, y in SEVEN])


def _seven_shown(page) -> None:
    expect(prediction_metric(page).locator('[data-testid="stMetricValue"]')).to_have_text(
        "7", timeout=WAIT_MS
    )


def _authors(store_url: str) -> list[str | None]:
    return [example.author for example in list_examples(store_url, by=LOCAL)]


def test_a_visitor_a_user_and_an_owner_through_a_real_sign_in(browser, postgres_url, tiny_data_dir, tmp_path):
    people = {
        who: browser.new_context(viewport=VIEWPORT).new_page() for who in ("visitor", ADA, TEACHER, EVE)
    }
    with signed_in_app(tmp_path, tiny_data_dir, postgres_url, [TEACHER, ADA, EVE]) as url:
        visitor = people["visitor"]
        _draw_a_seven(visitor, url)
        _seven_shown(visitor)  # a visitor draws and predicts ...
        expect(visitor.get_by_text("Sign in (in the sidebar) to teach")).to_be_visible()
        expect(app_button(visitor, "Right")).to_have_count(0)  # ... and has nothing to save with
        assert _authors(postgres_url) == []

        ada = people[ADA]
        sign_in(ada, url, ADA)
        _draw_a_seven(ada, url)
        _seven_shown(ada)
        app_button(ada, "Right").click()
        expect(ada.get_by_text("Saved to My digits as a 7.")).to_be_visible(timeout=WAIT_MS)
        assert _authors(postgres_url) == [ADA]
        ada.get_by_role("link", name="Models").click()
        expect(ada.get_by_role("heading", name="Models")).to_be_visible(timeout=WAIT_MS)
        expect(app_button(ada, "Download .pt")).to_be_visible()
        expect(app_button(ada, "Delete")).to_have_count(0)  # a user deletes no model
        expect(ada.get_by_role("link", name="Class")).to_have_count(0)
        shot(ada, "signed-in-user-models")

        teacher = people[TEACHER]
        sign_in(teacher, url, TEACHER)
        teacher.get_by_role("link", name="Class").click()
        expect(teacher.get_by_text("Examples per person and digit")).to_be_visible(timeout=WAIT_MS)
        expect(teacher.locator('[data-testid="stDataFrame"]').first).to_contain_text(ADA)
        shot(teacher, "class-view")
        teacher.get_by_role("link", name="My digits").click()
        # The Class page's two tables name Ada too: look once My digits has replaced them.
        expect(teacher.get_by_role("heading", name="My digits", level=1)).to_be_visible(timeout=WAIT_MS)
        expect(teacher.get_by_text(ADA)).to_be_visible(timeout=WAIT_MS)
        expect(app_button(teacher, "Delete")).to_have_count(1)  # an owner may delete Ada's example
        with teacher.expect_download(timeout=WAIT_MS) as download:
            teacher.get_by_role("button", name="Export all as zip").click()
        download.value.save_as(tmp_path / "class.zip")
        with zipfile.ZipFile(tmp_path / "class.zip") as archive:
            rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
        assert [(row["label"], row["author"]) for row in rows] == [("7", ADA)]  # the export names who
        teacher.get_by_role("link", name="Models").click()
        expect(app_button(teacher, "Make the default for everyone")).to_be_visible(timeout=WAIT_MS)

        eve = people[EVE]
        sign_in_refused = eve.get_by_text(f"{EVE} may not sign in here: this app is for @school.org accounts")
        open_app(eve, url)
        eve.get_by_role("button", name="Sign in").click()
        eve.get_by_role("button", name="eve", exact=True).click()
        expect(sign_in_refused).to_be_visible(timeout=WAIT_MS)
        expect(eve.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=WAIT_MS)
        expect(app_button(eve, "Sign out")).to_be_visible()
        shot(eve, "sign-in-refused")

        app_button(ada, "Sign out").click()
        ada.get_by_role("button", name="End session").click()  # the provider's page, then back to the app
        expect(ada.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        cookies = [c["value"] for page in people.values() for c in page.context.cookies() if c["value"]]
        for page in people.values():
            page.context.close()
    said = (tmp_path / "streamlit.log").read_text()
    assert "Traceback" not in said
    for secret in (CLIENT_SECRET, COOKIE_SECRET, *cookies):
        assert secret not in said, "a secret or a sign-in cookie was logged"
    listed = subprocess.run([sys.executable, "-m", "core", "corrections", "list", "--db", postgres_url],
                            capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    assert [json.loads(line)["author"] for line in listed.splitlines()] == [ADA]


def test_ten_signed_in_people_draw_and_teach_at_once(browser, postgres_url, tiny_data_dir, tmp_path):
    with signed_in_app(tmp_path, tiny_data_dir, postgres_url, STUDENTS) as url:
        pages = []
        for email in STUDENTS:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            sign_in(page, url, email)
            pages.append(page)
        for shift, page in enumerate(pages):  # every drawing a little different: ten examples
            _draw_a_seven(page, url, shift * 4)
        for page in pages:  # all ten strokes are in before any result is awaited
            _seven_shown(page)
        for page in pages:
            app_button(page, "Right").click()
        for page in pages:
            expect(page.get_by_text("Saved to My digits as a 7.")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        for page in pages:
            page.context.close()
    assert sorted(_authors(postgres_url)) == STUDENTS  # nothing lost, each with its author
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()


BOB = "bob@school.org"
LONG_RUN = "train?arch=cnn&epochs=50"  # long enough to wait behind


def link_shown(page) -> None:
    """Press Start as a person does, once the page shows the link's settings. A press while the
    page's first run was still drawing once queued an MLP at the fields' minimums (seen once in a
    full run, in the screenshot train-queue.png). That race is the Train page's, left for its own fix;
    this test is about the queue."""
    expect(page.get_by_role("radio", name="CNN")).to_be_checked(timeout=WAIT_MS)
    expect(page.get_by_role("spinbutton", name="Epochs")).to_have_value("50", timeout=WAIT_MS)


def test_runs_queue_one_at_a_time_and_each_person_sees_and_cancels_their_own(
    browser, postgres_url, tiny_data_dir, tmp_path
):
    ada, bob, teacher = (browser.new_context(viewport=VIEWPORT).new_page() for _ in range(3))
    with signed_in_app(
        tmp_path, tiny_data_dir, postgres_url, [ADA, BOB, TEACHER], users_may_train=True
    ) as url:
        for page, email in ((ada, ADA), (bob, BOB), (teacher, TEACHER)):
            sign_in(page, url, email)
        open_app(ada, url, LONG_RUN)
        link_shown(ada)
        ada.get_by_role("button", name="Start training").click()
        expect(app_button(ada, "Stop")).to_be_visible(timeout=WAIT_MS)
        open_app(bob, url, LONG_RUN)
        link_shown(bob)
        bob.get_by_role("button", name="Queue training").click()
        waits = bob.get_by_text("Your run waits for the one training now: number 1 of 1 in the queue.")
        expect(waits).to_be_visible(timeout=WAIT_MS)
        expect(app_button(bob, "Stop")).to_have_count(0)  # Ada's run is not Bob's to stop
        expect(bob.get_by_role("button", name="Queue training")).to_be_disabled()  # one waiting run each
        shot(bob, "train-queue")
        app_button(bob, "Cancel my waiting run").click()
        expect(waits).to_have_count(0, timeout=WAIT_MS)
        expect(bob.get_by_role("button", name="Queue training")).to_be_enabled(timeout=WAIT_MS)
        bob.get_by_role("button", name="Queue training").click()  # again, and now the owner cancels it
        expect(waits).to_be_visible(timeout=WAIT_MS)
        open_app(teacher, url, "train")
        expect(teacher.get_by_text(f"Waiting 1: {BOB}'s CNN run")).to_be_visible(timeout=WAIT_MS)
        app_button(teacher, "Cancel").click()
        expect(waits).to_have_count(0, timeout=WAIT_MS)
        expect(teacher.get_by_text(f"Waiting 1: {BOB}'s CNN run")).to_have_count(0, timeout=WAIT_MS)
        expect(app_button(teacher, f"Stop {ADA}'s run")).to_be_visible()  # an owner's Stop says whose
        told = bob.get_by_text(f"Your waiting run was cancelled by {TEACHER}.")
        expect(told).to_be_visible(timeout=WAIT_MS)  # not gone without a word
        shot(bob, "train-cancelled-by-owner")
        for page in (bob, teacher):  # their pages poll the run too: on 2 cores, CPU the run needs
            page.context.close()
        ada.reload()  # the starter, after a reload, still owns the run
        app_button(ada, "Stop").click(timeout=WAIT_MS)
        ended = ada.get_by_text(re.compile("Training (stopped early|finished)|before the first epoch"))
        try:
            expect(ended).to_be_visible(timeout=WAIT_MS)
        except AssertionError:  # say in a few lines what the page shows instead (CI shows a log's tail)
            alerts = ada.locator('[data-testid="stAlert"], [data-testid^="stBaseButton"]').all_inner_texts()
            raise AssertionError(f"Ada's run did not end; her page shows {alerts}") from None
        ada.context.close()
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()
