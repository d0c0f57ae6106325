"""Tests for m3restore.io: every image here is a few pixels, made in tmp_path."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from m3restore import io as mio
from m3restore.errors import ConfigError, ImageError
from m3restore.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Image,
    from_uint8,
    list_images,
    output_path,
    read_image,
    to_uint8,
    write_image,
)

LOSSLESS = [".png", ".tif", ".tiff", ".webp", ".bmp"]
ALPHA_FORMATS = [".png", ".tif", ".tiff", ".webp"]


def random_u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def random_u16(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def smooth_rgb(height=16, width=24):
    """A gradient JPEG can keep almost exactly, unlike noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, (x + y) / (width + height)], axis=2)


def image_u8(samples: np.ndarray) -> Image:
    """An Image from HxWxC uint8 samples (C = 1, 2, 3 or 4), as read_image would build it."""
    colour = 1 if samples.shape[2] in (1, 2) else 3
    alpha = samples[..., colour].copy() if samples.shape[2] in (2, 4) else None
    return Image(pixels=from_uint8(samples[..., :colour]), alpha=alpha, bit_depth=8)


def assert_one_line_naming(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert path.name in message
    assert "\n" not in message
    return message


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming a size, followed by a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", LOSSLESS)
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_round_trip_is_exact(tmp_path, ext, channels):
    samples = random_u8((5, 7, channels))
    path = write_image(tmp_path / f"out{ext}", image_u8(samples))
    loaded = read_image(path)
    assert loaded.bit_depth == 8
    assert loaded.alpha is None
    if channels == 1 and ext != ".webp":  # WebP has no grey layout
        assert loaded.is_grey
    assert np.array_equal(to_uint8(loaded.pixels), samples if loaded.is_grey else np.broadcast_to(samples, (5, 7, 3)))


@pytest.mark.parametrize("ext", [".jpg", ".jpeg"])
def test_jpeg_round_trip_is_close(tmp_path, ext):
    pixels = smooth_rgb()
    loaded = read_image(write_image(tmp_path / f"out{ext}", Image(pixels=pixels)))
    assert loaded.pixels.shape == pixels.shape
    assert np.abs(loaded.pixels - pixels).mean() < 0.01


def test_jpeg_grey_stays_grey(tmp_path):
    pixels = smooth_rgb()[..., :1]
    loaded = read_image(write_image(tmp_path / "grey.jpg", Image(pixels=pixels)))
    assert loaded.is_grey
    assert np.abs(loaded.pixels - pixels).max() < 0.03


@pytest.mark.parametrize("ext", ALPHA_FORMATS)
@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_bit_exact(tmp_path, ext, channels):
    samples = random_u8((6, 5, channels), seed=1)
    samples[0, 0, -1] = 0  # a fully transparent pixel must keep its colour too (WebP exact mode)
    loaded = read_image(write_image(tmp_path / f"a{ext}", image_u8(samples)))
    assert loaded.alpha is not None and loaded.alpha.dtype == np.uint8
    assert np.array_equal(loaded.alpha, samples[..., -1])
    colour = to_uint8(loaded.pixels)
    expected = samples[..., :-1]
    assert np.array_equal(colour[..., :1] if channels == 2 else colour, expected)


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_alpha_is_dropped_where_the_format_has_none(tmp_path, ext):
    samples = random_u8((6, 5, 4), seed=2)
    loaded = read_image(write_image(tmp_path / f"a{ext}", image_u8(samples)))
    assert loaded.alpha is None
    assert loaded.pixels.shape == (6, 5, 3)


def test_alpha_is_read_from_the_file_untouched(tmp_path):
    samples = random_u8((4, 3, 4), seed=3)
    PILImage.fromarray(samples).save(tmp_path / "rgba.png")
    loaded = read_image(tmp_path / "rgba.png")
    assert np.array_equal(loaded.alpha, samples[..., 3])
    assert np.array_equal(to_uint8(loaded.pixels), samples[..., :3])


def test_palette_png_with_transparency_reads_as_rgba(tmp_path):
    palette_image = PILImage.fromarray(random_u8((4, 4, 3), seed=4)).quantize(colors=4)
    palette_image.save(tmp_path / "p.png", transparency=0)
    loaded = read_image(tmp_path / "p.png")
    assert loaded.pixels.shape == (4, 4, 3) and loaded.alpha is not None


# --------------------------------------------------------------------------- 16 bits


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_files_read_exactly(tmp_path, ext, channels):
    rgb_samples = random_u16((5, 6, channels), seed=channels)
    bgr = rgb_samples[..., {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]]
    path = tmp_path / f"deep{ext}"
    assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))
    loaded = read_image(path)
    assert loaded.bit_depth == 16
    colour = rgb_samples[..., :1] if channels == 1 else rgb_samples[..., :3]
    assert np.array_equal(np.rint(loaded.pixels * 65535).astype(np.uint16), colour)
    if channels == 4:
        assert loaded.alpha.dtype == np.uint16 and np.array_equal(loaded.alpha, rgb_samples[..., 3])


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_round_trip_is_exact(tmp_path, ext, channels):
    samples = random_u16((5, 6, channels), seed=7)
    alpha = random_u16((5, 6), seed=8)
    image = Image(pixels=samples.astype(np.float32) / 65535, alpha=alpha, bit_depth=16)
    loaded = read_image(write_image(tmp_path / f"deep{ext}", image))
    assert loaded.bit_depth == 16
    assert np.array_equal(loaded.alpha, alpha)
    restored = np.rint(loaded.pixels * 65535).astype(np.uint16)
    if channels == 1:
        assert not loaded.is_grey  # 16-bit grey+alpha has to be written as RGBA (documented)
        restored = restored[..., :1]
    assert np.array_equal(restored, samples)


def test_16bit_grey_without_alpha_stays_grey(tmp_path):
    samples = random_u16((4, 5, 1), seed=9)
    image = Image(pixels=samples.astype(np.float32) / 65535, bit_depth=16)
    loaded = read_image(write_image(tmp_path / "g16.png", image))
    assert loaded.is_grey and loaded.bit_depth == 16
    assert np.array_equal(np.rint(loaded.pixels * 65535).astype(np.uint16), samples)


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".bmp"])
def test_16bit_is_quantised_for_8bit_formats(tmp_path, ext):
    pixels = smooth_rgb()
    alpha = random_u16(pixels.shape[:2], seed=10)
    loaded = read_image(write_image(tmp_path / f"q{ext}", Image(pixels=pixels, alpha=alpha, bit_depth=16)))
    assert loaded.bit_depth == 8
    assert np.abs(loaded.pixels - pixels).max() < (0.05 if ext == ".jpg" else 0.5 / 255 + 1e-6)
    if ext == ".webp":
        assert np.array_equal(loaded.alpha, np.rint(alpha / 257).astype(np.uint8))


def test_non_ascii_path_works_for_16bit(tmp_path):
    samples = random_u16((3, 4, 3), seed=11)
    image = Image(pixels=samples.astype(np.float32) / 65535, bit_depth=16)
    path = write_image(tmp_path / "ünïcødé 图像" / "bild.png", image)
    loaded = read_image(path)
    assert np.array_equal(np.rint(loaded.pixels * 65535).astype(np.uint16), samples)


# --------------------------------------------------------------------------- orientation


def test_exif_orientation_6_rotates_jpeg(tmp_path):
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(random_u8((2, 4, 3))).save(tmp_path / "rotated.jpg", exif=exif)
    loaded = read_image(tmp_path / "rotated.jpg")
    assert loaded.size == (2, 4)
    assert loaded.pixels.shape == (4, 2, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    PILImage.fromarray(random_u8((3, 5, 3), seed=orientation)).save(path, exif=exif)
    with PILImage.open(path) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil))
    assert np.array_equal(to_uint8(read_image(path).pixels), expected)


# --------------------------------------------------------------------------- metadata


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_jpeg(path, *, orientation=6, icc=None):
    """A small camera-like JPEG: a colour profile, EXIF in both IFDs, 300 DPI, turned on its side."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal, in the Exif sub-IFD
    icc = srgb_profile() if icc is None else icc
    PILImage.fromarray(random_u8((6, 10, 3))).save(path, quality=95, icc_profile=icc, exif=exif, dpi=(300, 300))
    return icc


@pytest.mark.parametrize("ext, keeps_exif, keeps_dpi", [(".jpg", True, True), (".png", True, True),
                                                     (".webp", True, False), (".tif", False, True)])  # fmt: skip
def test_metadata_is_written_back_upright(tmp_path, ext, keeps_exif, keeps_dpi):
    icc = camera_jpeg(tmp_path / "in.jpg")
    loaded = read_image(tmp_path / "in.jpg")
    out = write_image(tmp_path / f"out{ext}", loaded.with_rgb(loaded.rgb()))
    with PILImage.open(out) as pil:
        assert pil.info.get("icc_profile") == icc
        exif = pil.getexif()
        if keeps_exif:
            assert exif[0x010F] == "Canon" and exif.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
            assert exif[0x0112] == 1  # the pixels are already turned; a 6 would turn them twice
        assert pil.size == (6, 10)
        if keeps_dpi:
            assert pil.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert read_image(out).pixels.shape == (10, 6, 3)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_output_keeps_metadata(tmp_path, ext, channels):
    exif = PILImage.Exif()
    exif[0x010F] = "Nikon"
    grey = channels == 1
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if grey:  # a grey profile: the same bytes marked as a GRAY colour space are enough for the check
        icc = icc[:16] + b"GRAY" + icc[20:]
    metadata = mio.Metadata(icc_profile=icc, exif=exif.tobytes(), dpi=(240.0, 240.0))
    pixels = random_u16((5, 7, min(channels, 3))).astype(np.float32) / 65535
    alpha = random_u16((5, 7), seed=1) if channels == 4 else None
    out = write_image(tmp_path / f"deep{ext}", Image(pixels, alpha, 16, metadata))
    back = read_image(out)
    assert back.bit_depth == 16 and np.array_equal(_quantise16(back.pixels), _quantise16(pixels))
    assert back.metadata.icc_profile == icc and back.metadata.dpi == pytest.approx((240, 240), abs=0.01)
    if ext == ".png":
        with PILImage.open(out) as pil:
            assert pil.getexif()[0x010F] == "Nikon"


def _quantise16(pixels):
    return np.rint(pixels * 65535).astype(np.uint16)


def test_metadata_is_left_out_where_it_would_be_wrong(tmp_path):
    camera_jpeg(tmp_path / "in.jpg")
    loaded = read_image(tmp_path / "in.jpg")
    grey = Image(loaded.pixels[..., :1], metadata=loaded.metadata)  # an RGB profile on grey pixels
    with PILImage.open(write_image(tmp_path / "grey.png", grey)) as pil:
        assert "icc_profile" not in pil.info and pil.getexif()[0x010F] == "Canon"
    cmyk = mio.Metadata(icc_profile=srgb_profile()[:16] + b"CMYK" + srgb_profile()[20:])
    with PILImage.open(write_image(tmp_path / "cmyk.png", Image(loaded.pixels, metadata=cmyk))) as pil:
        assert "icc_profile" not in pil.info
    with PILImage.open(write_image(tmp_path / "plain.bmp", loaded)) as pil:
        assert "icc_profile" not in pil.info  # BMP carries none, and writing it still works


def test_a_bigger_result_keeps_its_print_size(tmp_path):
    camera_jpeg(tmp_path / "in.jpg")
    loaded = read_image(tmp_path / "in.jpg")
    bigger = loaded.with_rgb(np.repeat(np.repeat(loaded.rgb(), 2, axis=0), 2, axis=1))
    assert bigger.metadata.dpi == (600.0, 600.0) and loaded.metadata.dpi == (300.0, 300.0)


def test_a_file_without_metadata_has_none(tmp_path):
    PILImage.fromarray(random_u8((4, 4, 3))).save(tmp_path / "bare.png")
    assert read_image(tmp_path / "bare.png").metadata is None


def test_exif_too_large_for_jpeg_is_dropped_not_fatal(tmp_path):
    exif = PILImage.Exif()
    exif[0x010F] = "Canon"
    exif[0x9286] = "x" * 70000  # UserComment: larger than a JPEG APP1 segment can hold
    PILImage.fromarray(random_u8((4, 4, 3))).save(tmp_path / "big.png", exif=exif, icc_profile=srgb_profile())
    loaded = read_image(tmp_path / "big.png")
    assert loaded.metadata is not None and len(loaded.metadata.exif) > 65535
    out = read_image(write_image(tmp_path / "out.jpg", loaded))
    assert out.pixels.shape == (4, 4, 3)
    assert out.metadata.icc_profile == srgb_profile() and out.metadata.exif is None  # the profile is kept


# --------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as error:
        read_image(tmp_path / "nothere.png")
    assert "no such file" in assert_one_line_naming(error, tmp_path / "nothere.png")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ImageError) as error:
        read_image(folder)
    assert "directory" in assert_one_line_naming(error, folder)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert "empty" in assert_one_line_naming(error, path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_truncated_file_errors_instead_of_loading_grey(tmp_path, ext):
    whole = tmp_path / f"whole{ext}"
    PILImage.fromarray(random_u8((32, 32, 3), seed=12)).save(whole)
    half = tmp_path / f"half{ext}"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError) as error:
        read_image(half)
    assert_one_line_naming(error, half)


def test_truncated_16bit_png(tmp_path):
    whole = tmp_path / "whole.png"
    assert cv2.imwrite(str(whole), random_u16((32, 32, 3)))
    half = tmp_path / "half16.png"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError) as error:
        read_image(half)
    assert_one_line_naming(error, half)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text\nover two lines\n")
    with pytest.raises(ImageError) as error:
        read_image(path)
    message = assert_one_line_naming(error, path)
    assert "not a readable image" in message and ".png" in message


def test_a_format_we_do_not_read_is_named(tmp_path):
    path = tmp_path / "anim.gif"
    PILImage.fromarray(random_u8((16, 16, 3))).save(path)
    with pytest.raises(ImageError) as error:
        read_image(path)
    message = assert_one_line_naming(error, path)
    assert "GIF is not supported" in message and ".png" in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [("scan.tiff", "TIFF of 2 pages"), ("clip.png", "animated PNG (2 frames)"), ("clip.webp", "animated WebP")],
)
def test_several_pictures_in_one_file_are_refused_not_cut_to_the_first(tmp_path, name, expected):
    path = tmp_path / name
    first, second = (PILImage.fromarray(random_u8((16, 24, 3), seed=s)) for s in (1, 2))
    first.save(path, save_all=True, append_images=[second])
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert expected in assert_one_line_naming(error, path)


def test_a_tiff_with_a_reduced_resolution_preview_is_one_picture(tmp_path):
    import tifffile

    path = tmp_path / "camera.tiff"
    page = random_u8((16, 24, 3))
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(page, photometric="rgb")
        tiff.write(page[::2, ::2], photometric="rgb", subfiletype=1)  # bit 0: reduced resolution
    np.testing.assert_array_equal(to_uint8(read_image(path).pixels), page)


def test_corrupt_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    PILImage.fromarray(random_u8((16, 16, 3))).save(good)
    path = tmp_path / "corrupt.jpg"
    data = good.read_bytes()
    path.write_bytes(data[:4] + b"\x00" * 200 + data[204:])  # header segments destroyed
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert_one_line_naming(error, path)


def test_unsupported_format_is_refused(tmp_path):
    path = tmp_path / "anim.gif"
    PILImage.fromarray(random_u8((4, 4, 3))).save(path)
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert_one_line_naming(error, path)


# --------------------------------------------------------------------------- pixel limit


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(12_000, 10_000))  # claims 120 MP, holds no pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak
        with pytest.raises(ImageError) as error:
            read_image(path)
    message = assert_one_line_naming(error, path)
    assert "12000×10000 (120.0 MP) is over the 100.0 MP limit; raise it with --max-pixels" in message


def test_pixel_limit_can_be_lowered(tmp_path):
    path = write_image(tmp_path / "small.png", Image(pixels=np.zeros((10, 10, 3), np.float32)))
    read_image(path, max_pixels=100)
    with pytest.raises(ImageError, match=r"10×10 \(100 pixels\) is over the 99 pixels limit"):
        read_image(path, max_pixels=99)


def test_raised_limit_overrides_pillows_own_guard(tmp_path):
    """Pillow refuses more than ~179 MP outright; our limit replaces it and must be restored."""
    before = PILImage.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mio._open(png_header_only(20_000, 10_000), tmp_path / "huge.png", max_pixels=None) as pil:
            assert pil.size == (20_000, 10_000)
    assert PILImage.MAX_IMAGE_PIXELS == before
    assert DEFAULT_MAX_PIXELS == 100_000_000


# --------------------------------------------------------------------------- writing


def test_refuses_to_overwrite_without_permission(tmp_path):
    path = write_image(tmp_path / "out.png", image_u8(random_u8((3, 3, 3), seed=1)))
    before = path.read_bytes()
    with pytest.raises(ImageError) as error:
        write_image(path, image_u8(random_u8((3, 3, 3), seed=2)))
    assert "exists; use --overwrite" in assert_one_line_naming(error, path)
    assert path.read_bytes() == before
    write_image(path, image_u8(random_u8((3, 3, 3), seed=2)), overwrite=True)
    assert path.read_bytes() != before


def test_failed_encoding_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(mio, "_encode_8bit", broken)
    with pytest.raises(ImageError) as error:
        write_image(tmp_path / "out.png", image_u8(random_u8((3, 3, 3))))
    assert "encoder exploded" in assert_one_line_naming(error, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_removes_temp_and_keeps_old_file(tmp_path, monkeypatch, failure):
    path = write_image(tmp_path / "out.png", image_u8(random_u8((3, 3, 3), seed=1)))
    before = path.read_bytes()

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(mio.os, "fsync", broken_fsync)
    with pytest.raises(ImageError if isinstance(failure, OSError) else KeyboardInterrupt):
        write_image(path, image_u8(random_u8((3, 3, 3), seed=2)), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert path.read_bytes() == before


def test_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mio.os, "replace", broken_replace)
    with pytest.raises(ImageError, match="Permission denied"):
        write_image(tmp_path / "out.tif", image_u8(random_u8((3, 3, 3))))
    assert list(tmp_path.iterdir()) == []


def test_creates_parent_folders(tmp_path):
    path = write_image(tmp_path / "a" / "b" / "c.webp", image_u8(random_u8((2, 2, 3))))
    assert path.is_file()


def test_parent_that_is_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ImageError) as error:
        write_image(blocker / "deeper" / "out.png", image_u8(random_u8((2, 2, 3))))
    assert str(error.value).startswith(f"{blocker}: is a file")


def test_folder_refusing_new_files(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mio.os, "open", refuse)
    with pytest.raises(ImageError) as error:
        write_image(tmp_path / "out.png", image_u8(random_u8((2, 2, 3))))
    assert str(error.value) == f"{tmp_path}: cannot write here (Permission denied)"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ImageError) as error:
            write_image(locked / "out.png", image_u8(random_u8((2, 2, 3))))
        assert_one_line_naming(error, locked)
    finally:
        locked.chmod(0o755)


def test_unknown_extension_lists_supported(tmp_path):
    with pytest.raises(ImageError) as error:
        write_image(tmp_path / "out.gif", image_u8(random_u8((2, 2, 3))))
    message = assert_one_line_naming(error, tmp_path / "out.gif")
    assert all(ext in message for ext in IMAGE_EXTENSIONS)
    assert list(tmp_path.iterdir()) == []


def test_extension_is_case_insensitive(tmp_path):
    path = write_image(tmp_path / "OUT.PNG", image_u8(random_u8((2, 2, 3))))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_bad_jpeg_quality(tmp_path):
    with pytest.raises(ConfigError):
        write_image(tmp_path / "out.jpg", image_u8(random_u8((2, 2, 3))), jpeg_quality=0)


# --------------------------------------------------------------------------- Image and conversions


def test_image_accessors():
    grey = Image(pixels=np.full((2, 3, 1), 0.5, np.float32))
    assert grey.is_grey and grey.size == (3, 2)
    assert grey.rgb().shape == (2, 3, 3)
    colour = Image(pixels=np.zeros((2, 3, 3), np.float32))
    assert not colour.is_grey and colour.rgb().shape == (2, 3, 3)
    with pytest.raises(ValueError):
        Image(pixels=np.zeros((2, 3, 2), np.float32))


def test_with_rgb_keeps_grey_alpha_and_depth():
    alpha = np.arange(6, dtype=np.uint16).reshape(2, 3)
    grey = Image(pixels=np.zeros((2, 3, 1), np.float32), alpha=alpha, bit_depth=16)
    restored = grey.with_rgb(np.full((2, 3, 3), 0.25, np.float32))
    assert restored.is_grey and restored.bit_depth == 16
    assert restored.alpha is alpha
    assert np.allclose(restored.pixels, 0.25)


def test_with_rgb_clips_and_removes_nan():
    image = Image(pixels=np.zeros((1, 3, 3), np.float32))
    restored = image.with_rgb(np.array([[[-1, 2, np.nan]] * 3], np.float32))
    assert restored.pixels.dtype == np.float32
    assert restored.pixels.min() >= 0 and restored.pixels.max() <= 1
    assert not np.isnan(restored.pixels).any()


def test_with_rgb_resizes_alpha_for_a_new_size():
    image = Image(pixels=np.zeros((2, 3, 3), np.float32), alpha=np.full((2, 3), 200, np.uint8))
    restored = image.with_rgb(np.zeros((8, 12, 3), np.float32))
    assert restored.alpha.shape == (8, 12) and restored.alpha.dtype == np.uint8
    assert (restored.alpha == 200).all()


def test_uint8_conversions():
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_uint8(from_uint8(values)), values)
    assert from_uint8(values).dtype == np.float32
    assert list(to_uint8(np.array([-0.5, 0.0019, 0.002, 1.5, np.nan]))) == [0, 0, 1, 255, 0]
    with pytest.raises(TypeError):
        from_uint8(values.astype(np.uint16))


# --------------------------------------------------------------------------- list_images


@pytest.fixture
def tree(tmp_path):
    """tmp/b.png, tmp/A.JPG, tmp/notes.txt, tmp/.hidden.png, tmp/.x.png.tmp-ab12.png, tmp/sub/c.tif, tmp/.git/d.png"""
    for name in ["b.png", "A.JPG", "notes.txt", ".hidden.png", ".x.png.tmp-ab12.png", "sub/c.tif", ".git/d.png"]:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def test_list_images_flat(tree):
    assert list_images([tree]) == [tree / "A.JPG", tree / "b.png"]


def test_list_images_recursive(tree):
    assert list_images([tree], recursive=True) == [tree / "A.JPG", tree / "b.png", tree / "sub" / "c.tif"]


def test_list_images_takes_files_as_given_and_deduplicates(tree):
    found = list_images([tree / "notes.txt", tree, str(tree / "b.png")])
    assert found == [tree / "notes.txt", tree / "A.JPG", tree / "b.png"]


def test_list_images_custom_extensions(tree):
    assert list_images([tree], recursive=True, extensions=("tif",)) == [tree / "sub" / "c.tif"]


def test_list_images_missing_input(tmp_path):
    with pytest.raises(ImageError) as error:
        list_images([tmp_path / "gone"])
    assert_one_line_naming(error, tmp_path / "gone")


def test_list_images_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ImageError) as error:
        list_images([tmp_path / "empty"])
    message = assert_one_line_naming(error, tmp_path / "empty")
    assert f"{tmp_path / 'empty'}/: no images (looked for .png, .jpg" in message
    assert "does not read" not in message
    (tmp_path / "empty" / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(ImageError, match=r"; 1 GIF file\(s\) found, a format m3restore does not read$"):
        list_images([tmp_path / "empty"])


def test_list_images_hints_at_recursive(tmp_path):
    (tmp_path / "top" / "sub").mkdir(parents=True)
    (tmp_path / "top" / "sub" / "x.png").write_bytes(b"")
    with pytest.raises(ImageError, match="--recursive"):
        list_images([tmp_path / "top"])
    assert list_images([tmp_path / "top"], recursive=True) == [tmp_path / "top" / "sub" / "x.png"]


# --------------------------------------------------------------------------- output_path


def test_output_beside_input(tmp_path):
    assert output_path(tmp_path / "cat.jpg", None, many=False) == tmp_path / "cat_restored.jpg"
    assert output_path(tmp_path / "cat.jpg", None, many=True, ext="png") == tmp_path / "cat_restored.png"


def test_output_file_for_single_input(tmp_path):
    assert output_path(tmp_path / "cat.jpg", tmp_path / "clean.png", many=False) == tmp_path / "clean.png"
    assert output_path(tmp_path / "cat.jpg", tmp_path / "clean.jpeg", many=False, ext="jpg") == tmp_path / "clean.jpeg"


def test_output_file_name_and_ext_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="clean.jpg: the file name says JPEG but --ext asks for png"):
        output_path(tmp_path / "cat.png", tmp_path / "clean.jpg", many=False, ext="png")


def test_output_folder(tmp_path):
    out = tmp_path / "results"
    assert output_path(tmp_path / "cat.jpg", out, many=True) == out / "cat_restored.jpg"
    out.mkdir()
    assert output_path(tmp_path / "cat.jpg", out, many=False, suffix="", ext=".png") == out / "cat.png"
    assert output_path(tmp_path / "cat.jpg", f"{tmp_path}/new/", many=False) == tmp_path / "new" / "cat_restored.jpg"


def test_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "results").write_text("x")
    with pytest.raises(ImageError, match="results"):
        output_path(tmp_path / "cat.jpg", tmp_path / "results", many=True)


def test_output_never_the_input(tmp_path):
    source = tmp_path / "cat.png"
    source.write_bytes(b"")
    with pytest.raises(ImageError, match="refusing to overwrite the input"):
        output_path(source, None, many=False, suffix="")
    with pytest.raises(ImageError, match="refusing to overwrite the input"):
        output_path(source, tmp_path / "." / "cat.png", many=False)
    with pytest.raises(ImageError, match="refusing to overwrite the input"):
        output_path(source, tmp_path, many=True, suffix="")
