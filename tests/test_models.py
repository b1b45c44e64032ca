"""Model files: manifest, install, fetch, resolve, and `rearguard models`."""

from __future__ import annotations

import argparse
import hashlib
import stat
from pathlib import Path

import pytest

from device.cli import models as cli_models
from device.model_store import store as models
from device.model_store.store import ModelSpec, Source
from device.perception.detector import ModelError

REFERENCE_SHA = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
OFFLINE = "http://127.0.0.1:9/yolox_nano.onnx"  # the discard port: refused at once


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("REARGUARD_MODELS", str(d))
    return d


class Fake:
    """A tiny stand-in model registered under the name 'tiny'."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data = b"tiny model bytes " * 100
        self.alt = b"another export of the same tiny model " * 40
        self.src = tmp_path / "tiny.onnx"
        self.src.write_bytes(self.data)
        self.alt_src = tmp_path / "tiny-alt.onnx"
        self.alt_src.write_bytes(self.alt)
        self.monkeypatch = monkeypatch
        self.set_sources([Source(url=OFFLINE, sha256=sha(self.data), size=len(self.data))])

    def set_sources(self, sources: list[Source]) -> None:
        spec = ModelSpec(
            name="tiny", file="tiny.onnx", sha256=sha(self.data), size=len(self.data),
            licence="MIT", description="test model", input_size=64, sources=tuple(sources),
        )
        self.monkeypatch.setattr(models, "manifest", lambda: {"tiny": spec})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mdir: Path) -> Fake:
    return Fake(tmp_path, monkeypatch)


# --- manifest ------------------------------------------------------------------


def test_packaged_manifest_lists_both_yolox_nano_files() -> None:
    spec = models.manifest()["yolox_nano"]
    assert spec.file == "yolox_nano.onnx" and spec.input_size == 416
    assert spec.sha256 == REFERENCE_SHA and spec.size == 3_660_092
    assert spec.licence == "Apache-2.0"
    urls = [s.url for s in spec.sources]
    assert any("Kazuhito00/YOLOX-ONNX-TFLite-Sample" in u for u in urls)
    assert any("Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0" in u for u in urls)
    # Either export of the network is accepted under the one name.
    assert len(spec.accepted()) == 2 and REFERENCE_SHA in spec.accepted()


def test_bad_manifest_names_the_key() -> None:
    with pytest.raises(ModelError, match=r"m\.sha256"):
        models.parse_manifest('[m]\nfile="m.onnx"\nsha256="xyz"\nsize=1\nlicence="x"\ndescription="d"\ninput_size=416\n')
    with pytest.raises(ModelError, match=r"m\.sources\.0\.surl"):
        models.parse_manifest(
            f'[m]\nfile="m.onnx"\nsha256="{"0" * 64}"\nsize=1\nlicence="x"\ndescription="d"\ninput_size=416\n'
            '[[m.sources]]\nurl="http://x"\nsha256=""\nsurl="typo"\n'
        )
    with pytest.raises(ModelError, match="not valid TOML"):
        models.parse_manifest("[m")


def test_models_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REARGUARD_MODELS", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.models_dir() == tmp_path / "home" / ".local" / "share" / "rearguard" / "models"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert models.models_dir() == tmp_path / "xdg" / "rearguard" / "models"
    monkeypatch.setenv("REARGUARD_MODELS", str(tmp_path / "explicit"))
    assert models.models_dir() == tmp_path / "explicit"


# --- install -----------------------------------------------------------------------


def test_install_verifies_and_is_idempotent(fake: Fake, mdir: Path) -> None:
    path = models.install(fake.src, "tiny")
    assert path == mdir / "tiny.onnx" and path.read_bytes() == fake.data
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the device's service user
    before = path.stat()
    assert models.install(fake.src, "tiny") == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert models.install(path, "tiny") == path  # installing the installed copy is a no-op
    assert sorted(p.name for p in mdir.iterdir()) == ["tiny.onnx"]  # no temp files left


def test_install_accepts_any_digest_the_manifest_lists(fake: Fake, mdir: Path) -> None:
    fake.set_sources([Source(url=OFFLINE, sha256=sha(fake.alt), size=len(fake.alt))])
    path = models.install(fake.alt_src, "tiny")
    assert path.read_bytes() == fake.alt
    [m] = models.installed()
    assert m.verified and m.sha256 == sha(fake.alt)
    # and replacing it with the reference copy works too
    assert models.install(fake.src, "tiny").read_bytes() == fake.data


def test_install_refuses_wrong_hash_and_leaves_nothing(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"X" * len(fake.data))  # right size, wrong bytes
    with pytest.raises(ModelError) as err:
        models.install(bad, "tiny")
    msg = str(err.value)
    assert sha(bad.read_bytes()) in msg and sha(fake.data) in msg  # got and expected
    assert not mdir.exists() or not any(mdir.iterdir())


def test_install_refuses_wrong_size_naming_both(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.onnx"
    short.write_bytes(fake.data[:-1])
    with pytest.raises(ModelError, match=rf"{len(fake.data) - 1:,} bytes.*{len(fake.data):,}"):
        models.install(short, "tiny")
    assert not mdir.exists()


def test_install_replaces_a_corrupt_installed_copy(fake: Fake, mdir: Path) -> None:
    mdir.mkdir()
    (mdir / "tiny.onnx").write_bytes(b"garbage")
    [m] = models.installed()
    assert not m.verified
    models.install(fake.src, "tiny")
    assert (mdir / "tiny.onnx").read_bytes() == fake.data
    assert all(m.verified for m in models.installed())


def test_install_errors(fake: Fake, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        models.install(tmp_path / "missing.onnx", "tiny")
    with pytest.raises(ModelError, match="unknown model name 'nope'; known: tiny"):
        models.install(fake.src, "nope")


@pytest.mark.real_model
def test_install_the_real_model(shared: Path, mdir: Path) -> None:
    path = models.install(shared / "models" / "yolox_nano.onnx")
    assert path == mdir / "yolox_nano.onnx"
    assert models.verify(path) == REFERENCE_SHA
    assert models.resolve("yolox_nano") == path
    assert [(m.name, m.verified) for m in models.installed()] == [("yolox_nano", True)]


# --- resolve -----------------------------------------------------------------------


def test_resolve_names_and_paths(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"'tiny' is not installed.*rearguard models fetch tiny.*install PATH"):
        models.resolve("tiny")
    installed = models.install(fake.src, "tiny")
    assert models.resolve("tiny") == installed
    assert models.resolve(str(fake.src)) == fake.src
    with pytest.raises(ModelError, match="model file not found"):
        models.resolve(str(tmp_path / "elsewhere.onnx"))
    with pytest.raises(ModelError, match="neither a known model name"):
        models.resolve("yolox_huge")


# --- fetch ---------------------------------------------------------------------


def test_fetch_offline_gives_clear_error(fake: Fake, mdir: Path) -> None:
    second = "http://127.0.0.1:9/mirror/tiny.onnx"
    fake.set_sources([Source(url=OFFLINE, sha256=sha(fake.data)), Source(url=second, sha256=sha(fake.data))])
    with pytest.raises(ModelError) as err:
        models.fetch("tiny", timeout=5)
    msg = str(err.value)
    assert OFFLINE in msg and second in msg
    assert "rearguard models install PATH" in msg and "\n" not in msg
    assert not mdir.exists() or not any(mdir.iterdir())


def test_fetch_tries_sources_in_turn_and_verifies(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(b"not it")
    fake.set_sources([
        Source(url=OFFLINE, sha256=sha(fake.data)),
        Source(url=wrong.as_uri(), sha256=sha(fake.data)),  # serves the wrong bytes
        Source(url=fake.src.as_uri(), sha256=sha(fake.data), size=len(fake.data)),
    ])
    path = models.fetch("tiny", timeout=5)
    assert path == mdir / "tiny.onnx" and path.read_bytes() == fake.data


def test_fetch_skips_the_network_when_installed(fake: Fake, mdir: Path) -> None:
    models.install(fake.src, "tiny")
    assert models.fetch("tiny", timeout=5) == mdir / "tiny.onnx"  # sources are unreachable


def test_fetch_refuses_an_oversized_download(fake: Fake, mdir: Path) -> None:
    fake.set_sources([Source(url=fake.src.as_uri(), sha256=sha(fake.data), size=10)])
    with pytest.raises(ModelError, match="larger than the expected 10 bytes"):
        models.fetch("tiny", timeout=5)


def test_fetch_unverified_source_needs_consent(fake: Fake, mdir: Path) -> None:
    fake.set_sources([Source(url=fake.alt_src.as_uri(), sha256="")])
    with pytest.raises(ModelError, match=rf"no digest.*{sha(fake.alt)}.*--allow-unverified"):
        models.fetch("tiny", timeout=5)
    assert not mdir.exists() or not any(mdir.iterdir())
    path = models.fetch("tiny", allow_unverified=True, timeout=5)
    assert path.read_bytes() == fake.alt
    [m] = models.installed()
    assert not m.verified  # installed, but never passed off as verified


def test_fetch_unverified_source_serving_a_known_file_is_verified(fake: Fake, mdir: Path) -> None:
    fake.set_sources([Source(url=fake.src.as_uri(), sha256="")])
    path = models.fetch("tiny", timeout=5)
    assert [m.verified for m in models.installed()] == [True] and path.read_bytes() == fake.data


# --- the CLI ---------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rearguard")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_models.register(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rearguard models: error: ")
    return lines[0]


def test_cli_install_list_verify(fake: Fake, mdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("models", "list") == 0
    out = capsys.readouterr().out
    assert str(mdir) in out and "tiny" in out and "not installed" in out
    assert run_cli("models", "verify") == 1
    assert "no models installed" in one_error_line(capsys.readouterr().err)

    assert run_cli("models", "install", str(fake.src), "--name", "tiny") == 0
    assert str(mdir / "tiny.onnx") in capsys.readouterr().out
    assert run_cli("models", "list") == 0
    assert "installed, verified" in capsys.readouterr().out
    assert run_cli("models", "verify") == 0
    assert "tiny: ok" in capsys.readouterr().out
    assert run_cli("models", "verify", str(fake.src)) == 0
    assert run_cli("models", "verify", str(fake.alt_src)) == 1
    assert "not a model the manifest knows" in one_error_line(capsys.readouterr().err)

    (mdir / "tiny.onnx").write_bytes(b"tampered")
    assert run_cli("models", "verify") == 1
    out, err = capsys.readouterr()
    assert "MISMATCH" in out and "does not match" in one_error_line(err)


def test_cli_failures_are_one_line(fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("models", "install", str(tmp_path / "missing.onnx"), "--name", "tiny") == 1
    assert "no such model file" in one_error_line(capsys.readouterr().err)
    assert run_cli("models", "fetch", "tiny", "--timeout", "5") == 1
    assert OFFLINE in one_error_line(capsys.readouterr().err)
    assert run_cli("models", "fetch", "nope") == 1
    assert "unknown model name" in one_error_line(capsys.readouterr().err)
    assert run_cli("models", "verify", str(tmp_path)) == 1
    assert "is a directory" in one_error_line(capsys.readouterr().err)


def test_cli_fetch_ok_and_unverified(fake: Fake, mdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.set_sources([Source(url=fake.alt_src.as_uri(), sha256="")])
    assert run_cli("models", "fetch", "tiny") == 1
    assert "--allow-unverified" in one_error_line(capsys.readouterr().err)
    assert run_cli("models", "fetch", "tiny", "--allow-unverified") == 0
    assert "installed UNVERIFIED tiny" in capsys.readouterr().out


def test_cli_needs_a_models_subcommand() -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("models")
    assert exc.value.code == 2


# --- derived models (built locally, trusted through their build record) -------------------


def derive(fake: Fake, tmp_path: Path, kind: str = "dynamic", data: bytes = b"derived bytes " * 50) -> models.Derived:
    built = tmp_path / f"built-{kind}.onnx"
    built.write_bytes(data)
    return models.install_derived(
        built, f"tiny_{kind}", base="tiny", kind=kind, base_sha256=sha(fake.data), recipe={"how": "test"}
    )


def test_derived_names() -> None:
    assert models.split_derived("yolox_nano_dynamic") == ("yolox_nano", "dynamic")
    assert models.split_derived("yolox_nano_int8") == ("yolox_nano", "int8")
    assert models.split_derived("yolox_nano") is None
    assert models.split_derived("nothing_int8") is None


def test_install_derived_writes_a_build_record_and_resolves(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    d = derive(fake, tmp_path)
    assert d.path == mdir / "tiny_dynamic.onnx" and d.path.read_bytes() == b"derived bytes " * 50
    record = (mdir / "tiny_dynamic.onnx.json").read_text()
    assert sha(b"derived bytes " * 50) in record and sha(fake.data) in record
    assert d.base == "tiny" and d.kind == "dynamic" and d.recipe == {"how": "test"}
    assert {"onnx", "onnxruntime", "numpy"} <= set(d.tools)
    assert models.resolve("tiny_dynamic") == d.path
    listed = {m.name: m for m in models.installed()}
    assert listed["tiny_dynamic"].verified
    assert not list(mdir.glob("*.part"))


def test_derived_model_not_built_names_the_command(fake: Fake, mdir: Path) -> None:
    with pytest.raises(ModelError, match="not built.*rearguard models dynamic"):
        models.resolve("tiny_dynamic")
    with pytest.raises(ModelError, match="rearguard models quantize"):
        models.resolve("tiny_int8")


def test_derived_model_changed_or_unrecorded_is_refused(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    d = derive(fake, tmp_path)
    d.path.write_bytes(b"changed")
    with pytest.raises(ModelError, match="changed since.*rearguard models dynamic"):
        models.resolve("tiny_dynamic")
    assert not {m.name: m for m in models.installed()}["tiny_dynamic"].verified
    d = derive(fake, tmp_path)  # rebuilding repairs it
    models.sidecar(d.path).unlink()
    with pytest.raises(ModelError, match="missing"):
        models.resolve("tiny_dynamic")
    d = derive(fake, tmp_path)
    models.sidecar(d.path).write_text("{not json")
    with pytest.raises(ModelError, match="not a build record"):
        models.resolve("tiny_dynamic")


def test_derived_model_from_an_untrusted_base_is_refused(fake: Fake, mdir: Path, tmp_path: Path) -> None:
    built = tmp_path / "b.onnx"
    built.write_bytes(b"x" * 100)
    with pytest.raises(ModelError, match="not a tiny file the manifest trusts"):
        models.install_derived(built, "tiny_int8", base="tiny", kind="int8", base_sha256="0" * 64, recipe={})
    assert not (mdir / "tiny_int8.onnx").exists()
    # A record edited afterwards to name another base is caught when resolving.
    d = derive(fake, tmp_path, "int8")
    side = models.sidecar(d.path)
    side.write_text(side.read_text().replace(sha(fake.data), "0" * 64))
    with pytest.raises(ModelError, match="does not trust"):
        models.resolve("tiny_int8")


def test_cli_list_and_verify_show_derived_models(
    fake: Fake, mdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("models", "list") == 0
    assert "tiny_int8" in capsys.readouterr().out
    run_cli("models", "install", str(fake.src), "--name", "tiny")
    d = derive(fake, tmp_path)
    capsys.readouterr()
    assert run_cli("models", "list") == 0
    out = capsys.readouterr().out
    assert "tiny_dynamic" in out and "built, matches its build record" in out
    assert run_cli("models", "verify") == 0
    assert "tiny_dynamic: ok" in capsys.readouterr().out
    d.path.write_bytes(b"changed")
    assert run_cli("models", "verify") == 1
    assert "changed since" in one_error_line(capsys.readouterr().err)


def test_cli_quantize_without_images_is_one_line(fake: Fake, mdir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("models", "quantize", "tiny", "--images", str(tmp_path / "none")) == 1
    assert "no such directory" in one_error_line(capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert run_cli("models", "quantize", "tiny", "--images", str(tmp_path / "empty")) == 1
    assert "no .jpg" in one_error_line(capsys.readouterr().err)
    assert run_cli("models", "dynamic", "tiny") == 1  # base not installed
    assert "not installed" in one_error_line(capsys.readouterr().err)


def test_the_login_user_finds_the_model_the_installer_put_in_the_system_directory(
        fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/install-pi.sh installs into /usr/local/share/rearguard/models for the
    service; the login user's `rearguard` (no $REARGUARD_MODELS) looks in its own
    ~/.local/share first, then there, instead of asking for a second copy."""
    system = tmp_path / "system-models"
    monkeypatch.setenv("REARGUARD_MODELS", str(system))
    installed = models.install(fake.src, "tiny")  # as the installer does
    monkeypatch.delenv("REARGUARD_MODELS")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(models, "SYSTEM_MODELS_DIR", system)
    assert models.search_dirs() == [tmp_path / "home/.local/share/rearguard/models", system]
    assert models.resolve("tiny") == installed
    assert [(m.name, m.path, m.verified) for m in models.installed()] == [("tiny", installed, True)]
    assert run_cli("models", "list") == 0
    out = capsys.readouterr().out
    assert f"(then {system})" in out and f"installed, verified ({installed})" in out
    # the user's own copy comes first
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("REARGUARD_MODELS", str(tmp_path / "xdg" / "rearguard" / "models"))
    own = models.install(fake.src, "tiny")
    monkeypatch.delenv("REARGUARD_MODELS")
    assert models.resolve("tiny") == own
    # neither: the message names both places
    installed.unlink()
    own.unlink()
    with pytest.raises(ModelError, match=rf"looked for {tmp_path}/xdg/rearguard/models/tiny.onnx and {system}/tiny"):
        models.resolve("tiny")
    # $REARGUARD_MODELS is the one place it names
    monkeypatch.setenv("REARGUARD_MODELS", str(tmp_path / "only"))
    assert models.search_dirs() == [tmp_path / "only"]
