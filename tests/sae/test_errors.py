"""The one wording of a refused resume: what changed, at any depth of the recorded settings."""

from sae.errors import differences


def test_differences_names_nested_leaves_and_absent_keys():
    old = {"sizes": {"n_filters": 4, "dim": 8}, "seed": 0, "data": {"a": "x"}}
    new = {"sizes": {"n_filters": 8, "dim": 8}, "seed": 0, "data": {"a": "x", "b": "y"}}
    assert differences(old, new, "recorded") == "sizes.n_filters: 4 recorded, 8 now; data.b: (absent) recorded, 'y' now"


def test_differences_of_equal_settings_is_empty_and_none_is_a_value():
    assert differences({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}, "stored") == ""
    assert differences({"a": None}, {}, "stored") == "a: None stored, (absent) now"
