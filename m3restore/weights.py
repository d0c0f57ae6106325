"""Weights bundles: a folder per bundle, one sub-folder per component.

```
<bundle>/
  model_index.json          format, versions, components, sha256 of every file, training facts
  <component>/config.json   the component's dataclass config
  <component>/model.safetensors
  MODEL_CARD.md             how the weights were made and what they measure
```

Only safetensors and JSON are ever read here: no pickle. Every file's sha256 is checked against
``model_index.json`` before use, so a truncated download or an edited file is refused with one
clear line instead of producing garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3restore.errors import M3RestoreError, WeightsError

FORMAT = "m3restore-bundle"
FORMAT_VERSION = 1
DEFAULT_BUNDLE = "m3restore-base"
ENV_VAR = "M3RESTORE_WEIGHTS"


def _component_classes() -> dict[str, tuple[type, type]]:
    """Class name in model_index.json → (module class, config dataclass)."""
    from m3restore.caption.degradation import AnalyzerConfig, DegradationAnalyzer
    from m3restore.models.m3unet import M3UNet, M3UNetConfig
    from m3restore.models.refiner import Refiner, RefinerConfig
    from m3restore.text.vectors import TextVectors, TextVectorsConfig

    return {
        "M3UNet": (M3UNet, M3UNetConfig),
        "DegradationAnalyzer": (DegradationAnalyzer, AnalyzerConfig),
        "TextVectors": (TextVectors, TextVectorsConfig),
        "Refiner": (Refiner, RefinerConfig),
    }


def search_path() -> list[Path]:
    """Folders searched for bundles by name, first match wins."""
    paths = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    paths.append(here / "bundles")  # shipped with a non-editable install
    paths.append(here.parent / "weights")  # a source checkout / editable install
    return paths


def available_bundles() -> list[Path]:
    """Every bundle folder found on the search path (no duplicates by name)."""
    found: dict[str, Path] = {}
    for root in search_path():
        if root.is_dir():
            for index in sorted(root.glob("*/model_index.json")):
                found.setdefault(index.parent.name, index.parent)
    return list(found.values())


def resolve(name_or_path: str | os.PathLike | None = None) -> Path:
    """A bundle folder from a path, a name on the search path, or the default name."""
    target = str(name_or_path) if name_or_path else DEFAULT_BUNDLE
    path = Path(target).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise WeightsError(f"{path}: not a weights bundle (no model_index.json)")
        return path
    if os.sep in target or target.startswith("."):
        raise WeightsError(f"{target}: no such weights folder")
    for root in search_path():
        if (root / target / "model_index.json").is_file():
            return root / target
    if target == DEFAULT_BUNDLE:
        raise WeightsError(
            f"no trained bundle '{DEFAULT_BUNDLE}' is installed yet (searched {', '.join(map(str, search_path()))}); "
            "train one with `m3restore train` or pass --weights PATH"
        )
    names = ", ".join(p.name for p in available_bundles()) or "none"
    raise WeightsError(f"weights '{target}' not found; installed bundles: {names}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """An opened (verified) bundle; components are built on request."""

    path: Path
    index: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.index.get("name", self.path.name)

    @property
    def components(self) -> list[str]:
        return list(self.index["components"])

    def has(self, component: str) -> bool:
        return component in self.index["components"]

    def config(self, component: str) -> dict[str, Any]:
        return json.loads((self.path / component / "config.json").read_text())

    def load(self, component: str):
        """Build the component's module from its config and load its tensors (strict)."""
        if component in self._cache:
            return self._cache[component]
        if not self.has(component):
            raise WeightsError(
                f"{self.path}: bundle has no '{component}' component (has: {', '.join(self.components)})"
            )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from m3restore.config import from_dict

        entry = self.index["components"][component]
        classes = _component_classes()
        if entry.get("class") not in classes:
            raise WeightsError(f"{self.path}: component '{component}' has unknown class {entry.get('class')!r}")
        module_cls, config_cls = classes[entry["class"]]
        try:
            config = from_dict(config_cls, self.config(component), where=f"{component}/config.json")
        except M3RestoreError as error:
            raise WeightsError(f"{self.path}: {error}") from None
        module = module_cls(config)
        file = self.path / component / "model.safetensors"
        try:
            tensors = load_file(str(file))
        except (SafetensorError, OSError, RuntimeError) as error:
            raise WeightsError(f"{file}: cannot read tensors ({str(error).splitlines()[0]})") from None
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as error:
            detail = " ".join(str(error).split())[:300]
            raise WeightsError(f"{file}: tensors do not fit the config ({detail})") from None
        module.eval()
        self._cache[component] = module
        return module


def open_bundle(name_or_path: str | os.PathLike | None = None, *, verify: bool = True) -> Bundle:
    """Resolve, read model_index.json, check format and (by default) every checksum."""
    path = resolve(name_or_path)
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}/model_index.json: unreadable ({error})") from None
    if index.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an m3restore bundle (format {index.get('format')!r})")
    if index.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"{path}: bundle format {index['format_version']} is newer than this m3restore understands")
    if verify:
        for component, entry in index.get("components", {}).items():
            for rel, expected in entry.get("files", {}).items():
                file = path / component / rel
                if not file.is_file():
                    raise WeightsError(f"{file}: missing from the bundle")
                if sha256(file) != expected:
                    raise WeightsError(
                        f"{file}: checksum mismatch (truncated or modified); re-download or re-export it"
                    )
    return Bundle(path, index)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    from m3restore.files import atomic_write_bytes

    atomic_write_bytes(path, data, error=WeightsError)


STORAGE_DTYPES = ("float32", "float16")


def save_bundle(
    path: str | os.PathLike,
    components: dict[str, Any],
    *,
    name: str | None = None,
    storage: str = "float32",
    **extra: Any,
) -> Path:
    """Write ``components`` (name → module with a dataclass ``config``) as a bundle at ``path``.

    ``extra`` goes into model_index.json (e.g. ``text_encoder``, ``training``). ``storage`` is
    the dtype floating-point tensors are written in: ``float16`` halves the files, and
    :meth:`Bundle.load` copies them into the module's float32 parameters. Files are written
    atomically, and model_index.json last, so a crash never leaves a bundle that verifies.
    """
    import torch
    from safetensors.torch import save

    from m3restore import __version__
    from m3restore.config import to_dict

    if storage not in STORAGE_DTYPES:
        raise WeightsError(f"unknown storage dtype {storage!r}; choose from {', '.join(STORAGE_DTYPES)}")
    stored = getattr(torch, storage)
    path = Path(path)
    classes = {cls: name for name, (cls, _) in _component_classes().items()}
    index: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name or path.name,
        "m3restore_version": __version__,
        "components": {},
    }
    for component, module in components.items():
        if type(module) not in classes:
            raise WeightsError(f"cannot save component '{component}': unknown class {type(module).__name__}")
        config_bytes = (json.dumps(to_dict(module.config), indent=2) + "\n").encode()
        state = {
            k: v.detach().to("cpu", stored if v.is_floating_point() else v.dtype).contiguous()
            for k, v in module.state_dict().items()
        }
        tensor_bytes = save(state, metadata={"component": component, "class": type(module).__name__})
        _atomic_write_bytes(path / component / "config.json", config_bytes)
        _atomic_write_bytes(path / component / "model.safetensors", tensor_bytes)
        index["components"][component] = {
            "class": classes[type(module)],
            "parameters": sum(v.numel() for v in state.values()),
            "storage": storage,
            "files": {
                "config.json": hashlib.sha256(config_bytes).hexdigest(),
                "model.safetensors": hashlib.sha256(tensor_bytes).hexdigest(),
            },
        }
    index.update(extra)
    _atomic_write_bytes(path / "model_index.json", (json.dumps(index, indent=2) + "\n").encode())
    return path


def extend_bundle(
    path: str | os.PathLike,
    components: dict[str, Any],
    *,
    storage: str = "float32",
    fields: dict[str, Any] | None = None,
) -> Path:
    """Add (or replace) ``components`` in the existing bundle at ``path``; every other component,
    its files and its checksums stay exactly as they were. ``fields`` are top-level
    model_index.json fields set in the same write (e.g. a training record).

    The new component folders are written with :func:`save_bundle` (tensors as ``storage``) next
    to the bundle first, then moved in, and model_index.json is rewritten last (atomically), so a
    crash leaves the old bundle verifying as before.
    """
    import shutil

    path = Path(path)
    bundle = open_bundle(path)  # refuse to extend a damaged bundle
    staging = Path(tempfile.mkdtemp(dir=path, prefix=".extend-"))
    try:
        staged = json.loads((save_bundle(staging, components, storage=storage) / "model_index.json").read_text())
        for component in components:
            target = path / component
            old = path / f".{component}.old"
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(staging / component, target)
            shutil.rmtree(old, ignore_errors=True)
        index = dict(bundle.index)
        index["components"] = {**index["components"], **staged["components"]}
        index.update(fields or {})
        _atomic_write_bytes(path / "model_index.json", (json.dumps(index, indent=2) + "\n").encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def convert_bundle(source: str | os.PathLike, target: str | os.PathLike, *, storage: str = "float16") -> Path:
    """Write a copy of bundle ``source`` at the new folder ``target`` with every component's
    tensors stored as ``storage`` (float16: half the size on disk, for shipping); the other
    model_index.json fields and the model card travel along unchanged."""
    import shutil

    bundle = open_bundle(source)
    target = Path(target)
    if target.exists():
        raise WeightsError(f"{target}: already exists; convert into a new folder")
    own = ("format", "format_version", "name", "m3restore_version", "components")
    extra = {k: v for k, v in bundle.index.items() if k not in own}
    modules = {component: bundle.load(component) for component in bundle.components}
    save_bundle(target, modules, name=bundle.name, storage=storage, **extra)
    if (bundle.path / "MODEL_CARD.md").exists():
        shutil.copy2(bundle.path / "MODEL_CARD.md", target / "MODEL_CARD.md")
    return target


def average_bundles(sources: list[str | os.PathLike], target: str | os.PathLike, *, storage: str = "float32") -> Path:
    """Write at the new folder ``target`` the uniform mean of the weights of ``sources``.

    The sources are training runs of one model from the same start, e.g. one leg run twice with
    different seeds (a "model soup"; on leg 30 of m3restore-denoise the mean was level with the
    better of two seeds, docs/experiments/denoise-specialist/). Every source
    must hold the same components with identical configs, the same text encoder and ``fixes``, and
    a training record. The new bundle's ``training`` record sums the runs' iterations and wall
    time and keeps each run's own record under ``average_of``, so promoting it ships one leg
    whose cost is on record. Integer tensors (counters) must agree; floating ones are averaged
    in float64 and stored as ``storage``.
    """
    import torch

    if len(sources) < 2:
        raise WeightsError("averaging needs two or more bundles")
    target = Path(target)
    if target.exists():
        raise WeightsError(f"{target}: already exists; average into a new folder")
    bundles = [open_bundle(source) for source in sources]
    first = bundles[0]
    for other in bundles[1:]:
        if other.components != first.components:
            raise WeightsError(
                f"{other.path}: components {', '.join(other.components)} differ from {first.path}'s "
                f"({', '.join(first.components)})"
            )
        for component in first.components:
            same_class = other.index["components"][component]["class"] == first.index["components"][component]["class"]
            if not same_class or other.config(component) != first.config(component):
                raise WeightsError(f"{other.path}: its '{component}' is not built like {first.path}'s (config differs)")
        for key in ("text_encoder", "fixes"):
            if other.index.get(key) != first.index.get(key):
                raise WeightsError(f"{other.path}: {key} {other.index.get(key)!r} differs from {first.path}'s")
    for bundle in bundles:
        if "training" not in bundle.index:
            raise WeightsError(f"{bundle.path}: no training record in model_index.json; average training runs' bundles")
    modules = {}
    for component in first.components:
        loaded = [bundle.load(component) for bundle in bundles]
        states = [module.state_dict() for module in loaded]
        mean = {}
        for key, tensor in states[0].items():
            if tensor.is_floating_point():
                mean[key] = torch.stack([state[key].double() for state in states]).mean(0).to(tensor.dtype)
            elif all(torch.equal(state[key], tensor) for state in states[1:]):
                mean[key] = tensor
            else:
                raise WeightsError(f"cannot average '{component}': its integer tensor {key} differs between bundles")
        loaded[0].load_state_dict(mean)
        modules[component] = loaded[0]
    records = [dict(bundle.index["training"], bundle=str(bundle.path)) for bundle in bundles]
    training = {
        **{k: v for k, v in first.index["training"].items() if k not in ("val_psnr", "config")},
        "iterations": sum(r.get("iterations") or 0 for r in records),
        "wall_time_s": round(sum(r.get("wall_time_s") or 0 for r in records), 1),
        "val_psnr": None,
        "average_of": records,
    }
    own = ("format", "format_version", "name", "m3restore_version", "components", "training")
    extra = {k: v for k, v in first.index.items() if k not in own}
    return save_bundle(target, modules, name=first.name, storage=storage, training=training, **extra)


def set_index_fields(path: str | os.PathLike, **fields: Any) -> Path:
    """Set top-level fields of a bundle's model_index.json (e.g. ``fixes``), atomically.

    Component files and their checksums are untouched.
    """
    path = Path(path)
    bundle = open_bundle(path)
    index = dict(bundle.index)
    index.update(fields)
    _atomic_write_bytes(path / "model_index.json", (json.dumps(index, indent=2) + "\n").encode())
    return path


def promote_bundle(
    source: str | os.PathLike, target: str | os.PathLike, *, storage: str | None = None
) -> dict[str, Any]:
    """Replace ``target``'s components with those of the newer training run ``source`` (a
    warm-started leg of the same model), the way a trained leg is shipped.

    Tensors are stored as the target stores the first replaced component unless ``storage`` is
    given (a float16 shipped bundle gets exactly the tensors :func:`convert_bundle` would write;
    the files' safetensors headers may list metadata in another order). The run's training record
    becomes ``training`` and the target's previous one is appended to ``earlier_legs``, so the
    bundle keeps the history of every leg. Refused: a run whose components the target lacks or
    holds under another class, another text encoder or ``fixes``, and a target whose refiner was
    trained against the predictor being replaced. Returns the new model_index.json.
    """
    src, dst = open_bundle(source), open_bundle(target)
    if src.path.resolve() == dst.path.resolve():
        raise WeightsError(f"{dst.path}: cannot promote a bundle into itself")
    if "training" not in src.index:
        raise WeightsError(
            f"{src.path}: no training record in model_index.json; promote the bundle a training run wrote"
        )
    for component in src.components:
        mine = dst.index["components"].get(component)
        if mine is None:
            raise WeightsError(
                f"{dst.path}: has no '{component}' component to replace (has: {', '.join(dst.components)}); "
                "promote replaces components, it does not add them"
            )
        if mine["class"] != src.index["components"][component]["class"]:
            raise WeightsError(
                f"{src.path}: its '{component}' is a {src.index['components'][component]['class']}, "
                f"the target's a {mine['class']}"
            )
    for key in ("text_encoder", "fixes"):
        if key in src.index and src.index[key] != dst.index.get(key):
            raise WeightsError(f"{src.path}: {key} {src.index[key]!r} differs from the target's {dst.index.get(key)!r}")
    if "predictor" in src.components and dst.has("refiner") and "refiner" not in src.components:
        raise WeightsError(
            f"{dst.path}: its refiner was trained against the predictor being replaced; "
            "train a refiner for the new predictor (m3restore train --stage refiner) and promote both"
        )
    kept = dst.index["components"][src.components[0]].get("storage", "float32")
    earlier = list(dst.index.get("earlier_legs", [])) + ([dst.index["training"]] if "training" in dst.index else [])
    fields = {"training": src.index["training"], "earlier_legs": earlier}
    modules = {component: src.load(component) for component in src.components}
    extend_bundle(dst.path, modules, storage=storage or kept, fields=fields)
    return open_bundle(dst.path).index
