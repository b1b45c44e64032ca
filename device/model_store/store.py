"""Model files: where they live, which bytes are trusted, and getting them there.

The list of known models is data (models/manifest.toml, shipped in the
package as `device.models_data`). A file is trusted for a name when its
sha256 is one the manifest lists for that name: the reference copy or any
source's. Installing copies into `models_dir()` atomically, so the device
never sees half a model.

Derived models (`<base>_dynamic`, `<base>_int8`) are built on the device by
`rearguard models dynamic|quantize` (device/model_store/derive.py) from a trusted base
file. Their bytes depend on the tool versions, so no manifest can list them:
each is installed with a sidecar `<file>.json` recording its own sha256, the
base model's sha256 and the tools that made it, and is trusted when its
bytes match the sidecar and the sidecar's base is one the manifest trusts.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import platform
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device.core.files import FileRefused, open_regular
from device.perception.detector import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "yolox_nano"
FETCH_TIMEOUT_S = 30.0
_UNKNOWN_SIZE_CAP = 512 * 1024 * 1024  # a download with no listed size stops here
_SHA256 = r"^([0-9a-f]{64})?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    url: str = Field(min_length=1, description="http(s) or file URL")
    sha256: str = Field(pattern=_SHA256, description="'' = not verified")
    size: int = Field(0, ge=0, description="bytes; 0 = unknown")

    @property
    def verified(self) -> bool:
        return bool(self.sha256)


class ModelSpec(_Strict):
    name: str
    file: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0)
    licence: str
    description: str
    input_size: int = Field(gt=0)
    sources: tuple[Source, ...] = ()

    def accepted(self) -> dict[str, int]:
        """sha256 -> size of every file trusted under this name."""
        out = {self.sha256: self.size}
        for s in self.sources:
            if s.sha256:
                out.setdefault(s.sha256, s.size)
        return out


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path
    sha256: str
    verified: bool  # the sha256 is one the manifest lists for this name (or, derived, its sidecar's)


DERIVED_KINDS = ("dynamic", "int8")
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Derived:
    """A derived model as its sidecar records it."""

    name: str
    base: str
    kind: str
    path: Path
    sha256: str
    size: int
    base_sha256: str
    tools: dict[str, str]
    recipe: dict[str, Any]


# --- manifest ----------------------------------------------------------------


def _manifest_text() -> str:
    try:
        return resources.files("device.models_data").joinpath("manifest.toml").read_text("utf-8")
    except ModuleNotFoundError:
        # A source checkout used without `pip install -e .`: the data package
        # is only a mapping made at install time, so read the file itself.
        here = Path(__file__).resolve().parents[1] / "models" / "manifest.toml"
        if here.is_file():
            return here.read_text("utf-8")
        raise ModelError(
            "the model manifest is missing from this installation (device.models_data/manifest.toml); "
            "reinstall rearguard"
        ) from None


def parse_manifest(text: str) -> dict[str, ModelSpec]:
    """Manifest TOML -> specs by name; ModelError naming the bad key."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"model manifest is not valid TOML: {err}") from None
    specs = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ModelError(f"model manifest: {name!r} must be a table")
        try:
            specs[name] = ModelSpec.model_validate({"name": name, **body})
        except ValidationError as err:
            e = err.errors()[0]
            key = ".".join(str(p) for p in e["loc"])
            raise ModelError(f"model manifest: {name}.{key}: {e['msg']}") from None
    return specs


@lru_cache(maxsize=1)
def manifest() -> dict[str, ModelSpec]:
    return parse_manifest(_manifest_text())


def spec(name: str) -> ModelSpec:
    specs = manifest()
    if name not in specs:
        raise ModelError(f"unknown model name {name!r}; known: {', '.join(sorted(specs)) or '(none)'}")
    return specs[name]


# --- places and digests -----------------------------------------------------------


def models_dir() -> Path:
    """$REARGUARD_MODELS, else $XDG_DATA_HOME/rearguard/models, else
    ~/.local/share/rearguard/models (not created here)."""
    if os.environ.get("REARGUARD_MODELS"):
        return Path(os.environ["REARGUARD_MODELS"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "rearguard" / "models"
    return Path.home() / ".local" / "share" / "rearguard" / "models"


# Where scripts/install-pi.sh puts the models for the service: searched after
# the user's own directory, so the login user's `rearguard` finds the
# installed model without a second copy.
SYSTEM_MODELS_DIR = Path("/usr/local/share/rearguard/models")


def search_dirs() -> list[Path]:
    """Where an installed model is looked for, in order: models_dir(), then
    (unless $REARGUARD_MODELS names the one place) SYSTEM_MODELS_DIR."""
    own = models_dir()
    if os.environ.get("REARGUARD_MODELS") or own == SYSTEM_MODELS_DIR:
        return [own]
    return [own, SYSTEM_MODELS_DIR]


def find_installed(file: str) -> tuple[Path, list[Path]]:
    """(the copy of `file` found first in search_dirs(), or the user's own
    place for it if none is; every path looked at)."""
    looked = [d / file for d in search_dirs()]
    return next((p for p in looked if p.is_file()), looked[0]), looked


def verify(path: str | os.PathLike[str]) -> str:
    """The file's sha256 (hex)."""
    p = Path(path)
    try:
        # A regular file only: a FIFO or /dev/zero would be hashed forever (issue 23).
        with os.fdopen(open_regular(p), "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileRefused as err:
        raise ModelError(str(err)) from None
    except FileNotFoundError:
        raise ModelError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise ModelError(f"{p} is a directory, not a model file") from None
    except OSError as err:
        raise ModelError(f"cannot read {p}: {err.strerror or err}") from None


def identify(sha256: str) -> str | None:
    """The manifest name that trusts these bytes, if any."""
    return next((n for n, s in manifest().items() if sha256 in s.accepted()), None)


def _expected(s: ModelSpec) -> str:
    return " or ".join(f"{d} ({n:,} bytes)" for d, n in s.accepted().items())


# --- install, fetch, resolve -----------------------------------------------------


def install(src: str | os.PathLike[str], name: str = DEFAULT_MODEL, *, allow_unverified: bool = False) -> Path:
    """Check `src` against the manifest and copy it into models_dir() as the
    named model. Idempotent; nothing is written unless the file is accepted.

    allow_unverified skips the manifest check (fetch uses it for a source the
    manifest has no digest for, when the person asked for that).
    """
    s = spec(name)
    src = Path(src).expanduser()
    if not src.is_file():
        raise ModelError(f"no such model file: {src}")
    accepted = s.accepted()
    size = src.stat().st_size
    if not allow_unverified and size not in accepted.values():
        raise ModelError(
            f"{src} is {size:,} bytes, not a known {name} file (expected "
            f"{' or '.join(f'{n:,}' for n in accepted.values())} bytes): "
            "incomplete download or a different model?"
        )
    digest = verify(src)
    if not allow_unverified and digest not in accepted:
        raise ModelError(f"{src} has sha256 {digest}; {name} must have {_expected(s)}")

    directory = models_dir()
    dest = directory / s.file
    if dest.is_file() and verify(dest) == digest:
        return dest
    directory.mkdir(parents=True, exist_ok=True)
    _copy_verified(src, dest, digest)
    return dest


def _copy_verified(src: Path, dest: Path, digest: str, then: Callable[[], None] | None = None) -> None:
    """Copy src to dest atomically (the old file stays until the new one is
    whole and hashes to `digest`); `then` runs before the temporary file is
    given up on failure, so a sidecar can be written under the same guard."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)  # mkstemp makes it 0600; the service user may not be the installer
        copied = verify(tmp)
        if copied != digest:
            raise ModelError(f"copy of {src} into {dest.parent} came out different (sha256 {copied}); disk problem?")
        os.replace(tmp, dest)
        if then is not None:
            then()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _download(url: str, dest: Path, cap: int, timeout: float) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http", "file"):
        raise ModelError(f"unsupported URL scheme {scheme!r}")
    req = urllib.request.Request(url, headers={"User-Agent": "rearguard-models"})
    received = 0
    with urllib.request.urlopen(req, timeout=timeout) as resp, dest.open("wb") as out:
        while chunk := resp.read(1024 * 1024):
            received += len(chunk)
            if received > cap:
                raise ModelError(f"download is larger than the expected {cap:,} bytes")
            out.write(chunk)


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__


def fetch(name: str = DEFAULT_MODEL, *, allow_unverified: bool = False, timeout: float = FETCH_TIMEOUT_S) -> Path:
    """Download the named model from its manifest sources, first that works,
    verify it and install it. Does nothing if a trusted copy is installed."""
    s = spec(name)
    dest = models_dir() / s.file
    if dest.is_file() and verify(dest) in s.accepted():
        return dest
    if not s.sources:
        raise ModelError(f"{name} lists no download sources; use `rearguard models install PATH` with a local copy")
    accepted = s.accepted()
    tried: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rearguard-fetch-") as tmpdir:
        for i, src in enumerate(s.sources):
            part = Path(tmpdir) / f"{i}-{s.file}"
            cap = src.size or _UNKNOWN_SIZE_CAP
            log.info("fetching %s from %s", name, src.url)
            try:
                _download(src.url, part, cap, timeout)
            except (OSError, http.client.HTTPException, ModelError, ValueError) as err:  # URLError, timeouts: OSError
                tried.append(f"{src.url}: {_reason(err)}")
                continue
            digest = verify(part)
            if digest in accepted:
                return install(part, name)
            if src.verified:
                tried.append(f"{src.url}: sha256 {digest}, expected {src.sha256} (refused)")
            elif allow_unverified:
                log.warning("installing unverified %s from %s (sha256 %s)", name, src.url, digest)
                return install(part, name, allow_unverified=True)
            else:
                tried.append(
                    f"{src.url}: downloaded, but the manifest has no digest to check it against "
                    f"(sha256 {digest}); refused - rerun with --allow-unverified to accept it"
                )
    raise ModelError(
        f"could not fetch {name}: " + "; ".join(tried) + f". If this machine is offline, copy {s.file} "
        f"from one that has it and run `rearguard models install PATH`"
    )


def _looks_like_path(setting: str) -> bool:
    return setting.endswith(".onnx") or "/" in setting or os.sep in setting or setting.startswith("~")


def resolve(setting: str) -> Path:
    """The model file for a config setting: a manifest name (its installed
    copy), a derived name (`yolox_nano_dynamic`, `yolox_nano_int8`: its
    built copy, checked against its sidecar) or a path to an .onnx file."""
    setting = setting.strip()
    specs = manifest()
    if split_derived(setting) is not None:
        return check_derived(setting).path
    if setting in specs:
        path, looked = find_installed(specs[setting].file)
        if not path.is_file():
            raise ModelError(
                f"model {setting!r} is not installed (looked for {' and '.join(map(str, looked))}); install it with "
                f"`rearguard models fetch {setting}`, or `rearguard models install PATH` with a "
                f"local copy of {specs[setting].file}"
            )
        # Hashed at every start, not cached: bit rot on an SD card changes
        # neither the size nor the mtime a cache would key on, and the hash
        # costs little next to loading the model (3.6 MB: ~3 ms on an x86
        # laptop; at a Pi 4's ~80 MB/s without SHA instructions, ~50 ms).
        digest = verify(path)
        if digest not in specs[setting].accepted():
            raise ModelError(
                f"{path} has sha256 {digest}, not the {setting} the manifest lists ({_expected(specs[setting])}): "
                f"the file is damaged (bit rot?) or was replaced; reinstall it with `rearguard models fetch "
                f"{setting}` or `rearguard models install PATH` (a model of your own: give its path as detector.model)"
            )
        return path
    if _looks_like_path(setting):
        path = Path(setting).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path
    known = sorted(specs) + [derived_name(b, k) for b in sorted(specs) for k in DERIVED_KINDS]
    raise ModelError(
        f"detector.model {setting!r} is neither a known model name ({', '.join(known)}) "
        "nor a path to an .onnx file"
    )


def installed() -> list[Installed]:
    """Manifest and derived models present in search_dirs() (the first copy
    of each), each hashed and checked."""
    out = []
    for name, s in manifest().items():
        path, _ = find_installed(s.file)
        if path.is_file():
            digest = verify(path)
            out.append(Installed(name, path, digest, digest in s.accepted()))
        for kind in DERIVED_KINDS:
            dname = derived_name(name, kind)
            dpath, _ = find_installed(derived_file(dname))
            if dpath.is_file():
                digest = verify(dpath)
                try:
                    check_derived(dname)
                    ok = True
                except ModelError:
                    ok = False
                out.append(Installed(dname, dpath, digest, ok))
    return out


# --- derived models -----------------------------------------------------------------


def derived_name(base: str, kind: str) -> str:
    return f"{base}_{kind}"


def derived_file(name: str) -> str:
    return f"{name}.onnx"


def split_derived(name: str) -> tuple[str, str] | None:
    """(base, kind) if `name` names a derived model of a manifest model."""
    for kind in DERIVED_KINDS:
        base = name.removesuffix(f"_{kind}")
        if base != name and base in manifest():
            return base, kind
    return None


def tool_versions() -> dict[str, str]:
    """The versions that decide a derived model's bytes."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("rearguard", "onnx", "onnxruntime", "numpy", "opencv-python-headless"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def install_derived(
    built: str | os.PathLike[str],
    name: str,
    *,
    base: str,
    kind: str,
    base_sha256: str,
    recipe: dict[str, Any],
) -> Derived:
    """Move a freshly built model into models_dir() as `name`, with its sidecar.

    The model is renamed into place first, then the sidecar: a crash in
    between leaves a model whose sidecar is missing or stale, which
    check_derived refuses (rebuild), never a wrong file passed as good.
    """
    if split_derived(name) != (base, kind):
        raise ModelError(f"{name!r} is not the {kind} variant of {base!r}")
    if base_sha256 not in spec(base).accepted():
        raise ModelError(f"refusing to install {name}: its base (sha256 {base_sha256}) is not a {base} file the manifest trusts")
    src = Path(built)
    digest = verify(src)
    directory = models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / derived_file(name)
    record = {
        "name": name,
        "base": base,
        "kind": kind,
        "file": dest.name,
        "sha256": digest,
        "size": src.stat().st_size,
        "base_sha256": base_sha256,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "tools": tool_versions(),
        "recipe": recipe,
    }
    _copy_verified(src, dest, digest,
                   then=lambda: _write_text_atomic(sidecar(dest), json.dumps(record, indent=2) + "\n"))
    return check_derived(name)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_derived(name: str) -> Derived:
    """The installed derived model `name`, after checking its bytes against
    its sidecar and its base against the manifest; ModelError saying how to
    rebuild it otherwise."""
    parts = split_derived(name)
    if parts is None:
        raise ModelError(f"{name!r} is not a derived model name")
    base, kind = parts
    command = "dynamic" if kind == "dynamic" else "quantize"
    rebuild = f"build it with `rearguard models {command}`"
    path, looked = find_installed(derived_file(name))
    if not path.is_file():
        raise ModelError(f"model {name!r} is not built (looked for {' and '.join(map(str, looked))}); {rebuild}")
    side = sidecar(path)
    try:
        record = json.loads(side.read_text("utf-8"))
        info = Derived(
            name=name, base=base, kind=kind, path=path,
            sha256=str(record["sha256"]), size=int(record["size"]),
            base_sha256=str(record["base_sha256"]),
            tools={str(k): str(v) for k, v in dict(record.get("tools", {})).items()},
            recipe=dict(record.get("recipe", {})),
        )
        if record.get("name") != name:
            raise ValueError(f"it describes {record.get('name')!r}")
    except FileNotFoundError:
        raise ModelError(f"{path} has no record of how it was built ({side.name} is missing); {rebuild}") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"{side} is unreadable or not a build record ({err}); {rebuild}") from None
    digest = verify(path)
    if digest != info.sha256:
        raise ModelError(
            f"{path} has sha256 {digest}, but it was built as {info.sha256}: changed since; {rebuild}"
        )
    if info.base_sha256 not in spec(base).accepted():
        raise ModelError(
            f"{path} was built from a {base} file (sha256 {info.base_sha256}) the manifest does not "
            f"trust; {rebuild}"
        )
    return info
