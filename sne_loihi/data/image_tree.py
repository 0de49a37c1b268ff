"""Reading an image-folder tree from a folder or an archive, without extracting anything.

A *source* is a folder, or a ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.zip`` file holding one. It
is listed as :class:`TreeEntry` records (paths inside the tree, sizes, modification times) and
read member by member in archive order (a gzipped tar has no random access). Archive members
are checked before anything is read: an absolute name, a ``..`` component, a link or a special
file is refused in one line, so nothing a tree holds can point outside it. Links inside a folder
tree are refused the same way.

How a listing becomes a data set (:func:`plan_tree`):

- one top-level folder wrapping everything (as ``cifar10-images/`` in the CIFAR-10 archive) is
  looked through (files beside it, such as a README, are skipped);
- ``train/<class>/...`` and ``test/<class>/...`` give the official split (the folder names
  in any case, ``training`` and ``testing`` too); images in other top-level folders beside
  them (``val/``) are skipped and counted apart;
- otherwise ``<class>/...`` is one tree, split later (seeded, stratified);
- class names are the sorted folder names (Python's ``sorted``, as torchvision's ``ImageFolder``),
  and a label is the index of its class in that order;
- files with an image suffix (:data:`IMAGE_SUFFIXES`) anywhere below a class folder are its
  images; every other file is skipped and counted (hidden files and folders and ``__MACOSX``
  are skipped without a count);
- fewer than two classes is an error (nothing to classify).
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sne_loihi.errors import DataError

#: File suffixes read as images (lower case): the formats Pillow decodes that image data sets use
#: (the Netpbm ones, ``.ppm`` etc., as in GTSRB).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
)
TAR_SUFFIXES: tuple[str, ...] = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES: tuple[str, ...] = (".zip",)
SPLITS: tuple[str, str] = ("train", "test")
#: Top-level folder names (lower-cased) that mean each split.
SPLIT_ALIASES: dict[str, frozenset[str]] = {"train": frozenset({"train", "training"}),
                                            "test": frozenset({"test", "testing"})}
#: Largest image file read (bytes): a member this size is refused before it is read.
MAX_IMAGE_BYTES = 256 * 2**20
LAYOUTS = "expected ROOT/train/<class>/* and ROOT/test/<class>/*, or ROOT/<class>/*"


@dataclass(frozen=True)
class TreeEntry:
    """One regular file of a tree.

    Attributes:
        parts: Its path inside the source, split into components.
        size: Size in bytes.
        mtime_ns: Modification time (ns; an archive member's second-resolution time).
    """

    parts: tuple[str, ...]
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        """The path inside the source, ``/``-separated."""
        return "/".join(self.parts)


def _checked_parts(name: str, where: str) -> tuple[str, ...]:
    """A member name's components, refusing absolute names and ``..``."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"imagefolder: {where} holds a member with an absolute path ({name!r}); refused")
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"imagefolder: {where} holds a member whose path climbs out with '..' ({name!r}); refused")
    return parts


def source_kind(path: Path) -> str:
    """``"folder"``, ``"tar"`` or ``"zip"`` for a source path (by type and suffix).

    Raises:
        DataError: Missing path, or a file that is not a known archive.
    """
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(f"imagefolder: {path} does not exist; {LAYOUTS} (a folder or a .tar/.tar.gz/.tgz/.zip of one)")
    low = path.name.lower()
    if low.endswith(TAR_SUFFIXES):
        return "tar"
    if low.endswith(ZIP_SUFFIXES):
        return "zip"
    raise DataError(f"imagefolder: {path} is neither a folder nor a .tar, .tar.gz, .tgz or .zip archive")


@dataclass
class TreeListing:
    """Every regular file and folder of a source.

    Attributes:
        files: Regular files, in reading order.
        folders: Folder paths (as component tuples), including those implied by files.
    """

    files: list[TreeEntry] = field(default_factory=list)
    folders: set[tuple[str, ...]] = field(default_factory=set)

    def add_file(self, entry: TreeEntry) -> None:
        self.files.append(entry)
        for i in range(1, len(entry.parts)):
            self.folders.add(entry.parts[:i])


def list_folder(root: Path) -> TreeListing:
    """The regular files under ``root`` (sorted walk).

    Raises:
        DataError: A link or a special file in the tree.
    """
    listing = TreeListing()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden((d,)))  # hidden folders are not read at all
        rel = Path(dirpath).relative_to(root).parts
        for d in dirnames:
            full = Path(dirpath) / d
            if full.is_symlink():
                raise DataError(f"imagefolder: {full} is a link; links in an image tree are refused")
            listing.folders.add((*rel, d))
        for f in sorted(filenames):
            if is_hidden((f,)):
                continue
            full = Path(dirpath) / f
            try:
                st = os.lstat(full)
            except OSError as exc:
                raise DataError(f"imagefolder: cannot read {full} ({exc.strerror or type(exc).__name__})") from None
            if stat.S_ISLNK(st.st_mode):
                raise DataError(f"imagefolder: {full} is a link; links in an image tree are refused")
            if not stat.S_ISREG(st.st_mode):
                raise DataError(f"imagefolder: {full} is not a regular file; refused")
            listing.add_file(TreeEntry((*rel, f), int(st.st_size), int(st.st_mtime_ns)))
    return listing


def _walk_error(exc: OSError) -> None:
    """A folder of the tree that cannot be listed is an error, not a silently missing class."""
    raise DataError(f"imagefolder: cannot read {exc.filename} ({exc.strerror or type(exc).__name__})")


def _tar_parts(member: tarfile.TarInfo, where: str) -> tuple[str, ...] | None:
    """A tar member's path, or ``None`` for a folder; refuses links and special files."""
    parts = _checked_parts(member.name, where)
    if member.issym() or member.islnk():
        raise DataError(f"imagefolder: {where} holds a link ({member.name!r} -> {member.linkname!r}); refused")
    if member.isdir():
        return None
    if not member.isfile():
        raise DataError(f"imagefolder: {where} holds a special file ({member.name!r}); refused")
    return parts


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_image_size(size: int, name: str, where: str) -> None:
    """Refuse an image file over :data:`MAX_IMAGE_BYTES` before it is read."""
    if size > MAX_IMAGE_BYTES:
        raise DataError(f"imagefolder: {where}: {name} is {size:,} bytes, more than the {MAX_IMAGE_BYTES:,} an image "
                        "file may have; refused")


def iter_archive(path: Path, kind: str, wanted: Callable[[tuple[str, ...]], bool] = lambda parts: True
                 ) -> Iterator[tuple[TreeEntry | tuple[str, ...], bytes | None]]:
    """Members of an archive in stored order: ``(entry, bytes)`` for the files ``wanted``
    accepts, ``(entry, None)`` for the other files (not read), ``(folder parts, None)`` for
    folders (the archive's own root, ``./``, is left out).

    Every member is checked before it is read (absolute paths, ``..``, links, special files,
    a wanted file over :data:`MAX_IMAGE_BYTES`).

    Raises:
        DataError: An unreadable archive or a refused member.
    """
    where = str(path)
    try:
        if kind == "tar":
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    parts = _tar_parts(member, where)
                    if parts is None:
                        folder = _checked_parts(member.name, where)
                        if folder:
                            yield folder, None
                        continue
                    entry = TreeEntry(parts, int(member.size), int(member.mtime) * 10**9)
                    if not wanted(parts):
                        yield entry, None
                        continue
                    check_image_size(entry.size, member.name, where)
                    fh = tf.extractfile(member)
                    yield entry, fh.read() if fh is not None else b""
        else:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    parts = _checked_parts(info.filename, where)
                    if _zip_is_link(info):
                        raise DataError(f"imagefolder: {where} holds a link ({info.filename!r}); refused")
                    if info.is_dir():
                        if parts:
                            yield parts, None
                        continue
                    entry = TreeEntry(parts, int(info.file_size), int(_zip_time(info)) * 10**9)
                    if not wanted(parts):
                        yield entry, None
                        continue
                    check_image_size(entry.size, info.filename, where)
                    yield entry, zf.read(info)
    except DataError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(f"imagefolder: cannot read archive {path} (truncated or corrupt: {exc})") from None


def _zip_time(info: zipfile.ZipInfo) -> float:
    import datetime

    try:
        return datetime.datetime(*info.date_time).timestamp()
    except ValueError:
        return 0.0


def is_hidden(parts: tuple[str, ...]) -> bool:
    """Hidden files and folders (``.name``) and macOS archive metadata (``__MACOSX``)."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def is_image_name(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class TreePlan:
    """Where each image of a tree goes.

    Attributes:
        wrapper: The top-level folder looked through (``()`` when none).
        split: ``True`` for the ``train/``/``test/`` layout.
        class_names: Sorted class folder names (training classes for the split layout).
        skipped: Number of visible files that are not images (or lie outside any class folder).
        split_folders: The folder names read as ``train`` and ``test`` (split layout).
        other_folders: Top-level folders beside the split folders whose images are skipped
            (e.g. ``val``).
        other_images: How many images those hold.
    """

    wrapper: tuple[str, ...]
    split: bool
    class_names: tuple[str, ...]
    skipped: int
    split_folders: tuple[str, str] = SPLITS
    other_folders: tuple[str, ...] = ()
    other_images: int = 0

    def place(self, parts: tuple[str, ...]) -> tuple[str, int] | None:
        """``(split, label)`` of a file, ``split`` being ``"train"``, ``"test"`` or ``"all"``;
        ``None`` for a file that is skipped."""
        if is_hidden(parts) or parts[: len(self.wrapper)] != self.wrapper:
            return None
        rel = parts[len(self.wrapper):]
        if not is_image_name(rel[-1]):
            return None
        if self.split:
            if len(rel) < 3 or rel[0] not in self.split_folders:
                return None
            part, cls = SPLITS[self.split_folders.index(rel[0])], rel[1]
        else:
            if len(rel) < 2:
                return None
            part, cls = "all", rel[0]
        return part, self.class_names.index(cls)


def _split_folders(top_dirs: set[str], where: str) -> dict[str, str]:
    """``{"train": folder, "test": folder}`` for the top-level folders naming a split.

    Raises:
        DataError: Two folders naming one split (``train`` and ``Train``).
    """
    found: dict[str, str] = {}
    for d in sorted(top_dirs):
        for split, aliases in SPLIT_ALIASES.items():
            if d.lower() in aliases:
                if split in found:
                    raise DataError(f"imagefolder: {where} has both {found[split]}/ and {d}/ for the {split} split; "
                                    "keep one")
                found[split] = d
    return found


def _no_images(folder: str, where: str, files: list[tuple[str, ...]]) -> DataError:
    others = len(files)
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    return DataError(f"imagefolder: class folder {folder} in {where} has no images (no file ending in {suffixes}"
                     + (f"; {others} other file{'s' if others != 1 else ''} there)" if others else ")"))


def plan_tree(files: list[tuple[str, ...]], folders: set[tuple[str, ...]], where: str) -> TreePlan:
    """Decide the layout of a tree from its file and folder paths.

    Raises:
        DataError: No class folders, fewer than two classes, an empty class folder, a test
            class the training split lacks, ``train/`` without ``test/`` (or the reverse), or
            two folders naming one split.
    """
    visible = [p for p in files if not is_hidden(p)]
    dirs = {d for d in folders if not is_hidden(d)}
    wrapper: tuple[str, ...] = ()
    nested = [p for p in visible if len(p) > 1]  # files at the very top (a README) do not decide the layout
    tops = {p[0] for p in nested} | {d[0] for d in dirs}
    if (len(tops) == 1 and all(len(p) >= 3 for p in nested if is_image_name(p[-1]))
            and not any(next(iter(tops)).lower() in a for a in SPLIT_ALIASES.values())):
        wrapper = (next(iter(tops)),)
    rel_files = [p[len(wrapper):] for p in visible if p[: len(wrapper)] == wrapper]
    rel_dirs = {d[len(wrapper):] for d in dirs if d[: len(wrapper)] == wrapper and len(d) > len(wrapper)}
    top_dirs = {d[0] for d in rel_dirs}
    named = _split_folders(top_dirs, where)
    split = bool(named)
    other_folders: tuple[str, ...] = ()
    other_images = 0
    if split:
        missing = [s for s in SPLITS if s not in named]
        if missing:
            present = next(iter(named.values()))
            raise DataError(f"imagefolder: {where} has {present}/ but no {missing[0]}/ folder; {LAYOUTS}")
        folder_of = {s: named[s] for s in SPLITS}
        classes = {s: {d[1] for d in rel_dirs if len(d) >= 2 and d[0] == folder_of[s]} for s in SPLITS}
        images = {s: {p[1] for p in rel_files if len(p) >= 3 and p[0] == folder_of[s] and is_image_name(p[-1])}
                  for s in SPLITS}
        for s in SPLITS:
            empty = sorted(classes[s] - images[s])
            if empty:
                raise _no_images(f"{folder_of[s]}/{empty[0]}", where,
                                 [p for p in rel_files if p[:2] == (folder_of[s], empty[0])])
        for s in SPLITS:
            if not classes[s]:
                raise DataError(f"imagefolder: {where}: {folder_of[s]}/ has no class folders; {LAYOUTS}")
        extra = sorted(classes["test"] - classes["train"])
        if extra:
            raise DataError(f"imagefolder: test class {extra[0]!r} in {where} has no training folder "
                            f"(training classes: {', '.join(sorted(classes['train']))})")
        names = tuple(sorted(classes["train"]))
        used = sum(1 for p in rel_files if len(p) >= 3 and p[0] in folder_of.values() and is_image_name(p[-1]))
        other_folders = tuple(sorted(top_dirs - set(folder_of.values())))
        other_images = sum(1 for p in rel_files if len(p) >= 2 and p[0] in other_folders and is_image_name(p[-1]))
    else:
        folder_of = dict(zip(SPLITS, SPLITS))
        classes_all = {d[0] for d in rel_dirs}
        images_all = {p[0] for p in rel_files if len(p) >= 2 and is_image_name(p[-1])}
        empty = sorted(classes_all - images_all)
        if empty:
            raise _no_images(empty[0], where, [p for p in rel_files if p[0] == empty[0]])
        if not classes_all:
            raise DataError(f"imagefolder: {where} has no class folders; {LAYOUTS}")
        names = tuple(sorted(classes_all))
        used = sum(1 for p in rel_files if len(p) >= 2 and is_image_name(p[-1]))
    if len(names) < 2:
        raise DataError(f"imagefolder: {where} has one class folder ({'/'.join((*wrapper, names[0]))}); a classifier "
                        f"needs at least two; {LAYOUTS}")
    return TreePlan(wrapper=wrapper, split=split, class_names=names, skipped=len(visible) - used - other_images,
                    split_folders=(folder_of["train"], folder_of["test"]), other_folders=other_folders,
                    other_images=other_images)
