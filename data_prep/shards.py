"""Writing one HDF5 shard of faces or masks (layout: docs/CONTRACTS.md "Shards").

The datasets, their dtypes, chunking, compression and checksums are the format's
(:mod:`inpaint.core.shard_format`, with the measurements behind them); this module only fills them.
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
from inpaint.core.shard_format import (
    BYTES, FACE_HASHES, FACE_IMAGES, FACE_IMAGES_ENCODED, FACE_LABELS, LOCK_HINT, MASK_BUCKET, MASK_RATIO, MASKS,
    SOURCE_PATHS, TEXT, DatasetSpec, is_lock_error, sha256_file, shard_attributes, shard_datasets,
)

from .disk import ensure_room
from .faces import FaceSample
from .masks import MaskSample

_BUFFER = 64
_VARIABLE_DTYPES = {TEXT: h5py.string_dtype(), BYTES: h5py.vlen_dtype(np.uint8)}


def create_dataset(f: h5py.File, spec: DatasetSpec, capacity: int, size: int, compress: bool = True) -> h5py.Dataset:
    """``spec``'s dataset in ``f``, room for ``capacity`` samples and growable; ``compress=False``
    leaves out its compression (the packer's uncompressed mask staging file)."""
    shape = spec.shape(capacity, size)
    chunks = (min(capacity, spec.chunk_rows), *shape[1:]) if spec.chunk_rows else None
    compression = spec.compression if compress else None
    return f.create_dataset(spec.name, shape, _VARIABLE_DTYPES.get(spec.dtype, spec.dtype), chunks=chunks,
                            maxshape=(None, *shape[1:]), compression=compression,
                            compression_opts=spec.compression_level if compression else None,
                            fletcher32=spec.checksum)


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
        f.attrs.update(shard_attributes(kind, split, size, encoding, plan_digest))
        for spec in shard_datasets(kind, encoding):
            create_dataset(f, spec, max(capacity, 1), size, compress)

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
        if hi > f[SOURCE_PATHS.name].shape[0]:
            for name in f:
                f[name].resize(hi, axis=0)
        f[SOURCE_PATHS.name][lo:hi] = [s.path for s in self._buf]
        if self.kind == "faces":
            if self.encoding == "raw":
                # A slice write, not write_direct_chunk: that would bypass the checksum filter.
                f[FACE_IMAGES.name][lo:hi] = np.stack([s.image for s in self._buf])
            else:
                enc = f[FACE_IMAGES_ENCODED.name]
                for i, s in enumerate(self._buf):
                    enc[lo + i] = np.frombuffer(s.encoded, dtype=np.uint8)
            f[FACE_LABELS.name][lo:hi] = np.asarray([s.labels for s in self._buf], dtype=FACE_LABELS.dtype)
            f[FACE_HASHES.name][lo:hi] = [s.sha256 for s in self._buf]
        else:
            f[MASKS.name][lo:hi] = np.stack([s.mask for s in self._buf])
            f[MASK_RATIO.name][lo:hi] = np.asarray([s.ratio for s in self._buf], dtype=MASK_RATIO.dtype)
            f[MASK_BUCKET.name][lo:hi] = np.asarray([s.bucket for s in self._buf], dtype=MASK_BUCKET.dtype)
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
