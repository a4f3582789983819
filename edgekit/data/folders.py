"""Image-folder data sets: one subfolder per class, or a flat folder of unlabelled images.

Class index = position of the subfolder name in sorted order (or in the
``class_names`` the caller passes, e.g. a bundle's labels). Files are listed
in sorted order so the same folder always gives the same data set.

Loading lists the files and decodes each once (in parallel, keeping nothing)
to leave out unreadable ones before the split, exactly as a full read would;
the pixels are decoded again, in batches, when a consumer reads them.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgekit.data.dataset import Dataset
from edgekit.data.source import ImageFiles, parallel_map
from edgekit.errors import DataError
from edgekit.preprocess import IMAGE_EXTENSIONS, PreprocessSpec, is_image_name, list_files, list_images, read_image

_SHOWN = 5  # how many skipped names one warning lists


class SkippedFilesWarning(UserWarning):
    """Some files in a data set folder were not usable images and were left out."""


def load_image_folder(
    root: Path, spec: PreprocessSpec, *, labelled: bool | None = None, class_names: list[str] | None = None
) -> Dataset:
    """List the readable images under ``root`` (decoded on demand); see :func:`edgekit.data.load_dataset`."""
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if labelled is None:
        labelled = bool(class_dirs)
    skipped: list[tuple[Path, str]] = []
    if labelled:
        if not class_dirs:
            raise DataError(
                f"data set folder {root} has no class subfolders; expected one subfolder per class "
                f"(e.g. {root / 'cat'}/*.jpg).",
                hint="For unlabelled (calibration) images pass labelled=False.",
            )
        names = [d.name for d in class_dirs]
        class_names = _class_index(root, names, class_names)
        candidates = [(f, class_names.index(d.name)) for d in class_dirs for f in list_images(d)]
        skipped += [(f, "not an image") for d in class_dirs for f in list_files(d) if not is_image_name(f)]
        # Root-level files in a labelled folder: images have no class to go to;
        # anything else (README, LICENSE) is documentation and is left alone.
        skipped += [(f, "not in a class folder") for f in list_images(root, recursive=False)]
    else:
        candidates = [(f, -1) for f in list_images(root)]
        skipped += [(f, "not an image") for f in list_files(root) if not is_image_name(f)]
        class_names = list(class_names or [])

    labels: list[int] = []
    paths: list[str] = []
    readable = parallel_map(lambda f: read_image(f) is not None, (f for f, _ in candidates))
    for (f, label), ok in zip(candidates, readable):
        if not ok:
            skipped.append((f, "unreadable"))
            continue
        paths.append(str(f))
        labels.append(label)

    if skipped:
        _warn_skipped(root, skipped)
    if not paths:
        where = "in its class subfolders" if labelled else "in it"
        raise DataError(
            f"data set folder {root} has no readable images {where}; expected {'/'.join(IMAGE_EXTENSIONS)} files"
            + (f" (skipped {len(skipped)} unusable file(s))." if skipped else "."),
        )
    return Dataset(
        reader=ImageFiles(paths, spec),
        index=np.arange(len(paths), dtype=np.int64),
        y=np.asarray(labels, dtype=np.int64) if labelled else None,
        class_names=class_names,
        paths=paths,
        skipped=[str(f) for f, _ in skipped],
        source=str(root),
    )


def _class_index(root: Path, found: list[str], given: list[str] | None) -> list[str]:
    if given is None:
        return found
    unknown = [n for n in found if n not in given]
    if unknown:
        raise DataError(
            f"data set folder {root} has class folder(s) {unknown} that are not among the expected classes {given}.",
            hint="Rename or remove those folders, or pass class_names that include them.",
        )
    return list(given)


def _warn_skipped(root: Path, skipped: list[tuple[Path, str]]) -> None:
    reasons: dict[str, int] = {}
    for _, why in skipped:
        reasons[why] = reasons.get(why, 0) + 1
    names = [f.relative_to(root).as_posix() for f, _ in skipped[:_SHOWN]]
    more = f", ... (+{len(skipped) - _SHOWN} more)" if len(skipped) > _SHOWN else ""
    detail = ", ".join(f"{n} {why}" for why, n in reasons.items())
    warnings.warn(
        f"skipped {len(skipped)} file(s) in {root} ({detail}): {', '.join(names)}{more}",
        SkippedFilesWarning,
        stacklevel=4,  # user -> load_dataset -> load_image_folder -> here
    )
