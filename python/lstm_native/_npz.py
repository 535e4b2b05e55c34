"""NumPy ``.npz`` archives (a zip of ``.npy`` arrays) written atomically and read as hostile
input. This layer knows nothing of what the arrays mean: the caller names what its files are
(in messages) and which member must be present; :mod:`lstm_native._persist` builds the model
file on it.

Writing (:func:`write_atomic`) is atomic: the archive (``np.savez``: stored members, no
pickle) goes to a temporary file in the destination folder, is flushed to disk and then renamed
over ``path`` (``os.replace``), so a crash or Ctrl-C while saving never leaves a half-written
file under the final name. It refuses (ValueError ``"Cannot save to '<path>': ..."``) a
``path`` that exists and is not a regular file after following symlinks: a directory, a FIFO, a
device (``/dev/null``, or a symlink to it), a socket, checked before writing and again before
the rename. Renaming over them would replace the node itself (as root, saving to
``/dev/null`` would replace the system's /dev/null). A symlink to a regular file is replaced by
the new file. The new file gets the usual mode (0666 less the umask), not mkstemp's 0600.

Reading (:func:`open_archive`) raises :class:`BadFile` naming the problem for anything but a
well-formed archive of plain arrays. It never blocks, never unpickles, and allocates nothing
large before the sizes the file declares have been checked (the caller checks them against
the available memory, from :attr:`Archive.headers` with :func:`require_memory`, before
reading data). In order:

1. ``path`` must be a regular file (a FIFO, device or directory is refused from its stat
   before it is opened, and again from the opened descriptor; it is opened non-blocking). A
   missing file raises FileNotFoundError, as ``open``. It must start as a zip archive (not
   empty, not a single ``.npy`` array).
2. The zip directory, before zipfile reads it (zipfile makes an object of every entry, so a
   small file listing millions of entries costs gigabytes): the end records (also ZIP64's) may
   declare at most 64 entries in at most 64 KiB. Then: no duplicate names, no directories or
   paths, every member ``<name>.npy`` with a name of at most 64 identifier characters, the
   required member present, no encryption, stored or deflated only, a stored member's sizes
   equal and within the file, a deflated member's declared size within deflate's maximum
   ratio (1032).
3. Every member's ``.npy`` header, read and parsed here (never ``ast.literal_eval``): magic,
   version 1.0/2.0/3.0, at most 10000 bytes, exactly NumPy's
   ``{'descr': ..., 'fortran_order': False, 'shape': (...), }``, a plain little-endian (or
   native) bool/int/uint/float/unicode dtype (no objects: nothing is unpickled, no bytes,
   records or dates), and a declared member size equal to header plus data.
4. Data, on request (:meth:`Archive.read`, :meth:`Archive.read_json`): exactly the declared
   bytes, read in chunks into one preallocated array (zipfile checks the CRC at the end),
   whose SHA-256 must be the one the caller's metadata records (:func:`sha256` gives the
   same digest of an array when writing). A JSON member is a 0-d unicode array of bounded
   size, valid UTF-32, JSON without repeated keys (nesting too deep is refused).

Any error of zipfile, zlib or the file while the archive is open (``with open_archive(...)``)
becomes :class:`BadFile` ("the archive is truncated or corrupted").
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import reprlib
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from ._memory import available_memory, format_bytes


class BadFile(Exception):
    """A problem found in a file's contents; the reader turns it into ValueError naming the
    file."""


_show = reprlib.Repr()  # untrusted values in messages: bounded in length and depth
_show.maxstring = _show.maxother = 60
_show.maxlong = 40


def show(value: Any) -> str:
    """``repr(value)`` bounded in length and depth, for untrusted values in messages."""
    return _show.repr(value)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def sha256(a: np.ndarray) -> str:
    """The SHA-256 of an array's data (C order), as :meth:`Archive.read` computes it."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def json_member(document: Any) -> np.ndarray:
    """``document`` as the 0-d unicode array that :meth:`Archive.read_json` reads back."""
    return np.array(json.dumps(document))


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def file_kind(mode: int) -> str:
    """What a non-regular file is, from its ``st_mode``: "a directory", "a FIFO ..."."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_destination(path: str) -> None:
    """ValueError when ``path`` exists and is not a regular file (symlinks followed): the
    rename would replace a device, FIFO or socket node by the archive (module docstring)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing (or unreachable: then writing fails with its own error)
        return
    if stat.S_ISREG(mode):
        return
    hint = (
        "; give a file name, e.g. " + repr(os.path.join(path, "model.npz"))
        if stat.S_ISDIR(mode)
        else "; only a regular file is replaced"
    )
    raise ValueError(f"Cannot save to {path!r}: it is {file_kind(mode)}{hint}")


def write_atomic(path: str, arrays: dict) -> None:
    """Write ``arrays`` ({name: array}, none of dtype object) as an ``.npz`` archive to
    ``path``, atomically (module docstring)."""
    check_destination(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):  # (mkstemp's error would name its temporary file)
        raise FileNotFoundError(
            errno.ENOENT, f"Cannot save to {path!r}: the folder {directory!r} does not exist"
        )
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; use the usual mode
        check_destination(path)  # again: something may have appeared there while writing
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); best effort
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
_MAX_MEMBERS = 64  # a model has at most 6; room for later format versions
_MAX_DIRECTORY = 64 * 2**10  # bytes of zip directory (~100 bytes per member)
_MAX_NPY_HEADER = 10000  # NumPy's own limit (np.load's max_header_size)
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand data more than this
_CHUNK = 2**20  # bytes per read of a member's data

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # ZIP64 end of central directory record
_EOCD64_LOCATOR = 20
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    struct.error,
    ValueError,
    OverflowError,
    NotImplementedError,
)

_MEMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_NPY_MAGIC = b"\x93NUMPY"
# Exactly the header NumPy writes (format._write_array_header): sorted keys, repr values,
# padded with spaces to the alignment and ended by a newline.
_NPY_HEADER = re.compile(
    r"\{'descr': '([^'\\]{1,32})', 'fortran_order': (True|False), "
    r"'shape': \(((?:\d{1,20}, )*(?:\d{1,20},?)?)\), \} *\n"
)
_NPY_DESCR = re.compile(r"([<>|=])([biufU])(\d{1,9})")
_ITEMSIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8)}
_NATIVE = ">" if sys.byteorder == "big" else "<"


class Npy(NamedTuple):
    """A member's .npy header: the data's dtype (as stored) and shape, where it starts in the
    member and its size in bytes."""

    dtype: np.dtype
    shape: tuple
    offset: int
    nbytes: int


def open_regular(path: str, kind: str) -> Any:
    """``path`` opened for reading if it is a regular file; a FIFO, device or directory is
    refused (BadFile: "it is a FIFO ..., not ``kind``") from its stat, before opening (opening
    a FIFO would block)."""
    mode = os.stat(path).st_mode  # FileNotFoundError etc. as open() would raise them
    if not stat.S_ISREG(mode):
        raise BadFile(f"it is {file_kind(mode)}, not {kind}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode  # what was opened, if the path changed in between
        if not stat.S_ISREG(mode):
            raise BadFile(f"it is {file_kind(mode)}, not {kind}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_start(f: Any, title: str) -> None:
    head = f.read(8)
    if not head:
        raise BadFile("the file is empty")
    if head.startswith(_NPY_MAGIC):
        raise BadFile(f"a single NumPy array, not {title}")
    if not head.startswith(b"PK"):
        raise BadFile(f"not a NumPy .npz archive (it starts with {head!r})")


def _check_directory(f: Any, size: int, kind: str) -> None:
    """Refuses a zip directory larger than the limits before zipfile reads it. The end records
    are looked for where zipfile looks (the last 22 bytes, else the last signature in the last
    64 KiB; a ZIP64 record before it takes precedence), and all are checked."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    found = set()
    last = len(tail) - _EOCD.size
    if last >= 0 and tail[last : last + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        found.add(last)
    at = tail.rfind(b"PK\x05\x06")
    if 0 <= at <= last:
        found.add(at)
    if not found:
        raise BadFile("the archive is truncated or corrupted (no zip end record)")
    for at in found:
        fields = _EOCD.unpack_from(tail, at)
        declared = [(fields[4], fields[5])]  # entries, directory size
        where = size - tail_len + at
        if where >= _EOCD64_LOCATOR + _EOCD64.size:
            f.seek(where - _EOCD64_LOCATOR)
            if f.read(4) == b"PK\x06\x07":
                f.seek(where - _EOCD64_LOCATOR - _EOCD64.size)
                record = f.read(_EOCD64.size)
                if len(record) == _EOCD64.size and record[:4] == b"PK\x06\x06":
                    fields = _EOCD64.unpack(record)
                    declared.append((fields[7], fields[8]))
        for entries, dir_size in declared:
            if entries > _MAX_MEMBERS or dir_size > _MAX_DIRECTORY:
                raise BadFile(
                    f"its zip directory declares {entries} members in {dir_size} "
                    f"bytes; {kind} has a few members in less than "
                    f"{format_bytes(_MAX_DIRECTORY)}"
                )


def _members(zf: zipfile.ZipFile, size: int, kind: str, title: str, required: str) -> dict:
    """{array name: ZipInfo} after the checks on names and declared sizes (module docstring)."""
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise BadFile(f"the archive has {len(infos)} members; {kind} has a few")
    counts = collections.Counter(i.filename for i in infos)
    repeated = sorted(n for n, c in counts.items() if c > 1)
    if repeated:
        raise BadFile(f"the archive holds members more than once: {show(repeated)}")
    if required + ".npy" not in counts:
        names = sorted(n.removesuffix(".npy") for n in counts)
        raise BadFile(f"not {title} (arrays {show(names)}, no {required})")
    out = {}
    for info in infos:
        name = info.filename
        if not _MEMBER_NAME.fullmatch(name):
            raise BadFile(f"member {show(name)} is not an array of {kind}")
        if info.flag_bits & 0x1:
            raise BadFile(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadFile(
                f"member {name!r} uses compression method {info.compress_type}; "
                f"{kind}'s members are stored or deflated"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise BadFile(
                f"the archive is truncated or corrupted (member {name!r} is stored "
                f"with {info.compress_size} bytes but declares {info.file_size})"
            )
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise BadFile(
                f"member {name!r} declares {info.file_size} bytes, more than its "
                f"{info.compress_size} compressed bytes can hold"
            )
        if info.header_offset + 30 + len(name) + info.compress_size > size:
            raise BadFile(
                f"the archive is truncated or corrupted (member {name!r} extends "
                f"past the end of the file)"
            )
        out[name[:-4]] = info
    return out


def _npy_dtype(descr: str, name: str, kind: str) -> np.dtype:
    m = _NPY_DESCR.fullmatch(descr)
    if m is None:
        raise BadFile(
            f"{name} has dtype {descr!r}: {kind} holds bools, numbers and unicode "
            "strings (no objects, which would be unpickled, nor bytes or records)"
        )
    order, letter, size = m.group(1), m.group(2), int(m.group(3))
    if (letter == "U" and size < 1) or (letter != "U" and size not in _ITEMSIZES[letter]):
        raise BadFile(f"{name} has the unsupported dtype {descr!r}")
    if order not in ("<", "|", "=", _NATIVE):
        raise BadFile(f"{name} has the big-endian dtype {descr!r}")
    try:
        return np.dtype(descr)
    except (TypeError, ValueError) as e:  # e.g. strings longer than NumPy allows
        raise BadFile(f"{name} has the unsupported dtype {descr!r}") from e


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, kind: str) -> Npy:
    """The member's .npy header, parsed strictly (module docstring); nothing of the data read."""
    with zf.open(info) as m:
        head = m.read(8)
        if len(head) < 8 or head[:6] != _NPY_MAGIC:
            raise BadFile(f"{name} is not a .npy array")
        version = (head[6], head[7])
        if version == (1, 0):
            field = struct.Struct("<H")
        elif version in ((2, 0), (3, 0)):
            field = struct.Struct("<I")
        else:
            raise BadFile(f"{name} has the unsupported .npy format version {version}")
        raw = m.read(field.size)
        if len(raw) != field.size:
            raise BadFile(f"the archive is truncated or corrupted ({name}'s header is cut)")
        (length,) = field.unpack(raw)
        if length > _MAX_NPY_HEADER:
            raise BadFile(
                f"{name} has a .npy header of {length} bytes, more than {_MAX_NPY_HEADER}"
            )
        text = m.read(length)
    if len(text) != length:
        raise BadFile(f"the archive is truncated or corrupted ({name}'s header is cut)")
    try:
        match = _NPY_HEADER.fullmatch(text.decode("ascii"))
    except UnicodeDecodeError:
        match = None
    if match is None:
        raise BadFile(f"{name} has a damaged .npy header {show(text)}")
    if match.group(2) == "True":
        raise BadFile(f"{name} is stored in Fortran order; {kind}'s arrays are C-ordered")
    dtype = _npy_dtype(match.group(1), name, kind)
    shape = tuple(int(s) for s in re.findall(r"\d+", match.group(3)))
    offset = 8 + field.size + length
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise BadFile(
            f"{name} declares {info.file_size} bytes, but its header describes "
            f"{offset} + {nbytes} ({dtype.str} {shape})"
        )
    return Npy(dtype, shape, offset, nbytes)


class Archive:
    """An open archive whose zip directory and every member's ``.npy`` header have been
    checked (:func:`open_archive`). ``headers``: {member name (without ``.npy``): Npy}. The
    data is read on request, one member at a time."""

    def __init__(self, zf: zipfile.ZipFile, members: dict, headers: dict) -> None:
        self._zf = zf
        self._members = members
        self.headers = headers

    def _data(self, name: str) -> tuple:
        """(the member's data as a writeable uint8 array, its SHA-256): exactly the declared
        bytes, read in chunks into one array (no second copy); zipfile checks the CRC on the
        last one."""
        npy = self.headers[name]
        try:
            out = np.empty(npy.nbytes, dtype=np.uint8)
        except MemoryError as e:  # the memory check passed, but the allocation failed anyway
            raise BadFile(
                f"there is not enough memory for {name} ({format_bytes(npy.nbytes)})"
            ) from e
        view = memoryview(out)
        digest = hashlib.sha256()
        with self._zf.open(self._members[name]) as m:
            if len(m.read(npy.offset)) != npy.offset:
                raise BadFile(f"the archive is truncated or corrupted ({name} is cut)")
            pos = 0
            while pos < npy.nbytes:
                chunk = m.read(min(_CHUNK, npy.nbytes - pos))
                if not chunk:
                    raise BadFile(f"the archive is truncated or corrupted ({name} is cut)")
                view[pos : pos + len(chunk)] = chunk
                digest.update(chunk)
                pos += len(chunk)
            m.read(1)  # at the end: zipfile compares the CRC (if the data did not reach it)
        return out, digest.hexdigest()

    def read(self, name: str, digest: Any) -> tuple:
        """(array, raw) of member ``name``, whose data must have the SHA-256 ``digest`` (the
        checksum the file's metadata records): the array in native byte order, writeable and
        C-contiguous; ``raw`` its stored bytes (uint8), e.g. to check a bool's byte."""
        raw, actual = self._data(name)
        if actual != digest:
            raise BadFile(f"array {name!r} does not match its checksum (the file is corrupted)")
        npy = self.headers[name]
        arr = raw.view(npy.dtype).reshape(npy.shape)
        if not npy.dtype.isnative:
            arr = arr.astype(npy.dtype.newbyteorder("="))
        return arr, raw

    def read_json(self, name: str, max_bytes: int) -> Any:
        """The JSON document of member ``name`` (a 0-d unicode array of at most ``max_bytes``;
        no key repeated in an object)."""
        npy = self.headers[name]
        if npy.dtype.kind != "U" or npy.shape != ():
            raise BadFile(f"{name} is not a JSON string")
        if npy.nbytes > max_bytes:
            raise BadFile(
                f"{name} has {format_bytes(npy.nbytes)}, more than the "
                f"{format_bytes(max_bytes)} it may have"
            )
        data, _ = self._data(name)
        little = npy.dtype.byteorder == "<" or (npy.dtype.byteorder == "=" and _NATIVE == "<")
        try:
            text = data.tobytes().decode("utf-32-le" if little else "utf-32-be").rstrip("\0")
        except UnicodeDecodeError as e:
            raise BadFile(f"{name} is not valid text ({e})") from e

        def unique_keys(pairs: list) -> dict:
            out = {}
            for key, value in pairs:
                if key in out:
                    raise BadFile(f"{name} has the key {show(key)} twice")
                out[key] = value
            return out

        try:
            return json.loads(text, object_pairs_hook=unique_keys)
        except RecursionError as e:
            raise BadFile(f"{name} is nested too deeply") from e
        except ValueError as e:
            raise BadFile(f"{name} is not valid JSON ({show(str(e))})") from e


def require_memory(need: int) -> None:
    """Raises BadFile when loading a file needs ``need`` bytes and less memory is available
    (checked from the archive's headers, before its data is read)."""
    avail = available_memory()
    if avail is not None and need > avail:
        raise BadFile(
            f"its arrays need {format_bytes(need)} of memory, but only "
            f"{format_bytes(avail)} is available"
        )


def to_bytes(arrays: dict) -> bytes:
    """``arrays`` as the bytes of an ``.npz`` archive, as :func:`write_atomic` writes it (for
    an archive nested in another one as a uint8 member)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@contextlib.contextmanager
def open_archive(
    path: str, *, kind: str, title: str, required: str, data: Any = None
) -> Iterator[Archive]:
    """``with open_archive(path, ...) as archive``: the checked archive at ``path`` (steps 1 to
    3 of the module docstring), or in ``data`` (the bytes of an archive nested in another
    file; ``path`` then only names it). ``kind`` and ``title`` name what the file should be in
    messages ("it is a FIFO, not <kind>", "not <title> (... no <required>)"); ``required`` is
    the member it must have. Raises BadFile; inside the block, the errors of zipfile, zlib
    and the file (and ValueError) become BadFile too."""
    source = open_regular(path, kind) if data is None else io.BytesIO(data)
    with source as f:
        _check_start(f, title)
        size = os.fstat(f.fileno()).st_size if data is None else len(data)
        try:
            _check_directory(f, size, kind)
            with zipfile.ZipFile(f) as zf:
                members = _members(zf, size, kind, title, required)
                headers = {
                    name: _npy_header(zf, info, name, kind) for name, info in members.items()
                }
                yield Archive(zf, members, headers)
        except BadFile:
            raise
        except _ZIP_ERRORS as e:
            raise BadFile(
                f"the archive is truncated or corrupted ({type(e).__name__}: {show(str(e))})"
            ) from e


__all__ = [
    "Archive",
    "BadFile",
    "Npy",
    "check_destination",
    "file_kind",
    "json_member",
    "open_archive",
    "open_regular",
    "require_memory",
    "sha256",
    "show",
    "to_bytes",
    "write_atomic",
]
