"""Content captions from a multimodal model (BLIP, GIT, Florence-2, SmolVLM, LLaVA-style, ViT+GPT-2 …).

:meth:`Captioner.load` takes a Hugging Face hub id or a local folder and picks the model class
from its ``config.json``:

* ``vision-encoder-decoder`` (ViT + GPT-2/BERT decoders): ``VisionEncoderDecoderModel``, with
  the folder's image processor and tokenizer;
* anything transformers knows as *image-text-to-text* (BLIP, GIT, Florence-2, SmolVLM, Idefics,
  LLaVA, Qwen-VL, PaliGemma, …): ``AutoModelForImageTextToText`` with ``AutoProcessor``.
  Chat models get one user turn, the image and :data:`INSTRUCTION`; Florence-2 gets its
  ``<CAPTION>`` task token; BLIP and GIT caption unprompted.

The caption is made on the *degraded* image, greedily (deterministic), in fp16 on CUDA and fp32
on the CPU (``dtype`` overrides). Only safetensors weights are read. Loading problems (unknown
id offline, a folder without weights, a model that cannot caption) raise
:class:`~m3restore.errors.ConfigError` with one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3restore.errors import ConfigError

__all__ = ["Captioner", "INSTRUCTION"]

INSTRUCTION = "Describe this image in one short sentence."
_MAX_NEW_TOKENS = 30


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith(("./", "../", "~")) or name.count("/") > 1


class Captioner:
    """A loaded image captioner; call :meth:`caption` with an RGB image."""

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        name: str,
        kind: str,
        tokenizer: Any = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_new_tokens: int = _MAX_NEW_TOKENS,
    ):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = tokenizer or getattr(processor, "tokenizer", None)
        self.name = name
        self.kind = kind  # "encoder-decoder", "chat", "florence2" or "plain"
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_new_tokens = int(max_new_tokens)

    def __repr__(self) -> str:
        return f"Captioner(name={self.name!r}, kind={self.kind!r}, device={self.device}, dtype={self.dtype})"

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        local_files_only: bool | None = None,
        max_new_tokens: int = _MAX_NEW_TOKENS,
    ) -> Captioner:
        from m3restore.device import resolve_device, resolve_dtype

        name = os.fspath(name_or_path).strip() if isinstance(name_or_path, (str, os.PathLike)) else ""
        if not name:
            raise ConfigError("captioner name is empty; pass a Hugging Face model id or a local folder")
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
        dt = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(str(dtype), dev)
        path = Path(os.path.expanduser(name))
        kwargs: dict[str, Any] = {}
        if path.is_dir():
            _check_folder(path)
            source = str(path)
            kwargs["local_files_only"] = True
        elif path.exists():
            raise ConfigError(f"captioner path '{name}' is a file; pass the folder that holds the model")
        elif _looks_like_path(name):
            raise ConfigError(f"captioner folder '{name}' does not exist")
        else:
            source = name
            if local_files_only is not None:
                kwargs["local_files_only"] = bool(local_files_only)
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        # The hub client logs each failed request on its own line; our error says it in one.
        hub_level = hub_logging.get_verbosity()
        hub_logging.set_verbosity_error()
        try:
            model, processor, tokenizer, kind = _load(source, dt, kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # hub, network and format failures
            raise _failure(name, exc, is_folder=path.is_dir()) from None
        finally:
            hub_logging.set_verbosity(hub_level)
        try:
            model = model.to(dev)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot move captioner '{name}' to {dev}: {_one_line(exc)}") from None
        return cls(
            model,
            processor,
            name=name,
            kind=kind,
            tokenizer=tokenizer,
            device=dev,
            dtype=dt,
            max_new_tokens=max_new_tokens,
        )

    # -- captioning -------------------------------------------------------------------------
    @torch.inference_mode()
    def caption(self, image) -> str:
        """One sentence about what the image shows ("" if the model says nothing)."""
        pil = _to_pil(image)
        if self.kind == "encoder-decoder":
            pixels = self.processor(images=pil, return_tensors="pt")["pixel_values"]
            inputs = {"pixel_values": pixels.to(self.device, self.dtype)}
        else:
            if self.kind == "chat":
                messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": INSTRUCTION}]}]
                text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
                batch = self.processor(images=[pil], text=text, return_tensors="pt")
            elif self.kind == "florence2":
                batch = self.processor(images=pil, text="<CAPTION>", return_tensors="pt")
            else:
                batch = self.processor(images=pil, return_tensors="pt")
            inputs = {}
            for key, value in batch.items():
                if torch.is_tensor(value):
                    value = value.to(self.device)
                    if value.is_floating_point():
                        value = value.to(self.dtype)
                inputs[key] = value
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        ids = inputs.get("input_ids")
        if ids is not None and out.shape[1] > ids.shape[1] and torch.equal(out[:, : ids.shape[1]].cpu(), ids.cpu()):
            out = out[:, ids.shape[1] :]  # decoder-only models echo the prompt
        decoder = self.tokenizer if self.tokenizer is not None else self.processor
        text = decoder.batch_decode(out, skip_special_tokens=True)[0]
        return " ".join(text.split()).strip()


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ConfigError(f"captioner folder '{path}' has no config.json (not a Hugging Face model folder)")
    has_weights = any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()
    if not has_weights:
        if any(path.glob("pytorch_model*.bin")):
            raise ConfigError(
                f"captioner folder '{path}' only has pickled pytorch_model.bin weights; "
                "m3restore reads model.safetensors only (convert them)"
            )
        raise ConfigError(f"captioner folder '{path}' has no model weights (model.safetensors)")


def _model_type(source: str, kwargs: dict) -> tuple[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, **kwargs)
    return str(getattr(config, "model_type", "")), config


def _load(source: str, dtype: torch.dtype, kwargs: dict):
    import transformers

    model_type, config = _model_type(source, kwargs)
    common = dict(kwargs, use_safetensors=True, dtype=dtype)
    if model_type == "vision-encoder-decoder":
        model = transformers.VisionEncoderDecoderModel.from_pretrained(source, **common)
        processor = transformers.AutoImageProcessor.from_pretrained(source, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        return model, processor, tokenizer, "encoder-decoder"
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ConfigError(
            f"captioner '{source}' is a '{model_type or 'unknown'}' model, which cannot caption images; "
            "use an image-to-text model (BLIP, GIT, Florence-2, SmolVLM, LLaVA, ViT+GPT-2 …)"
        )
    model = transformers.AutoModelForImageTextToText.from_pretrained(source, **common)
    processor = transformers.AutoProcessor.from_pretrained(source, **kwargs)
    if model_type == "florence2":
        kind = "florence2"
    elif model_type in ("blip", "git", "pix2struct", "kosmos-2"):
        kind = "plain"
    elif getattr(processor, "chat_template", None):
        kind = "chat"
    else:
        kind = "plain"
    return model, processor, getattr(processor, "tokenizer", None), kind


def _failure(name: str, exc: BaseException, *, is_folder: bool) -> ConfigError:
    chain, cur, seen = [], exc, set()
    while cur is not None and id(cur) not in seen:
        chain.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    kinds = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if is_folder:
        return ConfigError(f"captioner folder '{name}' could not be loaded ({_one_line(exc)})")
    offline = bool(
        kinds & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectionError", "Timeout"}
    ) or any(s in text for s in ("offline", "couldn't connect", "connection", "not the path to a directory"))
    if kinds & {"RepositoryNotFoundError", "GatedRepoError"} and not offline:
        return ConfigError(f"captioner '{name}' is neither a local folder nor a model the Hugging Face hub offers")
    if offline or "does not appear to have" in text or "cannot find" in text or "couldn't find" in text:
        return ConfigError(
            f"captioner '{name}' is not available offline: download it once with network access, "
            "or pass a local folder (config.json, processor files, model.safetensors)"
        )
    return ConfigError(f"captioner '{name}' could not be loaded ({_one_line(exc)})")


def _to_pil(image):
    from PIL import Image as PILImage

    from m3restore.io import Image

    if isinstance(image, PILImage.Image):
        return image.convert("RGB")
    if isinstance(image, Image):
        image = image.rgb()
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return PILImage.fromarray(arr[..., :3])


def describe_folder(path: str | os.PathLike) -> dict:
    """config.json facts of a captioner folder (model type, architectures), for messages and tests."""
    data = json.loads((Path(path) / "config.json").read_text())
    return {"model_type": data.get("model_type"), "architectures": data.get("architectures")}
