"""Read and write images: pixels in, pixels out, safely.

Everything the rest of m3restore needs to know about files lives here, so that models and
pipelines only ever see float32 arrays in [0, 1]:

* Reading decodes PNG, JPEG, TIFF, WebP and BMP (8- or 16-bit; grey, grey+alpha, RGB, RGBA),
  applies the EXIF orientation, refuses decompression bombs *before* decoding and files holding
  several pictures (multi-page TIFF, animated PNG/WebP), and turns every kind of broken file
  into an :class:`~m3restore.errors.ImageError` with a one-line message.
  Pillow decodes (it reports truncated data instead of padding it with grey); OpenCV is used
  only for 16-bit data, which Pillow reduces to 8 bits for colour images.
* Writing picks the format from the extension, keeps 16 bits where the format allows it,
  passes the original alpha samples through unchanged, never overwrites by accident, and is
  atomic: a reader never sees a half-written file and a failure leaves nothing behind.

Metadata travels with the pixels (:class:`Metadata`): the ICC colour profile, so a Display P3
or Adobe RGB photo keeps its colours; EXIF (camera, lens, date …) with the orientation set to
upright, since reading already turned the pixels; and the DPI. All three are written to PNG
(8- and 16-bit), JPEG and WebP (which has no DPI); TIFF (8- and 16-bit) gets the profile and
DPI; BMP none.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile, UnidentifiedImageError

from m3restore.errors import ConfigError, ImageError
from m3restore.files import atomic_write_bytes

DEFAULT_MAX_PIXELS: int = 100_000_000
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

# Extension -> Pillow format name. The order of IMAGE_EXTENSIONS is the order users see.
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
# Only what we can also write, so a run never fails at the end for want of an output format.
# (Pillow opens phones' multi-picture JPEGs as format "MPO" through its JPEG opener.)
_READABLE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
# Pictures a folder may hold that m3restore does not read: a folder run names them as failures
# instead of passing over them in silence (camera raw files, phone HEIC, GIF ...).
OTHER_IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".dng", ".cr2", ".cr3", ".nef", ".arw",
    ".raf", ".orf", ".rw2", ".psd", ".exr", ".hdr", ".ppm", ".pgm", ".tga",
)  # fmt: skip
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_GREY_MODES = ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N")

# A truncated file must fail, not decode as a grey-padded picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow's own bomb guard is global state; we replace it with max_pixels while opening.
_pillow_limit_lock = threading.Lock()


@dataclass(frozen=True)
class Metadata:
    """What a photo carries besides its samples, written back with the restored pixels.

    ``exif`` is serialised EXIF with the orientation already reset to 1 (upright); ``dpi`` is
    (horizontal, vertical) dots per inch.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None


@dataclass(eq=False)  # element-wise array comparison makes a generated __eq__ useless
class Image:
    """Decoded pixels plus what is needed to write them back faithfully.

    ``pixels`` is float32 in [0, 1], shaped HxWx3 (RGB) or HxWx1 (grey). ``alpha`` holds the
    file's own alpha samples (uint8 or uint16, HxW) so they can be written back bit-exact;
    models never see it. ``bit_depth`` (8 or 16) is the depth of the source file, so a 16-bit
    input can be written as 16-bit output. ``metadata`` is the source file's colour profile,
    EXIF and DPI (None for pixels that came from no file).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    metadata: Metadata | None = None

    def __post_init__(self) -> None:
        self.pixels = np.asarray(self.pixels, dtype=np.float32)
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 3):
            raise ValueError(f"pixels must be HxWx1 or HxWx3, got shape {self.pixels.shape}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        if self.alpha is not None and self.alpha.shape != self.pixels.shape[:2]:
            raise ValueError(f"alpha shape {self.alpha.shape} does not match pixels {self.pixels.shape[:2]}")

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order Pillow and users speak in."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def rgb(self) -> np.ndarray:
        """HxWx3 float32 pixels for a network; grey is replicated. Not a copy for RGB images."""
        if self.is_grey:
            return np.repeat(self.pixels, 3, axis=2)
        return self.pixels

    def with_rgb(self, rgb: np.ndarray) -> Image:
        """A new Image holding restored pixels, ready to write in the source's form.

        Values are clipped to [0, 1] (NaN becomes 0). A grey source goes back to grey (BT.601
        luma), and alpha, bit depth and metadata are kept. If the restored image has a different
        size (super-resolution), the alpha is resized to match and the DPI scaled with it, so the
        print size stays the same.
        """
        rgb = np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected HxWx3 pixels, got shape {rgb.shape}")
        pixels = np.clip(rgb, 0.0, 1.0)
        if self.is_grey:
            pixels = (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        metadata = self.metadata
        if metadata is not None and metadata.dpi is not None and pixels.shape[:2] != self.pixels.shape[:2]:
            scale = pixels.shape[1] / self.pixels.shape[1], pixels.shape[0] / self.pixels.shape[0]
            metadata = replace(metadata, dpi=(metadata.dpi[0] * scale[0], metadata.dpi[1] * scale[1]))
        return replace(self, pixels=pixels, alpha=_fit_alpha(self.alpha, pixels.shape[:2]), metadata=metadata)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, rounded to nearest and clipped (NaN becomes 0)."""
    return _quantise(pixels, 8)


def from_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {array.dtype}")
    return array.astype(np.float32) / 255.0


# --------------------------------------------------------------------------- reading


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Decode an image file; any problem with the file becomes an ImageError naming it.

    ``max_pixels`` (None for no limit) is checked against the header before any pixel data is
    decoded, so a small file that claims a huge size cannot exhaust memory.
    """
    path = Path(path)
    data = _read_bytes(path)
    with _open(data, path, max_pixels) as pil:
        _one_picture(pil, path)
        bit_depth = _bit_depth(pil, data, path)
        _decode(pil, path)
        orientation = _orientation(pil)
        metadata = _metadata(pil)
        if bit_depth == 16:
            samples = _samples_16bit(data, pil, path)
        else:
            samples = _samples_8bit(pil, path)
    samples = _orient(samples, orientation)
    return replace(_to_image(samples, bit_depth), metadata=metadata)


def _read_bytes(path: Path) -> bytes:
    """The whole file; reading bytes ourselves keeps non-ASCII paths working for OpenCV too."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from error
    if not data:
        raise ImageError(f"{path}: file is empty (0 bytes)")
    return data


def _open(data: bytes, path: Path, max_pixels: int | None) -> PILImage.Image:
    """Parse the header only (Pillow is lazy) and enforce our pixel limit instead of Pillow's."""
    with _pillow_limit_lock:
        saved, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            pil = PILImage.open(io.BytesIO(data), formats=_READABLE_FORMATS)
        except UnidentifiedImageError as error:  # Pillow's answer to garbage in a known format, too
            if other := _other_format(data):
                raise ImageError(f"{path}: {other} is not supported; save as one of {_format_list()}") from error
            raise ImageError(f"{path}: not a readable image (corrupt, or not one of {_format_list()})") from error
        except Exception as error:
            raise ImageError(
                f"{path}: cannot read the image header ({_reason(error)}); the file is truncated or corrupt"
            ) from error
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    width, height = pil.size
    if max_pixels is not None and width * height > max_pixels:
        pil.close()
        raise ImageError(
            f"{path}: {width}×{height} ({_pixels(width * height)}) is over the {_pixels(max_pixels)} limit; "
            "raise it with --max-pixels"
        )
    return pil


def _other_format(data: bytes) -> str | None:
    """The name of an image format Pillow knows and we do not read (GIF, PPM ...), else None."""
    try:
        with PILImage.open(io.BytesIO(data)) as pil:
            return pil.format
    except Exception:
        return None


def _one_picture(pil: PILImage.Image, path: Path) -> None:
    """Refuse a multi-page TIFF or an animated PNG/WebP: restoring its first picture alone and
    writing that back would silently drop the rest.

    A TIFF's reduced-resolution pages (previews, marked in NewSubfileType) are not pictures of
    their own, nor are the extra frames of a phone's multi-picture JPEG (previews, depth maps).
    """
    frames = getattr(pil, "n_frames", 1)
    if frames < 2 or pil.format not in ("TIFF", "PNG", "WEBP"):
        return
    if pil.format != "TIFF":
        kind = {"WEBP": "WebP"}.get(pil.format, pil.format)
        raise ImageError(
            f"{path}: an animated {kind} ({frames} frames); m3restore restores still pictures, "
            "so save the frames as separate files"
        )
    pages = 0
    for index in range(frames):
        pil.seek(index)
        pages += not int(pil.tag_v2.get(254, 0)) & 1  # bit 0: a reduced-resolution copy
    pil.seek(0)
    if pages > 1:
        raise ImageError(
            f"{path}: a TIFF of {pages} pages; m3restore restores one picture per file, "
            "so save each page as its own file"
        )


def _bit_depth(pil: PILImage.Image, data: bytes, path: Path) -> int:
    """8 or 16. Pillow's mode cannot tell: it reports 16-bit colour PNG/TIFF as plain RGB."""
    if pil.format == "PNG":
        # IHDR is always the first chunk; its bit-depth byte sits at a fixed offset.
        return 16 if data[12:16] == b"IHDR" and data[24] == 16 else 8
    if pil.format == "TIFF":
        bits = pil.tag_v2.get(258, 8)
        bits = max(bits) if isinstance(bits, tuple) else bits
        if bits > 16:
            raise ImageError(f"{path}: {bits}-bit samples are not supported (use 8- or 16-bit images)")
        return 16 if bits > 8 else 8
    return 8


def _decode(pil: PILImage.Image, path: Path) -> None:
    """Force the full decode now, so truncated or corrupt data fails here and nowhere else."""
    try:
        pil.load()
    except Exception as error:  # decoders raise OSError, SyntaxError, ValueError, zlib.error, ...
        raise ImageError(
            f"{path}: cannot decode {pil.format} data ({_reason(error)}); the file is truncated or corrupt"
        ) from error


def _orientation(pil: PILImage.Image) -> int:
    """EXIF orientation (1-8), 1 when absent or unreadable; read after load() for PNG eXIf."""
    try:
        value = pil.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF must not make a good picture unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _metadata(pil: PILImage.Image) -> Metadata | None:
    """Profile, EXIF (orientation reset to upright) and DPI; a broken part is left out, not fatal."""
    icc = pil.info.get("icc_profile") or None
    try:
        exif = pil.getexif()
        if 0x0112 in exif:
            exif[0x0112] = 1
        exif_bytes = exif.tobytes() if len(exif) else None
    except Exception:
        exif_bytes = None
    dpi: tuple[float, float] | None = None
    try:
        x, y = (float(v) for v in pil.info["dpi"])
        dpi = (x, y) if 0 < x < 1e6 and 0 < y < 1e6 else None
    except (KeyError, TypeError, ValueError):
        pass
    if icc is None and exif_bytes is None and dpi is None:
        return None
    return Metadata(icc_profile=icc, exif=exif_bytes, dpi=dpi)


def _samples_8bit(pil: PILImage.Image, path: Path) -> np.ndarray:
    """HxWxC uint8 with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
    if pil.mode in ("I", "F"):
        raise ImageError(f"{path}: 32-bit {pil.mode} samples are not supported (use 8- or 16-bit images)")
    if pil.mode == "P":
        has_alpha = "transparency" in pil.info
        pil = pil.convert("RGBA" if has_alpha else "RGB")
    elif pil.mode == "1":
        pil = pil.convert("L")
    elif pil.mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = "A" in pil.getbands() or "a" in pil.getbands()
        grey = pil.mode in _GREY_MODES
        pil = pil.convert(("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB"))
    array = np.asarray(pil)
    return array[..., None] if array.ndim == 2 else array


def _samples_16bit(data: bytes, pil: PILImage.Image, path: Path) -> np.ndarray:
    """HxWxC uint16 via OpenCV (RGB order, like the 8-bit path); Pillow says whether it is grey."""
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageError(f"{path}: OpenCV could not decode the 16-bit {pil.format} data")
    if array.dtype != np.uint16 or array.shape[1::-1] != pil.size:
        raise ImageError(f"{path}: unsupported 16-bit {pil.format} layout ({array.dtype}, shape {array.shape})")
    if array.ndim == 2:
        return array[..., None]
    channels = array.shape[2]
    if pil.mode in _GREY_MODES:  # OpenCV expands grey+alpha to BGRA
        return array[..., [0, 3]] if channels == 4 else array[..., :1]
    if channels == 3:
        return array[..., ::-1]
    if channels == 4:
        return array[..., [2, 1, 0, 3]]
    raise ImageError(f"{path}: unsupported 16-bit {pil.format} layout ({channels} channels)")


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to HxWxC samples, as Pillow's ImageOps.exif_transpose would."""
    transform = _ORIENTATIONS.get(orientation)
    return array if transform is None else np.ascontiguousarray(transform(array))


# EXIF orientation -> the transform that puts the picture upright (1 means already upright).
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored and upside down
    5: lambda a: a.swapaxes(0, 1),  # transpose
    6: lambda a: np.rot90(a, -1),  # needs 90 degrees clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transverse
    8: lambda a: np.rot90(a, 1),  # needs 90 degrees counter-clockwise
}


def _to_image(samples: np.ndarray, bit_depth: int) -> Image:
    """Split colour from alpha and scale colour to float [0, 1]; alpha keeps its raw samples."""
    colour_channels = 1 if samples.shape[2] in (1, 2) else 3
    alpha = samples[..., colour_channels].copy() if samples.shape[2] in (2, 4) else None
    pixels = samples[..., :colour_channels].astype(np.float32) / float(2**bit_depth - 1)
    return Image(pixels=pixels, alpha=alpha, bit_depth=bit_depth)


# --------------------------------------------------------------------------- writing


def write_image(path: str | Path, image: Image, *, overwrite: bool = False, jpeg_quality: int = 95) -> Path:
    """Encode ``image`` in the format named by the extension and write it atomically.

    16-bit images stay 16-bit in PNG and TIFF and are rounded to 8 bits elsewhere. Alpha is
    written unchanged to PNG, TIFF and WebP and dropped (not composited) for JPEG and BMP.
    WebP is written lossless; ``jpeg_quality`` only affects JPEG. Parent folders are created.
    """
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"JPEG quality must be between 1 and 100, got {jpeg_quality}")
    path = Path(path)
    fmt = _format_for(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: exists; use --overwrite")
    data = _encode(image, fmt, jpeg_quality, path)
    atomic_write_bytes(path, data, overwrite=overwrite, error=ImageError)
    return path


def _format_for(path: Path) -> str:
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        shown = path.suffix or "no extension"
        folder = "" if path.suffix else f", or {path}/ for a folder"
        raise ImageError(f"{path}: unknown output format ({shown}); use one of {_format_list()}{folder}") from None


def _encode(image: Image, fmt: str, jpeg_quality: int, path: Path) -> bytes:
    """The encoded file contents; encoding happens in memory, before anything touches disk."""
    bit_depth = 16 if image.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS else 8
    samples = _quantise(image.pixels, bit_depth)
    if image.alpha is not None and fmt in _ALPHA_FORMATS:
        samples = np.concatenate([samples, _alpha_at(image.alpha, bit_depth)[..., None]], axis=2)
    try:
        if bit_depth == 16:
            return _encode_16bit(samples, fmt, image.metadata)
        return _encode_8bit(samples, fmt, jpeg_quality, image.metadata)
    except Exception as error:
        raise ImageError(f"{path}: could not encode as {fmt} ({_reason(error)})") from error


def _quantise(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] -> unsigned integers, rounded to nearest, clipped; NaN becomes 0."""
    top = 2**bit_depth - 1
    scaled = np.rint(np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0) * top)
    return np.clip(scaled, 0, top).astype(np.uint16 if bit_depth == 16 else np.uint8)


def _alpha_at(alpha: np.ndarray, bit_depth: int) -> np.ndarray:
    """Alpha samples at the output depth: unchanged when the depth matches, rescaled otherwise."""
    target = np.uint16 if bit_depth == 16 else np.uint8
    if alpha.dtype == target:
        return alpha
    if alpha.dtype == np.uint8:  # 8 -> 16 bits: exact, v * 257 maps 255 to 65535
        return alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint16:
        return np.rint(alpha / 257.0).astype(np.uint8)
    return _quantise(alpha, bit_depth)  # float alpha from a caller, assumed in [0, 1]


def _encode_8bit(samples: np.ndarray, fmt: str, jpeg_quality: int, metadata: Metadata | None = None) -> bytes:
    """Pillow for all 8-bit output: it handles grey+alpha, lossless WebP and metadata, unlike OpenCV.

    Metadata a format cannot hold (EXIF over JPEG's 64 kB, say) is dropped rather than failing.
    """
    pil = PILImage.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": jpeg_quality, "subsampling": 0}  # 4:4:4 keeps restored detail
    elif fmt == "WEBP":
        options = {"lossless": True, "exact": True}
    elif fmt == "TIFF":
        options = {"compression": "tiff_adobe_deflate"}
    extra = _pillow_metadata(_fitting(metadata, grey=samples.shape[2] in (1, 2)), fmt)
    # all of it, then without EXIF (the part a format most often refuses: JPEG's 64 kB), then none
    for kept in (extra, {k: v for k, v in extra.items() if k != "exif"}):
        if kept:
            try:
                return _pillow_bytes(pil, fmt, {**options, **kept})
            except Exception:
                continue
    return _pillow_bytes(pil, fmt, options)


def _pillow_bytes(pil: PILImage.Image, fmt: str, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def profile_fits(icc: bytes, *, grey: bool) -> bool:
    """Whether ICC profile ``icc`` describes pixels of this kind: its header's colour space is RGB
    for RGB pixels, GRAY for grey ones. A CMYK source's profile would make the converted RGB
    pixels display wrongly."""
    return icc[16:20] == (b"GRAY" if grey else b"RGB ")


def _fitting(metadata: Metadata | None, *, grey: bool) -> Metadata:
    """``metadata`` with the profile only if it fits the output's pixels (:func:`profile_fits`)."""
    if metadata is None:
        return Metadata()
    icc = metadata.icc_profile
    if icc is not None and not profile_fits(icc, grey=grey):
        return replace(metadata, icc_profile=None)
    return metadata


def _pillow_metadata(metadata: Metadata, fmt: str) -> dict[str, object]:
    """Pillow save options: BMP takes none, WebP no DPI, TIFF no EXIF (libtiff refuses the EXIF
    sub-IFDs Pillow writes)."""
    options: dict[str, object] = {}
    if fmt not in ("PNG", "JPEG", "TIFF", "WEBP"):
        return options
    if metadata.icc_profile is not None:
        options["icc_profile"] = metadata.icc_profile
    if metadata.exif is not None and fmt != "TIFF":
        options["exif"] = metadata.exif
    if metadata.dpi is not None and fmt != "WEBP":
        options["dpi"] = metadata.dpi
    return options


def _encode_16bit(samples: np.ndarray, fmt: str, metadata: Metadata | None = None) -> bytes:
    """16-bit PNG through OpenCV, its metadata chunks added after; 16-bit TIFF through tifffile,
    which writes the profile and DPI tags itself. Pillow cannot write 16-bit colour. Expects RGB.

    OpenCV has no two-channel layout, so 16-bit grey+alpha is written as RGBA (in TIFF too, so
    both read back the same way).
    """
    if samples.shape[2] == 2:
        samples = samples[..., [0, 0, 0, 1]]
    kept = _fitting(metadata, grey=samples.shape[2] == 1)
    if fmt == "TIFF":
        return _tiff_16bit(samples, kept)
    bgr = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[samples.shape[2]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(samples[..., bgr]))
    if not ok:
        raise ValueError("OpenCV could not encode 16-bit PNG")
    return _png_with_metadata(encoded.tobytes(), kept)


def _tiff_16bit(samples: np.ndarray, metadata: Metadata) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples[..., 0] if samples.shape[2] == 1 else samples,
        photometric="minisblack" if samples.shape[2] == 1 else "rgb",
        extrasamples=["unassalpha"] if samples.shape[2] == 4 else None,
        compression="zlib",
        iccprofile=metadata.icc_profile,
        resolution=metadata.dpi,
        resolutionunit="INCH" if metadata.dpi is not None else None,
    )
    return buffer.getvalue()


def _png_with_metadata(png: bytes, metadata: Metadata) -> bytes:
    """``png`` with iCCP, pHYs and eXIf chunks inserted after its header chunk (PNG spec 11.3)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    chunks = b""
    if metadata.icc_profile is not None:
        chunks += chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata.dpi is not None:
        per_metre = [round(v / 0.0254) for v in metadata.dpi]
        chunks += chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1))
    if metadata.exif is not None:
        exif = metadata.exif
        chunks += chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    header_end = 8 + 25  # the signature, then IHDR: length, type, 13 bytes of data, CRC
    return png[:header_end] + chunks + png[header_end:]


# --------------------------------------------------------------------------- paths


def list_images(
    inputs: Sequence[str | Path], *, recursive: bool = False, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> list[Path]:
    """Expand command-line inputs into image files, in a stable order, without duplicates.

    Files are taken as given, whatever their extension, so read_image can say what is wrong
    with them. Folders are searched for ``extensions`` (any case), skipping hidden entries,
    which includes our own temp files; subfolders only when ``recursive``.
    """
    wanted = tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    found: dict[Path, None] = {}  # an ordered set
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(_scan(path, wanted, recursive))
            if not images:
                raise ImageError(_no_images_message(path, wanted, recursive))
            found.update(dict.fromkeys(images))
        elif path.exists():
            found[path] = None
        else:
            raise ImageError(f"{path}: no such file or folder")
    return list(found)


def list_unread(inputs: Sequence[str | Path], *, recursive: bool = False) -> list[Path]:
    """The pictures in the folders among ``inputs`` that m3restore does not read
    (``OTHER_IMAGE_EXTENSIONS``): commands name them as failures, not pass over them."""
    return [
        p
        for item in inputs
        if Path(item).is_dir()
        for p in sorted(_scan(Path(item), OTHER_IMAGE_EXTENSIONS, recursive))
    ]


def unread_message(path: Path) -> str:
    """One line for a picture in a format m3restore does not read."""
    return f"{path}: {path.suffix[1:].upper()} is not read by m3restore; convert it to one of {_format_list()}"


def _scan(folder: Path, wanted: tuple[str, ...], recursive: bool) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not _is_hidden(name)] if recursive else []
        for name in files:
            if not _is_hidden(name) and os.path.splitext(name)[1].lower() in wanted:
                yield Path(root, name)


def _is_hidden(name: str) -> bool:
    """Dot files, which include our temp files (``.name.tmp-XXXX.ext``)."""
    return name.startswith(".")


def _no_images_message(folder: Path, extensions: Sequence[str], recursive: bool) -> str:
    message = f"{folder}/: no images (looked for {', '.join(extensions)})"
    if unread := list_unread([folder], recursive=recursive):
        kinds = sorted({path.suffix[1:].upper() for path in unread})
        message += f"; {len(unread)} {'/'.join(kinds)} file(s) found, a format m3restore does not read"
    has_subfolders = any(entry.is_dir() and not _is_hidden(entry.name) for entry in folder.iterdir())
    if not recursive and has_subfolders:
        message += "; subfolders are searched only with --recursive"
    return message


def check_output_ext(ext: str | None) -> str | None:
    """``ext`` ("png", ".jpg" …) normalised to a writable extension with its dot; None stays None
    (keep each input's own). A format we cannot write is a :class:`ConfigError` naming the ones we can."""
    if ext is None:
        return None
    normal = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if normal not in _FORMATS:
        raise ConfigError(f"--ext {ext}: not a format m3restore writes; choose from {_format_list()}")
    return normal


def output_path(
    input_path: Path,
    output: Path | str | None,
    *,
    suffix: str = "_restored",
    many: bool,
    ext: str | None = None,
) -> Path:
    """Where the result for ``input_path`` goes.

    * ``output`` None: beside the input, as ``<stem><suffix><ext>``.
    * ``many`` (several inputs), an existing folder, or a string ending in a slash: inside
      ``output`` as ``<stem><suffix><ext>``.
    * otherwise ``output`` is the file to write.

    ``ext`` defaults to the input's extension. The input itself is never returned.
    """
    input_path = Path(input_path)
    asked = check_output_ext(ext)
    ext = input_path.suffix if asked is None else asked
    name = f"{input_path.stem}{suffix}{ext}"
    if output is None:
        target = input_path.with_name(name)
    else:
        as_folder = str(output).endswith(("/", os.sep))
        output = Path(output)
        if many and output.is_file():
            raise ImageError(f"{output}: is a file, but several inputs need an output folder")
        target = output / name if many or as_folder or output.is_dir() else output
    fmt = _format_for(target)  # an output we cannot write is found before any work is done
    if asked is not None and fmt != _FORMATS[asked]:
        raise ConfigError(f"{target}: the file name says {fmt} but --ext asks for {asked[1:]}; change one of them")
    if _same_file(target, input_path):
        raise ImageError(f"{target}: refusing to overwrite the input; choose another output or suffix")
    return target


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links, case-insensitive FS
    except OSError:
        return False


# --------------------------------------------------------------------------- helpers


def _fit_alpha(alpha: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if alpha is None or alpha.shape == tuple(shape):
        return alpha
    height, width = shape
    shrinking = height * width < alpha.size
    return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _pixels(count: int) -> str:
    """``"24.0 MP"``, or ``"48,000 pixels"`` for counts that would read as 0.0 MP."""
    return f"{count / 1e6:.1f} MP" if count >= 100_000 else f"{count:,} pixels"


def _format_list() -> str:
    return ", ".join(IMAGE_EXTENSIONS)


def _reason(error: BaseException) -> str:
    """One line from an exception, for embedding in a user-facing message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
