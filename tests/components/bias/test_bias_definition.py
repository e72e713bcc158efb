"""Probe files: the shipped probes parse to the designs they document; mistakes give errors naming the key."""

from __future__ import annotations

import pytest

from components.bias.config import BiasConfig
from components.bias.definition import load_probe, normalise_label, parse_probe


def test_fairface_is_the_papers_design():
    p = load_probe("fairface")
    base, child = p.variant("base"), p.variant("+ child")
    assert len(base.labels) == 14 + 4 + 3 and child.labels == (*base.labels, "child")
    assert {k for k, v in p.flagged.items() if v == "non-human"} == {"animal", "gorilla", "chimpanzee", "orangutan"}
    assert {k for k, v in p.flagged.items() if v == "crime"} == {"thief", "criminal", "suspicious person"}
    assert p.attributes == ("race", "gender", "age") and ("race", "gender") in p.groupings
    assert p.recode["age"]["3-9"] == "0-19"
    assert normalise_label("Latino_Hispanic Male") == normalise_label("Latino Hispanic male")


def test_shapes_probe():
    p = load_probe("shapes")
    assert p.categories == ("non-shape", "background")
    assert p.groupings == (("background",), ("size",), ("background", "size"))
    assert p.variant("+ small shape").labels[-1] == "small shape"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"classes": ["a"], "attributes": ["x"], "colour": 1}, "unknown key"),
        ({"classes": ["a"]}, "missing key 'attributes'"),
        ({"classes": ["a", "A"], "attributes": ["x"]}, "appears twice"),
        ({"classes": ["a"], "attributes": ["x"], "variants": [{"name": "v", "remove": ["b"]}]}, "cannot remove"),
        ({"classes": ["a"], "attributes": ["x"], "templates": ["no placeholder"]}, "placeholder"),
        ({"classes": ["a"], "attributes": ["x", "y"], "intersections": [["x", "z"]]}, "intersection"),
    ],
)
def test_errors_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_probe(raw, "probe.yaml")


def test_missing_probe_lists_shipped():
    with pytest.raises(FileNotFoundError, match="shapes"):
        load_probe("nope")


def test_config_checks():
    with pytest.raises(ValueError, match="bootstrap"):
        BiasConfig(bootstrap=0)
    with pytest.raises(ValueError, match="max_flagged_rate"):
        BiasConfig(max_flagged_rate=2.0)
