"""Shared setups: reading a link's query parameters and writing them back."""

from core.share import FIELDS, read_setup, setup_query

GOOD = {"arch": "cnn", "hidden": "64", "epochs": "3", "batch": "512", "lr": "0.0025", "augment": "none",
        "seed": "7"}  # fmt: skip


def test_a_full_link_is_read_and_written_back_unchanged():
    setup, notices = read_setup(GOOD)
    assert notices == []
    assert setup == {"arch": "cnn", "hidden": 64, "epochs": 3, "batch": 512, "lr": 0.0025, "augment": "none",
                     "seed": 7}  # fmt: skip
    assert setup_query(setup) == GOOD and list(setup_query(setup)) == list(FIELDS)


def test_bad_values_are_left_out_with_a_notice_each_and_the_rest_kept():
    link = {**GOOD, "epochs": "ten", "batch": "100", "lr": "nan", "seed": "-1", "hidden": "2.5",
            "arch": "resnet", "utm_source": "mail"}  # fmt: skip
    setup, notices = read_setup(link)
    assert setup == {"augment": "none"}
    assert len(notices) == 6 and not any("utm_source" in n for n in notices)  # others' parameters pass
    assert "epochs='ten' was ignored: it must be a whole number from 1 to 50" in notices
    assert "batch='100' was ignored: it must be one of 32, 64, 128, 256, 512, 1024" in notices
    assert any(n.startswith("lr='nan' was ignored") for n in notices)


def test_an_empty_link_sets_nothing():
    assert read_setup({}) == ({}, [])


def test_values_just_past_either_end_of_a_range_are_ignored_and_the_ends_kept():
    tops = {"hidden": "1024", "epochs": "50", "lr": "1", "seed": str(2**31 - 1)}
    assert read_setup(tops) == ({"hidden": 1024, "epochs": 50, "lr": 1.0, "seed": 2**31 - 1}, [])
    past = {"hidden": "1025", "epochs": "51", "lr": "1.5", "seed": str(2**31)}
    setup, notices = read_setup(past)
    assert setup == {} and len(notices) == 4
    assert "epochs='51' was ignored: it must be a whole number from 1 to 50" in notices
    below = {"hidden": "7", "epochs": "0", "lr": "0.000001"}
    assert read_setup(below)[0] == {} and len(read_setup(below)[1]) == 3
