"""Writing one HDF5 shard of faces or masks (layout: docs/CONTRACTS.md "Shards").

Storage choices were made by measurement (benchmarks/bench_loader.py, benchmarks/RESULTS.md):
one sample per chunk, so a random read touches exactly one chunk (64-sample chunks were 8x
slower); faces uncompressed (lzf/gzip saved only 7-17 % on photos and cut random reads 4-7x);
binary masks with gzip level 4, 16x smaller than raw and as fast to read (standard HDF5 filter,
unlike lzf). Face images and masks carry HDF5's Fletcher-32 checksum per chunk (4 bytes a
sample), so a flipped byte on a disk or in a copy fails the read of that sample instead of
training on it; readers of shards packed without it read them as before.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from inpaint.core.atomic import commit, tmp_name
from inpaint.core.disk import is_disk_full
from inpaint.core.errors import DataError
from inpaint.core.shard_format import LOCK_HINT, SHARD_FORMAT, is_lock_error, sha256_file

from .disk import ensure_room
from .faces import FaceSample
from .masks import MaskSample

FACE_COMPRESSION: str | None = None
CHECKSUM = True  # Fletcher-32 per chunk on images and masks; verified by HDF5 on every read
MASK_COMPRESSION: str | None = "gzip"
MASK_COMPRESSION_LEVEL = 4
_BUFFER = 64
_STR = h5py.string_dtype()
_BYTES = h5py.vlen_dtype(np.uint8)



def open_shard(path: Path) -> h5py.File:
    """Open a finished shard read-only (default HDF5 locking: HDF5 refuses to reopen a file
    already open in the process with other locking flags, so every opener must agree)."""
    return h5py.File(path, "r")


def shard_name(kind: str, split: str, number: int) -> str:
    return f"{kind}-{split}-{number:05d}.h5"


def _nbytes(sample: FaceSample | MaskSample) -> int:
    """Bytes a buffered sample adds to its shard at most (before compression)."""
    if isinstance(sample, MaskSample):
        return sample.mask.nbytes + 64
    return (sample.image.nbytes if sample.image is not None else len(sample.encoded or b"")) + 128


@dataclass
class ShardRecord:
    file: str
    kind: str
    split: str
    count: int
    sha256: str

    def as_index_entry(self) -> dict:
        return {"file": self.file, "kind": self.kind, "split": self.split, "count": self.count, "sha256": self.sha256}


class ShardWriter:
    """Appends samples to ``<final>.tmp-<pid>`` and renames it to ``final`` only when complete."""

    def __init__(self, final: Path, kind: str, split: str, size: int, capacity: int,
                 encoding: str = "raw", plan_digest: str = "", compress: bool = True) -> None:
        self.final, self.kind, self.split, self.size, self.encoding = final, kind, split, size, encoding
        self.tmp = tmp_name(final)
        self._written = 0
        self._buf: list = []
        try:
            ensure_room(self.tmp, 0)
            self._file = h5py.File(self.tmp, "w")
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)  # HDF5 may have created it before failing
            if is_disk_full(exc):
                raise  # the packer reports a full disk with what the pack needs
            hint = LOCK_HINT if is_lock_error(exc) else "pass a writable --out"
            raise DataError(f"{self.tmp}: cannot create the shard ({exc}); {hint}") from None
        f = self._file
        f.attrs.update({"format": SHARD_FORMAT, "kind": kind, "split": split, "size": size,
                        "encoding": encoding, "plan_digest": plan_digest})
        n = max(capacity, 1)
        if kind == "faces":
            if encoding == "raw":
                f.create_dataset("images", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3),
                                 maxshape=(None, size, size, 3), compression=FACE_COMPRESSION, fletcher32=CHECKSUM)
            else:
                f.create_dataset("images_encoded", (n,), _BYTES, chunks=(min(n, 256),), maxshape=(None,))
            f.create_dataset("labels", (n, 3), np.int16, maxshape=(None, 3))
            f.create_dataset("hashes", (n,), _STR, maxshape=(None,))
        elif kind == "masks":
            f.create_dataset("masks", (n, size, size), np.uint8, chunks=(1, size, size),
                             maxshape=(None, size, size), compression=MASK_COMPRESSION if compress else None,
                             compression_opts=MASK_COMPRESSION_LEVEL if compress else None, fletcher32=CHECKSUM)
            f.create_dataset("ratio", (n,), np.float32, maxshape=(None,))
            f.create_dataset("bucket", (n,), np.int8, maxshape=(None,))
        else:
            raise ValueError(f"unknown shard kind {kind!r}")
        f.create_dataset("paths", (n,), _STR, maxshape=(None,))

    @property
    def count(self) -> int:
        """Samples added so far, including those still buffered."""
        return self._written + len(self._buf)

    @property
    def file(self) -> h5py.File:
        """The open temporary file, flushed: pack reads its mask staging file back through this."""
        self._flush()
        return self._file

    def add(self, sample: FaceSample | MaskSample) -> None:
        self._buf.append(sample)
        if len(self._buf) >= _BUFFER:
            self._flush()

    def add_face_raw(self, path: str, sha: str, labels, image: np.ndarray | None, encoded: bytes | None) -> None:
        """Copy an already-packed face (the balanced split re-stores test faces without decoding)."""
        self.add(FaceSample(path, sha, tuple(int(v) for v in labels), image, encoded))

    def _flush(self) -> None:
        if not self._buf:
            return
        ensure_room(self.tmp, sum(_nbytes(s) for s in self._buf))
        f, lo, hi = self._file, self._written, self._written + len(self._buf)
        if hi > f["paths"].shape[0]:
            for name in f:
                f[name].resize(hi, axis=0)
        f["paths"][lo:hi] = [s.path for s in self._buf]
        if self.kind == "faces":
            if self.encoding == "raw":
                # A slice write, not write_direct_chunk: that would bypass the checksum filter.
                f["images"][lo:hi] = np.stack([s.image for s in self._buf])
            else:
                enc = f["images_encoded"]
                for i, s in enumerate(self._buf):
                    enc[lo + i] = np.frombuffer(s.encoded, dtype=np.uint8)
            f["labels"][lo:hi] = np.asarray([s.labels for s in self._buf], dtype=np.int16)
            f["hashes"][lo:hi] = [s.sha256 for s in self._buf]
        else:
            f["masks"][lo:hi] = np.stack([s.mask for s in self._buf])
            f["ratio"][lo:hi] = np.asarray([s.ratio for s in self._buf], dtype=np.float32)
            f["bucket"][lo:hi] = np.asarray([s.bucket for s in self._buf], dtype=np.int8)
        self._written = hi
        self._buf.clear()

    def finish(self, skipped: list[dict] | None = None) -> ShardRecord:
        """Trim to the samples written, close, hash and rename; the shard exists only from here on.

        ``skipped`` (files of this shard's plan that were not stored) travels inside the shard so a
        resumed pack can report them without decoding again.
        """
        self.seal(skipped)
        return ShardRecord(self.final.name, self.kind, self.split, self.count, self.commit())

    def seal(self, skipped: list[dict] | None = None) -> None:
        """First half of :meth:`finish`: flush, record ``skipped`` and the count, trim, close.

        The closed file keeps its temporary name until :meth:`commit`.
        """
        try:
            self._flush()
            record = json.dumps(skipped or [])
            ensure_room(self.tmp, len(record))
            self._file.attrs["skipped"] = record
            for name in self._file:
                self._file[name].resize(self.count, axis=0)
            self._file.attrs["count"] = self.count
            self._file.close()
        except BaseException:
            self.abort()
            raise

    def commit(self) -> str:
        """Second half of :meth:`finish` (safe in another thread): hash the sealed file, fsync it and
        give it its final name; returns its SHA-256. On failure the temporary file is removed."""
        try:
            digest = sha256_file(self.tmp)
            commit(self.tmp, self.final)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        return digest

    def abort(self) -> None:
        """Drop the unfinished shard.

        Its bytes are freed first: closing flushes HDF5's cached metadata, and on a full disk
        that flush fails and leaves the file open inside HDF5, which then crashed the packer at
        exit (segmentation fault, bus error). Emptied, the file has room for the flush. A close
        error that remains is not the news (the error that led here is), so it is dropped.
        """
        try:
            if self._file.id.valid:
                try:
                    os.truncate(self.tmp, 0)
                except OSError:
                    pass
                self._file.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        finally:
            self.tmp.unlink(missing_ok=True)
