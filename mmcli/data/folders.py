"""A class-per-folder image tree (torchvision's ImageFolder layout) read as a manifest.

    photos/cat/1.jpg            each sub-folder is a class; images anywhere below it (recursively)
    photos/cat/1.txt            optional caption beside the image: its text input
    photos/train/cat/1.jpg      optional split level: train/ val/ test/ (or training, valid, validation, dev)

The inferred manifest has columns image (path relative to the root), text (when any caption exists), label, and
split (with a split level); `mm preprocess DIR --write-manifest FILE` writes it. Rows are in sorted path order.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mmcli.data.formats import Table
from mmcli.data.manifest import IMAGE_EXTENSIONS
from mmcli.data.validate import SPLIT_NAMES
from mmcli.errors import DataError

CAPTION = ".txt"


def _visible(names: list[str]) -> list[str]:
    # .DS_Store, .ipynb_checkpoints, ._ resource forks: tool litter, never data
    return sorted(n for n in names if not n.startswith("."))


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) below `folder`, recursively, in sorted order (captions are neither)."""
    images, others = [], []
    for here, dirs, files in os.walk(folder):
        dirs[:] = _visible(dirs)
        names = _visible(files)
        stems = {os.path.splitext(n)[0] for n in names if n.lower().endswith(IMAGE_EXTENSIONS)}
        for n in names:
            if n.lower().endswith(IMAGE_EXTENSIONS):
                images.append(Path(here) / n)
            elif not (n.lower().endswith(CAPTION) and os.path.splitext(n)[0] in stems):
                others.append(Path(here) / n)
    return images, others


def _caption(image: Path) -> tuple[str | None, str | None]:
    """(caption text or None when there is no caption file, problem or None)."""
    txt = image.with_suffix(CAPTION)
    if not txt.is_file():
        return None, None
    try:
        return " ".join(txt.read_text(encoding="utf-8-sig").split()), None
    except UnicodeDecodeError:
        return "", f"caption {txt.name} is not UTF-8 text; re-save it as UTF-8"
    except OSError as exc:
        return "", f"caption {txt.name} cannot be read ({exc.strerror or exc})"


def _classes(root: Path) -> list[tuple[str, str, Path]]:
    """[(split or "", class name, class folder)]; a split level is used when every top-level folder names a split."""
    tops = [d for d in _visible(os.listdir(root)) if (root / d).is_dir()]
    if tops and all(d.lower() in SPLIT_NAMES for d in tops):
        return [(s, c, root / s / c) for s in tops for c in _visible(os.listdir(root / s)) if (root / s / c).is_dir()]
    return [("", c, root / c) for c in tops]


def read_folder(root: Path) -> Table:
    """Folder tree -> Table. Raises DataError naming the folder when it holds no images in class folders."""
    from mmcli.progress import warn

    classes = _classes(root)
    split_level = any(s for s, _, _ in classes)
    levels = [root] + sorted({root / s for s, _, _ in classes if s})
    loose = [d / n for d in levels for n in _visible(os.listdir(d)) if n.lower().endswith(IMAGE_EXTENSIONS)]
    found = [(s, c, _walk(folder)) for s, c, folder in classes]
    if not any(images for _, _, (images, _) in found):
        raise DataError(f"{root}: no images in class folders; a folder data set has one sub-folder per class with "
                        "images inside (photos/cat/1.jpg), optionally under train/ val/ test/")
    entries: list[tuple[str, str, Path, str | None]] = []  # (split, label, image, problem)
    for split, label, (images, others) in found:
        if not images:
            warn(f"{root / split / label}: class folder without images; the class has no examples")
        if others:
            warn(f"{root / split / label}: skipped {len(others)} file(s) that are neither images nor captions "
                 f"(e.g. {others[0].name})")
        alone = len(images) == 1 and not split_level
        why = f"class folder {label}/ holds only this image; a class needs 2 or more (to train and validate)"
        entries += [(split, label, img, why if alone else None) for img in images]
    entries += [("", "", img, "image is not inside a class folder") for img in loose]
    return _table(root, entries, split_level)


def _table(root: Path, entries: list[tuple[str, str, Path, str | None]], split_level: bool) -> Table:
    rows, problems = [], {}
    captions = [_caption(img) for _, _, img, _ in entries]
    with_text = any(text is not None for text, _ in captions)
    header = ["image"] + (["text"] if with_text else []) + ["label"] + (["split"] if split_level else [])
    for i, ((split, label, img, why), (text, text_problem)) in enumerate(zip(entries, captions)):
        row = {"image": img.relative_to(root).as_posix(), "text": text or "", "label": label, "split": split}
        rows.append({h: row[h] for h in header})
        if why or text_problem:
            problems[i] = [("image", why)] if why else [("text", text_problem)]
    # the image files themselves are covered by the cache's per-file fingerprint (size, mtime)
    digest = hashlib.sha256(json.dumps([header, rows]).encode()).hexdigest()
    numbers = list(range(2, len(rows) + 2))  # as in the CSV that --write-manifest writes: the header is row 1
    return Table(header, rows, numbers, "folder", digest, problems, base=root)
