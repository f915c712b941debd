"""The shared plug-in registry: registered names, import paths and entry points, one-line refusals."""

from __future__ import annotations

import textwrap

import pytest

from designkit.errors import InputError
from designkit.kinds import KINDS, ExperimentKind
from designkit.registry import Registry, import_object


class Base:
    name = "base"


def _module(tmp_path, monkeypatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))


def _entry_point(tmp_path, monkeypatch, group: str, line: str, dist: str = "toyplugins") -> None:
    """A distribution's metadata on sys.path, as `pip install` leaves it: importlib.metadata finds it."""
    info = tmp_path / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{line}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_registered_names_resolve_and_a_taken_name_cannot_be_rebound():
    registry: Registry[type] = Registry("designkit.test-none", "widget", base=Base)

    @registry.register
    class Alpha(Base):
        name = "alpha"

    assert registry.get("alpha") is Alpha and "alpha" in registry and registry.names() == ["alpha"]
    registry.register(Alpha)  # the same object again is fine

    class Other(Base):
        name = "alpha"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Other)
    with pytest.raises(ValueError, match="subclass"):
        registry.register(int, "number")


def test_an_import_path_resolves_to_the_named_class(tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "mywidgets", """
        from tests_registry_base import Base
        class Gamma(Base):
            name = "gamma"
    """)
    (tmp_path / "tests_registry_base.py").write_text("class Base:\n    name = 'base'\n")
    import tests_registry_base

    registry = Registry("designkit.test-none", "widget", base=tests_registry_base.Base)
    assert registry.get("mywidgets:Gamma").name == "gamma"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("no_such_module_xyz:Thing", "expected an importable module 'no_such_module_xyz'"),
        ("badwidgets:Missing", "expected module 'badwidgets' to define 'Missing'"),
        ("badwidgets:NOT_A_CLASS", "subclass"),
        ("explodes:Anything", "to import cleanly, it raised RuntimeError: boom"),
        ("not an import path", "expected one of the widgets"),
    ],
)
def test_a_bad_import_path_is_refused_in_one_line_naming_file_and_key(tmp_path, monkeypatch, path, expected):
    _module(tmp_path, monkeypatch, "badwidgets", "NOT_A_CLASS = 3\n")
    _module(tmp_path, monkeypatch, "explodes", "raise RuntimeError('boom\\nsecond line')\n")
    registry = Registry("designkit.test-none", "widget", base=Base)
    registry.register(type("Known", (Base,), {"name": "known"}))
    with pytest.raises(InputError) as info:
        registry.get(path, file="design.yaml", field="experiments[0].kind")
    message = str(info.value)
    assert message.startswith("design.yaml: experiments[0].kind: ") and expected in message, message
    assert len(message.splitlines()) == 1


def test_entry_points_of_installed_packages_register_under_their_group(tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "plugged", """
        from designkit.kinds.texts import Texts
        class Plugged(Texts):
            name = "plugged"
    """)
    _entry_point(tmp_path, monkeypatch, "designkit.kinds", "plugged = plugged:Plugged")
    registry = Registry("designkit.kinds", "experiment kind", base=ExperimentKind)
    assert "plugged" in registry
    assert registry.get("plugged").__name__ == "Plugged"


def test_a_broken_entry_point_is_refused_naming_its_distribution(tmp_path, monkeypatch):
    _entry_point(tmp_path, monkeypatch, "designkit.test-broken", "broken = no_such_module_abc:Thing", dist="brokenplugins")
    registry = Registry("designkit.test-broken", "widget", base=Base)
    with pytest.raises(InputError, match="brokenplugins.*entry point broken"):
        registry.get("broken")


def test_the_kinds_registry_holds_the_built_in_kinds():
    assert {"contamination", "canary", "texts"} <= set(KINDS.names())
    assert import_object("designkit.kinds.texts:Texts") is KINDS.get("texts")


def test_a_design_naming_a_missing_kind_module_is_refused_in_one_line_and_writes_nothing(tmp_path, tiny_corpus, capsys):
    from tiny_designs import tiny_design, write_design

    from designkit.cli import main

    design = tiny_design(tiny_corpus)
    design["experiments"][0]["kind"] = "no_such_package_xyz.kinds:Mine"
    code = main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "d.yaml: experiments[0].kind: expected an importable module 'no_such_package_xyz.kinds'" in err
    assert not (tmp_path / "plan").exists()
