"""Who may do what, decided in core: roles from the secrets, and every write to the store refused
for a role that may not do it, on SQLite and on a real PostgreSQL, with the store left unchanged."""

import pytest

from core.access import (
    ANONYMOUS,
    EVERYONE,
    LOCAL,
    OWNER,
    USER,
    VISITOR,
    AccessError,
    AccessSettings,
    Identity,
    identify,
)
from core.catalog import chosen_default, default_among, delete_checkpoint, list_checkpoints, set_default_model
from core.corrections import (
    add_example,
    content_hash,
    copy_store,
    counts,
    counts_by_author,
    delete,
    example_from_image,
    list_examples,
    relabel,
)
from core.corrections_zip import export_zip, import_zip, read_zip, zip_bytes
from tests.conftest import save_untrained_mlp
from tests.drawings import encode, one, pen, seven

SECRETS = {
    "auth": {"client_id": "app", "client_secret": "s3cret", "server_metadata_url": "http://127.0.0.1:1/x"},
    "access": {"owners": ["Teacher@School.org"], "allowed_domains": ["school.org"]},
}
ADA = Identity(USER, "ada@school.org")
BOB = Identity(USER, "bob@school.org")
TEACHER = Identity(OWNER, "teacher@school.org", may_train=True)


def _signed_in(email: str, **claims) -> dict:
    return {"is_logged_in": True, "email": email, **claims}


def test_roles_come_from_the_secrets_and_the_sign_in():
    settings = AccessSettings.from_secrets(SECRETS)
    assert identify(settings, None) == ANONYMOUS  # not signed in: a visitor
    assert identify(settings, _signed_in("teacher@school.org", name="T")) == Identity(
        OWNER, "teacher@school.org", "T", may_train=True
    )
    ada = identify(settings, _signed_in("Ada@School.org"))
    assert (ada.role, ada.email, ada.may_train) == (USER, "ada@school.org", False)
    trains = AccessSettings.from_secrets(
        {**SECRETS, "access": {**SECRETS["access"], "users_may_train": True}}
    )
    assert identify(trains, _signed_in("ada@school.org")).may_train


def test_an_account_outside_the_allowed_domains_or_unverified_is_turned_away_with_a_message():
    settings = AccessSettings.from_secrets(SECRETS)
    with pytest.raises(AccessError, match=r"eve@gmail.com may not sign in here: this app is for @school.org"):
        identify(settings, _signed_in("eve@gmail.com"))
    with pytest.raises(AccessError, match="not verified"):
        identify(settings, _signed_in("ada@school.org", email_verified=False))
    with pytest.raises(AccessError, match="no email address"):
        identify(settings, {"is_logged_in": True, "sub": "123"})
    owners_anywhere = {**SECRETS, "access": {**SECRETS["access"], "owners": ["head@gmail.com"]}}
    assert identify(AccessSettings.from_secrets(owners_anywhere), _signed_in("head@gmail.com")).owner


def test_without_auth_the_one_user_is_the_owner_and_a_demo_makes_everyone_a_visitor():
    assert identify(AccessSettings.from_secrets({}), None) == LOCAL and LOCAL.owner and LOCAL.may_train
    demo = AccessSettings.from_secrets({"access": {"mode": "demo"}})
    assert identify(demo, _signed_in("teacher@school.org")) == ANONYMOUS and ANONYMOUS.role == VISITOR


@pytest.mark.parametrize(
    "access, why",
    [
        ({"owners": "teacher@school.org"}, "lists of text"),
        ({"mode": "public"}, "mode must be"),
        ("x", "a table"),
    ],
)
def test_malformed_access_settings_are_refused_in_one_line(access, why):
    with pytest.raises(AccessError, match=why):
        AccessSettings.from_secrets({"access": access})


def _add(image, label: int, by: Identity) -> int:
    return add_example(example_from_image(encode(image), label, "canvas"), by=by)[0]


def _class(store) -> dict[str, int]:
    """A store with one example each of Ada, Bob and the local user."""
    return {
        "ada": _add(seven(), 7, ADA),
        "bob": _add(one(), 1, BOB),
        "local": _add(pen([(90, 60), (160, 220)]), 4, LOCAL),
    }


def test_every_example_records_who_added_it_and_a_visitor_adds_nothing(store):
    _class(store)
    with pytest.raises(AccessError, match="a visitor may not add examples: sign in first"):
        _add(seven(), 3, ANONYMOUS)
    stored = list_examples(by=TEACHER)
    assert [(e.label, e.author) for e in stored] == [(7, "ada@school.org"), (1, "bob@school.org"), (4, None)]
    assert counts_by_author(by=TEACHER) == {
        "ada@school.org": {d: int(d == 7) for d in range(10)},
        "bob@school.org": {d: int(d == 1) for d in range(10)},
        None: {d: int(d == 4) for d in range(10)},
    }
    exported = read_zip(zip_bytes(stored))  # the export keeps every author
    assert [e.author for e in exported] == ["ada@school.org", "bob@school.org", None]


def test_a_user_sees_changes_and_exports_only_their_own_examples(store, tmp_path):
    ids = _class(store)
    assert [e.id for e in list_examples(by=ADA, whose=ADA.email)] == [ids["ada"]]
    assert counts(by=ADA, whose=ADA.email)[7] == 1 and sum(counts(by=ADA, whose=ADA.email).values()) == 1
    relabel(ids["ada"], 2, by=ADA)
    export_zip(tmp_path / "ada.zip", by=ADA, whose=ADA.email)
    assert [e.label for e in read_zip((tmp_path / "ada.zip").read_bytes())] == [2]
    delete(ids["ada"], by=ADA)
    assert [e.author for e in list_examples(by=TEACHER)] == ["bob@school.org", None]


def test_every_write_a_role_may_not_make_is_refused_by_core_and_changes_nothing(store, tmp_path):
    ids = _class(store)
    archive = zip_bytes(list_examples(by=TEACHER))
    before = content_hash()
    refused = {
        "relabel another's": lambda: relabel(ids["bob"], 2, by=ADA),
        "delete another's": lambda: delete(ids["bob"], by=ADA),
        "delete the local user's": lambda: delete(ids["local"], by=ADA),
        "a visitor relabels": lambda: relabel(ids["ada"], 2, by=ANONYMOUS),
        "a visitor deletes": lambda: delete(ids["ada"], by=ANONYMOUS),
        "import a zip": lambda: import_zip(archive, by=ADA),
        "export everyone's": lambda: export_zip(tmp_path / "all.zip", by=ADA, whose=EVERYONE),
        "list another's": lambda: list_examples(by=ADA, whose=BOB.email),
        "count everyone's": lambda: counts(by=ADA, whose=EVERYONE),
        "a visitor lists": lambda: list_examples(by=ANONYMOUS, whose=None),
        "the class view": lambda: counts_by_author(by=ADA),
        "copy the store": lambda: copy_store(store, tmp_path / "copy.sqlite", by=ADA),
    }
    for what, write in refused.items():
        with pytest.raises(AccessError, match="may not"):
            write()
        assert content_hash() == before, what
    assert not (tmp_path / "all.zip").exists() and not (tmp_path / "copy.sqlite").exists()


def test_owners_change_anyones_examples_and_import_zips(store):
    ids = _class(store)
    archive = zip_bytes(list_examples(by=TEACHER))
    relabel(ids["ada"], 1, by=TEACHER)
    delete(ids["bob"], by=TEACHER)
    delete(ids["local"], by=LOCAL)  # the local user (and the CLI) is an owner
    assert [(e.label, e.author) for e in list_examples(by=TEACHER)] == [(1, "ada@school.org")]
    assert import_zip(archive, by=TEACHER)["imported"] == 3  # Ada's 7, Bob's 1 and the 4, with their authors
    assert sorted((e.label, e.author or "") for e in list_examples(by=TEACHER)) == [
        (1, "ada@school.org"), (1, "bob@school.org"), (4, ""), (7, "ada@school.org"),
    ]  # fmt: skip


def test_only_owners_delete_models_or_choose_everyones_default(store):
    save_untrained_mlp("store:class.pt", {"test_accuracy": 9.0})
    infos = list_checkpoints()
    stored = next(info for info in infos if info.path == "store:class.pt")
    for who in (ADA, ANONYMOUS):
        with pytest.raises(AccessError, match="only owners may"):
            delete_checkpoint(stored.path, by=who)
        with pytest.raises(AccessError, match="only owners may"):
            set_default_model(stored.path, by=who)
    assert chosen_default() is None and "store:class.pt" in [i.path for i in list_checkpoints()]
    assert default_among(infos).path != stored.path  # the most accurate, until an owner chooses
    set_default_model(stored.path, by=TEACHER)
    assert chosen_default() == "store:class.pt" and default_among(list_checkpoints()).path == stored.path
    delete_checkpoint(stored.path, by=TEACHER)
    assert default_among(list_checkpoints()).path != stored.path  # a deleted default gives way


def test_a_store_of_the_version_before_sign_in_is_migrated_and_its_examples_are_the_local_users(store):
    from alembic import command
    from sqlalchemy import create_engine, text

    from core.store.engine import _alembic_config

    engine = create_engine(store)
    with engine.begin() as connection:  # the schema as the app before this one left it
        command.upgrade(_alembic_config(connection), "0002")
        connection.execute(text(
            "INSERT INTO examples (image_sha256, label, source, created_at, png, input28) "
            "VALUES ('ab', 3, 'canvas', '2026-12-01T00:00:00+00:00', :png, :pixels)"
        ), {"png": encode(seven()), "pixels": bytes(784 * 4)})  # fmt: skip
    engine.dispose()
    (old,) = list_examples(by=TEACHER)  # the first use migrates it to 0003
    assert (old.label, old.author) == (3, None) and counts_by_author(by=TEACHER) == {
        None: {d: int(d == 3) for d in range(10)}
    }
    with pytest.raises(AccessError):  # the local user's example is not Ada's to change
        delete(old.id, by=ADA)
