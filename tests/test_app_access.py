"""AppTests of who may do what: a visitor, a signed-in user and an owner (st.user as Streamlit's
AppTest sets it), a demo and a local run; and sessions whose buttons outlive their rights."""

# ruff: noqa: F811 (the AppTest fixtures are test_app's, imported)

import pytest
from streamlit.testing.v1 import AppTest

from app import signin
from app.cache import training_queue
from app.session import STORE_DOWN
from core.access import EVERYONE, LOCAL, USER, AccessError, Identity
from core.catalog import chosen_default
from core.corrections import add_example, content_hash, example_from_image, list_examples
from core.paths import SHIPPED_MODELS_DIR
from tests.conftest import ROOT, save_untrained_mlp, wait_until
from tests.drawings import encode, one, pen, seven
from tests.test_app import TIMEOUT, button, canvas, fresh_training_queue, models, store, texts, with_data  # noqa: F401

AUTH = {"client_id": "app", "client_secret": "never-shown-s3cret", "server_metadata_url": "http://127.0.0.1:9/x",
        "redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "cookie-s3cret"}  # fmt: skip
ACCESS = {"owners": ["teacher@school.org"], "allowed_domains": ["school.org"]}
TEACHER = {"is_logged_in": True, "email": "teacher@school.org", "name": "Ms Teacher"}
ADA = {"is_logged_in": True, "email": "ada@school.org", "name": "Ada"}
VISITOR = {"is_logged_in": False}


def open_as(page: str, user: dict, access: dict = ACCESS, auth: dict | None = AUTH) -> AppTest:
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    if auth is not None:
        app.secrets["auth"] = auth
    app.secrets["access"] = access
    app.user = dict(user)
    app.run()
    app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def _add(store, image, label: int, email: str | None) -> int:
    who = Identity(USER, email) if email else LOCAL
    return add_example(example_from_image(encode(image), label, "canvas"), store, by=who)[0]


def model_picker(app: AppTest):
    """The Models page's own model picker (not the sidebar's, nor the number readers')."""
    return next(s for s in app.selectbox if s.label == "Model")


def labels(app: AppTest) -> list[str]:
    return [b.proto.label for b in app.get("button")]


def test_a_visitor_draws_and_predicts_but_writes_nothing(with_data, canvas, store):
    canvas.png = encode(seven())
    app = open_as("app_pages/predict.py", VISITOR)
    assert app.metric[0].value == "7" and "Sign in" in labels(app)
    assert "Right" not in labels(app) and "Sign in (in the sidebar) to teach" in texts(app)
    for page in ("app_pages/my_digits.py", "app_pages/models.py", "app_pages/train.py"):
        app.switch_page(page).run()
        assert not app.exception and not {"Delete", "Delete reader"} & set(labels(app))
    assert button(app, "Start training").disabled and "Sign in (in the sidebar) to train" in texts(app)
    assert list_examples(store, by=LOCAL) == []
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # the class view
        app.switch_page("app_pages/class_view.py")


def test_a_user_teaches_as_themselves_and_sees_only_their_own_digits(with_data, canvas, store):
    bobs = _add(store, one(), 1, "bob@school.org")
    canvas.png = encode(seven())
    app = open_as("app_pages/predict.py", ADA)
    assert "Signed in as **Ada** (ada@school.org) · user" in texts(app)
    button(app, "Right").click().run()
    assert "Saved to My digits as a 7." in texts(app)
    assert [(e.label, e.author) for e in list_examples(store, by=LOCAL)] == [
        (1, "bob@school.org"),
        (7, "ada@school.org"),
    ]
    app.switch_page("app_pages/my_digits.py").run()
    assert app.metric[0].value == "1" and f"delete-{bobs}" not in [b.key for b in app.get("button")]
    assert "Import" not in labels(app) and "Export mine as zip" in [
        b.proto.label for b in app.get("download_button")
    ]
    app.switch_page("app_pages/models.py").run()
    assert not {"Delete", "Delete reader", "Make the default for everyone"} & set(labels(app))
    assert "Read numbers with it" in labels(app) or "Reading numbers" in labels(app)  # choosing is anyone's
    app.switch_page("app_pages/train.py").run()
    assert button(app, "Start training").disabled and "they have not let signed-in users train" in texts(app)


def test_an_owner_sees_everyone_and_makes_a_model_everyones_default(with_data, canvas, store, models):
    _add(store, one(), 1, "bob@school.org")
    _add(store, seven(), 7, "ada@school.org")
    save_untrained_mlp(models / "class.pt", {"test_accuracy": 9.0})
    app = open_as("app_pages/my_digits.py", TEACHER)
    assert app.metric[0].value == "2" and "bob@school.org" in texts(app) and "ada@school.org" in texts(app)
    app.switch_page("app_pages/class_view.py").run()
    assert not app.exception and "What `cnn.pt` gets wrong, by person" in [s.value for s in app.subheader]
    people = app.dataframe[0].value
    assert sorted(people["person"]) == ["ada@school.org", "bob@school.org"] and list(people["examples"]) == [
        1,
        1,
    ]
    app.switch_page("app_pages/models.py").run()
    model_picker(app).set_value(str(models / "class.pt")).run()
    button(app, "Make the default for everyone").click().run()
    assert chosen_default() == "class.pt" and "is now everyone's default model" in texts(app)
    newcomer = open_as("app_pages/home.py", VISITOR)  # a new session starts with the owners' choice
    assert newcomer.session_state["model_path"] == str(models / "class.pt")


def test_a_stale_owner_session_cannot_delete_once_its_person_is_no_owner(with_data, canvas, store, models):
    """A session drawn for an owner keeps its buttons until it reruns: a click made as someone who
    may not is refused by core, and nothing changes."""
    bobs = _add(store, one(), 1, "bob@school.org")
    save_untrained_mlp(models / "kept.pt", {"test_accuracy": 9.0})
    digits = open_as("app_pages/my_digits.py", TEACHER)
    before = content_hash(store)
    digits.user = dict(ADA)  # the same browser, now signed in as Ada
    button(digits, "Delete").click().run()
    assert f"ada@school.org may not change example {bobs}: it is someone else's" in texts(digits)
    assert content_hash(store) == before
    owner_models = open_as("app_pages/models.py", TEACHER)
    model_picker(owner_models).set_value(str(models / "kept.pt")).run()
    button(owner_models, "Delete").click().run()  # opens the confirmation
    owner_models.user = dict(ADA)
    owner_models.button(key="confirm-delete").click().run()  # the dialog's Delete, as Ada
    assert "ada@school.org may not delete models: only owners may" in texts(owner_models)
    assert (models / "kept.pt").exists()


DEMO = {"auth": None, "access": {"mode": "demo"}}


@pytest.mark.parametrize("secrets", [DEMO, {"auth": AUTH, "access": ACCESS}])
def test_a_demo_or_a_visitor_gets_no_training_and_no_class_view(with_data, canvas, store, secrets):
    who = TEACHER if secrets["auth"] is None else VISITOR  # in a demo, even a signed-in owner is a visitor
    app = open_as("app_pages/train.py", who, secrets["access"], secrets["auth"])
    assert button(app, "Start training").disabled and training_queue().job is None
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not a page for them
        app.switch_page("app_pages/class_view.py")


def test_a_local_run_says_who_you_are_and_an_outsider_is_turned_away(with_data, canvas, store):
    local = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT).run()
    assert "Local run: you are the owner." in texts(local)
    canvas.png = encode(seven())  # a reading, under which a visitor is told how to teach it
    outsider = open_as("app_pages/predict.py", {"is_logged_in": True, "email": "eve@gmail.com"})
    refused = "Not signed in: eve@gmail.com may not sign in here: this app is for @school.org accounts."
    assert refused in texts(outsider)
    assert "Your account may not teach" in texts(outsider) and "Sign in (in the sidebar)" not in texts(
        outsider
    )
    assert "Sign out" in labels(outsider) and "Right" not in labels(outsider)
    assert "never-shown-s3cret" not in texts(outsider) and "cookie-s3cret" not in texts(outsider)


def test_users_may_train_when_owners_allow_it_and_fine_tune_on_their_own_digits(with_data, canvas, store):
    for i in range(10):
        _add(store, pen([(100 + 3 * i, 60), (140, 220)]), 1, "ada@school.org")
    _add(store, one(), 4, "bob@school.org")
    app = open_as("app_pages/train.py", ADA, {**ACCESS, "users_may_train": True})
    assert not button(app, "Start training").disabled
    button(app, "Fine-tune the active model on my digits").click().run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    assert job.started_by.email == "ada@school.org" and job.request.whose == "ada@school.org"
    app.run()
    assert "Fine-tuned from `cnn.pt` on 10 corrections" in texts(app), texts(app)  # Bob's digit left out
    assert job.request.whose != EVERYONE and SHIPPED_MODELS_DIR.exists()


def test_the_class_view_fine_tunes_on_everyones_digits_and_reports_each_person(with_data, canvas, store):
    for i in range(6):
        _add(store, pen([(100 + 3 * i, 60), (140, 220)]), 1, "ada@school.org")
        _add(store, pen([(60, 100 + 3 * i), (220, 120)]), 4, "bob@school.org")
    app = open_as("app_pages/class_view.py", TEACHER)
    button(app, "Fine-tune on everyone's digits").click().run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    assert job.started_by.email == TEACHER["email"] and job.request.whose == EVERYONE
    app.run()
    assert not app.exception and "Fine-tuned from `cnn.pt` on 12 corrections" in texts(app), texts(app)
    report = app.dataframe[-1].value
    assert list(report["measured on"]) == [
        "the digits (12, trained on: too few to hold any out)", "MNIST test set",
        "ada@school.org (6)", "bob@school.org (6)",
    ]  # fmt: skip


def test_malformed_access_settings_make_everyone_a_visitor_and_say_why(with_data, canvas, store):
    app = open_as("app_pages/train.py", TEACHER, {"owners": "teacher@school.org"})  # not a list
    assert "The app's access settings are wrong, so nobody may change anything" in texts(app)
    assert button(app, "Start training").disabled
    app.switch_page("app_pages/my_digits.py").run()
    assert not app.exception and "Sign in (in the sidebar) to teach" in texts(app)


BOB = {"is_logged_in": True, "email": "bob@school.org", "name": "Bob"}
TRAINING_ALLOWED = {**ACCESS, "users_may_train": True}


def _start(app: AppTest, epochs: int, label: str) -> None:
    app.number_input(key="epochs-mlp").set_value(epochs)
    button(app, label).click().run()


def test_after_the_hand_over_each_person_sees_their_own_run_and_only_who_may_stop_is_offered_stop(
    with_data, canvas, store
):
    ada = open_as("app_pages/train.py", ADA, TRAINING_ALLOWED)
    bob = open_as("app_pages/train.py", BOB, TRAINING_ALLOWED)
    _start(ada, 1, "Start training")
    adas = training_queue().job
    _start(bob, 50, "Start training")  # drawn before Ada's run began: it queues
    adas.join(timeout=TIMEOUT)
    wait_until(lambda: training_queue().job is not adas, "Bob's run taking over")
    ada.run()
    assert "Training finished" in texts(ada) and button(ada, "Use as active model")
    assert "Another person's run is training on this server now." in texts(ada)
    assert not any(b.label.startswith("Stop") for b in ada.button)
    bob.run()
    assert button(bob, "Stop") and "Training finished" not in texts(bob)
    teacher = open_as("app_pages/train.py", TEACHER, TRAINING_ALLOWED)
    assert button(teacher, "Stop bob@school.org's run")
    visitor = open_as("app_pages/train.py", VISITOR, TRAINING_ALLOWED)
    assert "Another person's run is training on this server; you can watch its progress." in texts(visitor)


def test_a_waiting_run_cancelled_by_an_owner_is_told_to_its_owner(with_data, canvas, store):
    teacher = open_as("app_pages/train.py", TEACHER, TRAINING_ALLOWED)
    _start(teacher, 50, "Start training")
    ada = open_as("app_pages/train.py", ADA, TRAINING_ALLOWED)
    _start(ada, 1, "Queue training")
    teacher.run()
    button(teacher, "Cancel").click().run()
    ada.run()
    assert "Your waiting run was cancelled by teacher@school.org." in [w.value for w in ada.warning]
    ada.run()
    assert "was cancelled" not in texts(ada)  # said once


def test_queue_notices_keep_emails_as_written(with_data, canvas, store):
    ada = open_as("app_pages/train.py", ADA, TRAINING_ALLOWED)
    _start(ada, 50, "Start training")
    bob = open_as("app_pages/train.py", BOB, TRAINING_ALLOWED)
    ada.run()  # Ada's page shows Stop; Bob has no Stop to press, so his refusal is made in core
    with pytest.raises(AccessError, match="^bob@school.org may not stop ada@school.org's run"):
        training_queue().job.stop_by(Identity(USER, BOB["email"]))
    assert signin.sentence("bob@school.org may not stop ada@school.org's run") == (
        "bob@school.org may not stop ada@school.org's run."
    )
    assert not any(b.label.startswith("Stop") for b in bob.button)


def test_a_store_that_cannot_be_used_is_explained_to_owners_only(with_data, canvas, monkeypatch):
    monkeypatch.setenv("MNIST_STORE_URL", "postgresql+psycopg://app:pw@127.0.0.1:9/class")
    student = open_as("app_pages/my_digits.py", ADA)
    assert STORE_DOWN in texts(student) and "127.0.0.1" not in texts(student)
    owner = open_as("app_pages/my_digits.py", TEACHER)
    assert "127.0.0.1" in texts(owner) and ":pw@" not in texts(owner)  # how to fix it, never the password


def test_a_signed_in_owners_fine_tune_offer_counts_their_own_digits_and_says_how_many_everyone_has(
    with_data, canvas, store
):
    for i in range(3):
        _add(store, pen([(100 + 3 * i, 60), (140, 220)]), 1, "ada@school.org")
    _add(store, one(), 4, TEACHER["email"])
    teacher = open_as("app_pages/train.py", TEACHER)
    assert "you have added 1 (My digits shows everyone's 4: Class fine-tunes on them)." in texts(teacher)
