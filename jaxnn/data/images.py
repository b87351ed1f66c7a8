"""Image files as arrays — Chapter 9 and 11: every pixel format scaled to [0, 1], or refused.

What ``images:DIR`` and ``jaxnn predict`` read, with Pillow:

- 8-bit images (``1``, ``L``, ``LA``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``, ...) are
  converted by Pillow to gray (``L``) or ``RGB`` and divided by 255; an alpha channel is dropped
  (as Pillow's conversion drops it), a palette is looked up.
- 16-bit gray images (PNG's ``I;16``, or ``I`` with values in 0..65535) are divided by 65535,
  never clipped to 8 bits; for ``mode=rgb`` the gray channel is repeated.
- 32-bit float images (``F``) and 32-bit integers beyond 0..65535 have no fixed range and are
  refused.
- An image of more than :data:`MAX_IMAGE_PIXELS` pixels (width x height) is refused from its
  header, before it is decoded: a small file that claims a huge size is a decompression bomb.
  Pillow's own ``DecompressionBombWarning`` and ``DecompressionBombError`` are refused alike.

:func:`class_folders` lists a folder of class subfolders; entries whose names start with ``.``
(``.DS_Store``, ``.ipynb_checkpoints``, a hidden folder) and files that are not PNG or JPEG are
skipped, not read, and named in one line of ``DatasetInfo.notes`` (tools write such entries
everywhere, so refusing them would refuse ordinary folders; naming them means no class or image
disappears without a word).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from jaxnn.errors import UserError

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "class_folders", "image_array", "open_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: The most pixels (width x height) an image may have: 2**26, e.g. 8192 x 8192.
MAX_IMAGE_PIXELS = 2**26
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_SHOWN = 6  # skipped entries named in a note; the rest are counted


def pillow():
    """The ``PIL.Image`` module, or a UserError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError(
            "images: reading images needs Pillow; install it with `pip install pillow`"
        ) from None
    return Image


def _too_big(file, detail: str) -> UserError:
    return UserError(
        f"images: {file} {detail}, above the limit of {MAX_IMAGE_PIXELS:,} pixels "
        f"(jaxnn.data.images.MAX_IMAGE_PIXELS); expected a smaller image (a small file that "
        f"claims this size is a decompression bomb): shrink it first"
    )


@contextlib.contextmanager
def open_image(image_mod, file: Path):
    """Open ``file`` with Pillow, its size checked from the header before anything is decoded.

    Raises:
      UserError: for a file Pillow cannot read, or more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    bombs = (image_mod.DecompressionBombWarning, image_mod.DecompressionBombError)
    with warnings.catch_warnings():
        warnings.simplefilter("error", image_mod.DecompressionBombWarning)
        try:
            with image_mod.open(file) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise _too_big(file, f"is {im.width}x{im.height} = {im.width * im.height:,} "
                                         "pixels")  # fmt: skip
                yield im
        except UserError:
            raise
        except bombs as e:
            raise _too_big(file, f"is too large for Pillow ({e})") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise UserError(
                f"images: cannot read image {file}: {e}; expected a PNG or JPEG"
            ) from None


def image_array(image_mod, im, file, mode: str, size) -> np.ndarray:
    """The opened image as float32 (H, W, C) in [0, 1]: gray (C=1) or RGB (C=3), resized to
    ``size`` ``(H, W)`` (bilinear) unless None.

    Raises:
      UserError: for 32-bit float pixels, or 32-bit integers outside 0..65535.
    """
    if im.mode == "F":
        raise UserError(
            f"images: {file} holds 32-bit floating-point pixels (mode F), which have no fixed "
            f"range; expected 8- or 16-bit images"
        )
    if im.mode in _SIXTEEN_BIT:
        return _sixteen_bit(image_mod, im, file, mode, size)
    im = im.convert("L" if mode == "gray" else "RGB")
    if size is not None and (im.height, im.width) != size:
        im = im.resize((size[1], size[0]), image_mod.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)  # (H, W) or (H, W, 3)
    return arr.reshape(*arr.shape[:2], -1).astype(np.float32) / 255.0


def _sixteen_bit(image_mod, im, file, mode: str, size) -> np.ndarray:
    """A 16-bit gray image scaled by 65535 (resized in floating point)."""
    arr = np.asarray(im)
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise UserError(
            f"images: {file} holds 32-bit pixel values in [{arr.min()}, {arr.max()}] (mode "
            f"{im.mode}); expected 8- or 16-bit images (0..65535)"
        )
    gray = arr.astype(np.float32) / 65535.0
    if size is not None and gray.shape != size:
        resized = image_mod.fromarray(gray).resize(
            (size[1], size[0]), image_mod.Resampling.BILINEAR
        )
        gray = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    gray = gray[..., None]
    return np.repeat(gray, 3, axis=-1) if mode == "rgb" else gray


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The PNG and JPEG files directly in ``folder`` (sorted), and the names of the entries
    skipped (hidden, other files, subfolders; a folder's name ends with ``/``)."""
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        if _is_image(p):
            files.append(p)
        else:
            skipped.append(p.name + ("/" if p.is_dir() else ""))
    return files, skipped


def class_folders(path: Path, where: str) -> tuple[list[tuple[str, list[Path]]], tuple[str, ...]]:
    """``([(class name, sorted image files)], notes)``: one class per visible subfolder.

    Raises:
      UserError: for a missing folder, no class subfolders, or a class folder without images.
    """
    folders, skipped = _visible_folders(path, where)
    classes = []
    for folder in folders:
        files, passed = _class_images(where, folder)
        classes.append((folder.name, files))
        skipped += [f"{folder.name}/{name}" for name in passed]
    return classes, _skipped_note(where, skipped)


def _visible_folders(path: Path, where: str) -> tuple[list[Path], list[str]]:
    """The class subfolders (sorted, not hidden) and the names of the other entries."""
    if not path.is_dir():
        what = "directory not found" if not path.exists() else "not a directory"
        raise UserError(f"{where}: {what}; expected a directory with one subfolder per class")
    entries = sorted(path.iterdir())
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise UserError(f"{where}: no class subfolders; expected one subfolder of images per class")
    return folders, [p.name + ("/" if p.is_dir() else "") for p in entries if p not in folders]


def _class_images(where: str, folder: Path) -> tuple[list[Path], list[str]]:
    files, skipped = image_files(folder)
    if not files:
        raise UserError(
            f"{where}: class folder {folder} holds no images; expected PNG or JPEG files "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    return files, skipped


def _skipped_note(where: str, skipped: list[str]) -> tuple[str, ...]:
    if not skipped:
        return ()
    shown = ", ".join(skipped[:_SHOWN]) + (
        f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
    )
    return (
        f"{where}: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} that are not "
        f"class folders or PNG/JPEG images, or whose names start with '.': {shown}",
    )
