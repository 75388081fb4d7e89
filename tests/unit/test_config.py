"""Configuration loading: what an operator's TOML becomes, and how each mistake is reported."""

from __future__ import annotations

import dataclasses
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from piano.config import (
    ConfigError,
    describe,
    load,
    load_file,
    non_negative,
    one_of,
    positive,
    setting,
)
from rpn.config import RpnConfig, load_config

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Inner:
    timeout: float = setting("Seconds to wait.", 5.0, positive)
    mode: str = setting("How to go.", "fast", one_of("fast", "slow"))


@dataclass(frozen=True, slots=True)
class Sample:
    name: str = setting("A name, required.")
    files: tuple[Path, ...] = setting("Some files.", ())
    key: Path | None = setting("An optional file.", None)
    count: int = setting("How many.", 1, non_negative)
    enabled: bool = setting("On or off.", True)
    inner: Inner = setting("A nested table.", default_factory=Inner)
    options: dict[str, Any] = setting("Free-form options.", default_factory=dict)
    limits: dict[str, int] = setting("Named limits.", default_factory=dict)


def refusal(data: dict[str, Any], cls: type[Any] = Sample) -> str:
    with pytest.raises(ConfigError) as caught:
        load(cls, data, Path("/etc/piano"))
    return str(caught.value)


# piano.config: the generic loader


def test_a_minimal_table_gets_every_default() -> None:
    loaded = load(Sample, {"name": "relay"}, Path("/etc/piano"))
    assert loaded == Sample(name="relay", inner=Inner(), options={}, limits={})


def test_loaded_configuration_cannot_be_changed_afterwards() -> None:
    loaded = load(Sample, {"name": "relay"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "colour": "red"}, "colour: unknown key (known: "),
        ({"name": "x", "inner": {"timout": 3}}, "inner.timout: unknown key (known: mode, timeout)"),
    ],
)
def test_unknown_keys_are_refused_with_their_dotted_path(
    data: dict[str, Any], message: str
) -> None:
    assert refusal(data).startswith(message)


def test_unknown_key_message_lists_the_known_keys() -> None:
    message = refusal({"name": "x", "nme": "y"})
    for known in ("count", "enabled", "files", "inner", "key", "name"):
        assert known in message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": 3}, "name: must be a string"),
        ({"name": "x", "count": 1.5}, "count: must be an integer"),
        ({"name": "x", "count": True}, "count: must be an integer"),
        ({"name": "x", "enabled": "yes"}, "enabled: must be true or false"),
        ({"name": "x", "enabled": 1}, "enabled: must be true or false"),
        ({"name": "x", "inner": {"timeout": "5"}}, "inner.timeout: must be a number"),
        ({"name": "x", "inner": {"timeout": False}}, "inner.timeout: must be a number"),
        ({"name": "x", "inner": 3}, "inner: must be a table"),
        ({"name": "x", "files": "a.pem"}, "files: must be a list"),
        ({"name": "x", "files": ["a.pem", 3]}, "files[1]: must be a file path"),
        ({"name": "x", "files": [""]}, "files[0]: must be a file path"),
        ({"name": "x", "key": 7}, "key: must be a file path"),
        ({"name": "x", "options": ["a"]}, "options: must be a table"),
        ({"name": "x", "limits": {"a": "many"}}, "limits.a: must be an integer"),
    ],
)
def test_values_of_the_wrong_type_are_refused_with_their_path(
    data: dict[str, Any], message: str
) -> None:
    assert refusal(data) == message


def test_an_integer_is_accepted_where_a_number_is_expected() -> None:
    loaded = load(Sample, {"name": "x", "inner": {"timeout": 2}})
    assert loaded.inner.timeout == 2.0
    assert isinstance(loaded.inner.timeout, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "inner": {"timeout": 0}}, "inner.timeout: must be > 0"),
        ({"name": "x", "inner": {"timeout": -1.5}}, "inner.timeout: must be > 0"),
        (
            {"name": "x", "inner": {"timeout": float("nan")}},
            "inner.timeout: must be a finite number",
        ),
        ({"name": "x", "count": -1}, "count: must be >= 0"),
        ({"name": "x", "inner": {"mode": "medium"}}, "inner.mode: must be one of fast, slow"),
    ],
)
def test_values_breaking_a_check_are_refused_with_their_path(
    data: dict[str, Any], message: str
) -> None:
    assert refusal(data) == message


def test_boundary_values_pass_their_checks() -> None:
    loaded = load(Sample, {"name": "x", "count": 0, "inner": {"timeout": 0.001, "mode": "slow"}})
    assert (loaded.count, loaded.inner.timeout, loaded.inner.mode) == (0, 0.001, "slow")


def test_a_missing_required_key_is_named() -> None:
    assert refusal({}) == "name: required"


def test_a_missing_table_with_required_keys_names_the_first_nested_key() -> None:
    message = refusal({"upstream": {}}, RpnConfig)
    assert message == "tls.certificate: required"


def test_relative_paths_resolve_against_the_configuration_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "piano"
    folder.mkdir(parents=True)
    config = folder / "sample.toml"
    config.write_text(
        textwrap.dedent(
            """
            name = "relay"
            files = ["ca.pem", "../shared/other.pem", "/abs/ca.pem"]
            key = "./keys/server.key"
            """
        )
    )
    loaded = load_file(Sample, config)
    assert loaded.files == (
        folder.resolve() / "ca.pem",
        tmp_path.resolve() / "etc" / "shared" / "other.pem",
        Path("/abs/ca.pem"),
    )
    assert loaded.key == folder.resolve() / "keys" / "server.key"


def test_relative_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sample.toml"
    config.write_text('name = "relay"\nkey = "server.key"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_file(Sample, Path("..") / "sample.toml").key == tmp_path.resolve() / "server.key"


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('name = "relay\n')
    with pytest.raises(ConfigError) as caught:
        load_file(Sample, config)
    assert str(caught.value).startswith(f"{config}: not valid TOML (")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_file(Sample, config)
    assert str(caught.value) == f"{config}: cannot read (No such file or directory)"


def test_a_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('# Relais de d\u00e9veloppement\nname = "relay"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_file(Sample, config)
    assert str(caught.value).startswith(f"{config}:")


def test_describe_lists_every_key_with_type_default_and_help() -> None:
    assert list(describe(Sample)) == [
        ("name", "string", "(required)", "A name, required."),
        ("files", "list of path", "()", "Some files."),
        ("key", "path", "(none)", "An optional file."),
        ("count", "integer", "1", "How many."),
        ("enabled", "boolean", "True", "On or off."),
        ("inner.timeout", "number", "5.0", "Seconds to wait."),
        ("inner.mode", "string", "'fast'", "How to go."),
        ("options", "table", "{}", "Free-form options."),
        ("limits", "table", "{}", "Named limits."),
    ]


def _leaf_keys(cls: type[Any], prefix: str = "") -> list[str]:
    """Every setting of *cls*, found by walking the dataclasses directly."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        path = f"{prefix}{field.name}"
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else None
        if dataclasses.is_dataclass(tp):
            keys += _leaf_keys(tp, path + ".")  # type: ignore[arg-type]
        elif item is not None and dataclasses.is_dataclass(item):
            keys += [path, *_leaf_keys(item, path + "[].")]  # type: ignore[arg-type]
        else:
            keys.append(path)
    return keys


def test_describe_of_the_relay_configuration_documents_every_setting() -> None:
    described = list(describe(RpnConfig))
    assert [key for key, *_ in described] == _leaf_keys(RpnConfig)
    assert all(help_text.strip() for *_, help_text in described)
    keys = {key for key, *_ in described}
    assert {
        "upstream.breaker.jitter",
        "http.read_timeout",
        "establishments.legal_entities[].finess",
        "establishments.legal_entities[].sites",
    } <= keys


# rpn.config: the relay's schema and cross-field rules

MINIMAL = """
[tls]
certificate = "pki/server.pem"
private_key = "pki/server.key"
ca_certificates = ["pki/ca.pem"]

[upstream]
certificate = "pki/client.pem"
private_key = "pki/client.key"
ca_certificates = ["pki/ca.pem"]

[annuaire]
static_file = "annuaire.toml"
"""


def write_config(tmp_path: Path, extra: str = "", base: str = MINIMAL) -> Path:
    config = tmp_path / "rpn.toml"
    config.write_text(base + textwrap.dedent(extra))
    return config


def config_refusal(tmp_path: Path, extra: str = "", base: str = MINIMAL) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, extra, base))
    return str(caught.value)


def test_a_minimal_relay_configuration_loads_with_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.tls.certificate == tmp_path.resolve() / "pki" / "server.pem"
    assert config.annuaire.static_file == tmp_path.resolve() / "annuaire.toml"
    assert config.http.paths == ("/roc",)
    assert config.http.max_body_bytes == 1 << 20
    assert config.upstream.breaker.jitter == 0.2
    assert config.establishments.legal_entities == ()
    assert config.tls.finess_attribute == "OU"


def test_the_development_configuration_loads() -> None:
    folder = REPO / "etc" / "dev"
    config = load_config(folder / "rpn.toml")
    assert config.tls.certificate == REPO / ".dev" / "pki" / "rpn-server.pem"
    assert config.upstream.ca_certificates == (REPO / ".dev" / "pki" / "ca.pem",)
    assert config.annuaire.static_file == folder / "annuaire.toml"
    assert config.annuaire.service_url == "https://127.0.0.1:8444/roc/ANN"
    assert [(e.finess, e.sites) for e in config.establishments.legal_entities] == [
        ("990000010", ("990000028",)),
        ("990000036", ("990000044",)),
    ]


@pytest.mark.parametrize("jitter", ["1", "1.0", "1.5", "-0.1"])
def test_breaker_jitter_outside_zero_to_one_is_refused(tmp_path: Path, jitter: str) -> None:
    message = config_refusal(tmp_path, f"[upstream.breaker]\njitter = {jitter}\n", MINIMAL)
    assert message == "upstream.breaker.jitter: must be >= 0 and < 1"


def test_breaker_jitter_just_below_one_is_accepted(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "[upstream.breaker]\njitter = 0.99\n"))
    assert config.upstream.breaker.jitter == 0.99


def test_breaker_open_max_below_open_base_is_refused_with_its_path(tmp_path: Path) -> None:
    message = config_refusal(tmp_path, "[upstream.breaker]\nopen_base = 10.0\nopen_max = 5.0\n")
    assert message == "upstream.breaker.open_max: must be >= open_base"


def test_an_infinite_breaker_open_max_is_refused_with_its_path(tmp_path: Path) -> None:
    message = config_refusal(tmp_path, "[upstream.breaker]\nopen_max = inf\n")
    assert message.startswith("upstream.breaker.open_max:")


def test_an_annuaire_with_neither_file_nor_service_is_refused(tmp_path: Path) -> None:
    base = MINIMAL.replace('static_file = "annuaire.toml"', "ttl = 60.0")
    assert config_refusal(tmp_path, "", base) == "annuaire: set static_file, service_url or both"


def test_an_annuaire_service_without_static_file_is_enough(tmp_path: Path) -> None:
    base = MINIMAL.replace(
        'static_file = "annuaire.toml"', 'service_url = "https://ann.example/roc/ANN"'
    )
    config = load_config(write_config(tmp_path, "", base))
    assert config.annuaire.static_file is None


def test_a_plain_http_annuaire_service_is_refused(tmp_path: Path) -> None:
    base = MINIMAL.replace(
        'static_file = "annuaire.toml"', 'service_url = "http://ann.example/roc/ANN"'
    )
    message = config_refusal(tmp_path, "", base)
    assert message == "annuaire.service_url: must be an https:// URL"


def test_a_bad_finess_among_the_sites_is_refused_with_its_index(tmp_path: Path) -> None:
    message = config_refusal(
        tmp_path,
        """
        [[establishments.legal_entities]]
        finess = "990000010"
        sites = ["990000028", "990000029"]
        """,
    )
    assert message.startswith("establishments.legal_entities[0].sites: [1]: ")
    assert "FINESS check digit is wrong" in message
    assert "990000029" not in message


def test_sites_must_be_strings(tmp_path: Path) -> None:
    message = config_refusal(
        tmp_path,
        '[[establishments.legal_entities]]\nfiness = "990000010"\nsites = [990000028]\n',
    )
    assert message == "establishments.legal_entities[0].sites[0]: must be a string"


def test_a_legal_entity_without_sites_is_refused(tmp_path: Path) -> None:
    message = config_refusal(
        tmp_path, '[[establishments.legal_entities]]\nfiness = "990000010"\nsites = []\n'
    )
    assert message.startswith("establishments.legal_entities[0].sites: must list at least one")


def test_a_site_registered_under_two_legal_entities_is_refused(tmp_path: Path) -> None:
    message = config_refusal(
        tmp_path,
        """
        [[establishments.legal_entities]]
        finess = "990000010"
        sites = ["990000028"]
        [[establishments.legal_entities]]
        finess = "990000036"
        sites = ["990000044", "990000028"]
        """,
    )
    assert message == (
        "establishments.legal_entities[1].sites: site 990000028 is already registered "
        "under 990000010"
    )


def test_the_old_flat_allow_list_is_refused_with_how_to_write_the_registration(
    tmp_path: Path,
) -> None:
    message = config_refusal(tmp_path, '[establishments]\nallowed = ["990000028"]\n')
    assert message.startswith("establishments.allowed: the flat allow-list is replaced")
    assert "[[establishments.legal_entities]]" in message
    assert 'sites = ["<FINESS géographique>"' in message


@pytest.mark.parametrize(
    ("paths", "problem"),
    [("[]", "must list at least one path"), ('["/roc/"]', "'/roc/': must start with /")],
)
def test_http_paths_must_be_absolute_without_trailing_slash(
    tmp_path: Path, paths: str, problem: str
) -> None:
    message = config_refusal(tmp_path, f"[http]\npaths = {paths}\n")
    assert message.startswith(f"http.paths: {problem}")


def test_an_unknown_finess_attribute_is_refused(tmp_path: Path) -> None:
    base = MINIMAL.replace(
        'ca_certificates = ["pki/ca.pem"]\n',
        'ca_certificates = ["pki/ca.pem"]\nfiness_attribute = "DC"\n',
        1,
    )
    message = config_refusal(tmp_path, "", base)
    assert message.startswith("tls.finess_attribute: must be one of OU, O, CN")


def test_an_unknown_key_deep_in_the_relay_configuration_is_named(tmp_path: Path) -> None:
    message = config_refusal(tmp_path, "[upstream.breaker]\nthreshold = 3\n")
    assert message.startswith("upstream.breaker.threshold: unknown key (known: ")
