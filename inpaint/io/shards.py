"""Torch datasets over packed shards (written by ``python -m data_prep.pack``).

HDF5 handles are opened lazily, per process: a handle inherited across ``fork`` into a
DataLoader worker shares HDF5's file state with the parent and corrupts reads, so each worker
opens its own on first use. Only labels, ratios and buckets (a few bytes per sample) are read up
front; images stay on disk unless ``in_memory=True``.
"""

from __future__ import annotations

import io
import os
from bisect import bisect_right
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from inpaint.core.buckets import BUCKET_EDGES
from inpaint.core.errors import DataError
from inpaint.core.shard_format import (
    FACE_LABELS, FACE_SPLITS, MASK_BUCKET, MASK_RATIO, MASK_SPLITS, MASKS, REPACK_HINT as _REPACK, DatasetSpec,
    damaged_shard_message, read_index, sample_dataset,
)

__all__ = ["FaceShards", "MaskShards", "read_index"]

# What h5py raises for a shard that cannot be read: OSError for most damage, KeyError/ValueError
# for missing or odd objects, and RuntimeError for some reads of a file truncated or overwritten
# after it was opened ("wrong B-tree signature").
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError)


class _ShardSet(Dataset):
    """Samples of one kind and split spread over several shard files, addressed by global index."""

    kind = ""
    data_key = ""

    def __init__(self, root: str | os.PathLike, split: str, in_memory: bool = False) -> None:
        self.root = Path(root)
        self.index_data = read_index(self.root)
        splits = FACE_SPLITS if self.kind == "faces" else MASK_SPLITS
        if split not in splits:
            raise DataError(f"{self.root}: no {self.kind} split {split!r}; choose one of {', '.join(splits)}")
        self.split = split
        self.size: int = self.index_data["size"]
        self.encoding: str = self.index_data["encoding"] if self.kind == "faces" else "raw"
        entries = [s for s in self.index_data["shards"] if s["kind"] == self.kind and s["split"] == split]
        self.files = [self.root / s["file"] for s in entries]
        counts = [s["count"] for s in entries]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._bounds = self._starts.tolist()  # plain ints: bisect on a list is several times faster
        self._handles: dict[int, h5py.File] = {}
        self._data: dict[int, tuple[h5py.Dataset, bool]] = {}
        self._pid = os.getpid()
        self._memory: list[Any] | None = None
        # One decoded sample's shape (an encoded face decodes to a raw one).
        self._sample_shape = sample_dataset(self.kind, "raw").shape(1, self.size)[1:]
        self._load_metadata(counts)
        if in_memory:
            self._memory = [self._read_all(i) for i in range(len(self.files))]
            self._close()

    # -- file access ------------------------------------------------------------------------
    def _open(self, i: int) -> h5py.File:
        path = self.files[i]
        try:
            return h5py.File(path, "r")
        except FileNotFoundError:
            raise DataError(f"{path}: shard listed in index.json is missing; {_REPACK}") from None
        except (OSError, RuntimeError) as exc:  # a lock refused (grid file systems without POSIX locks), or damage
            raise DataError(damaged_shard_message(path, exc, self.root)) from None

    def _handle(self, i: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never use the parent's handles
            self._handles = {}
            self._data = {}
            self._pid = os.getpid()
        f = self._handles.get(i)
        if f is None:
            f = self._handles[i] = self._open(i)
        return f

    def _dataset(self, f: h5py.File, name: str, i: int) -> h5py.Dataset:
        if name not in f:
            raise DataError(f"{self.files[i]}: shard lacks dataset '{name}'; {_REPACK}")
        return f[name]

    def _close(self) -> None:
        for f in self._handles.values():
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing a handle that HDF5 already dropped
                pass
        self._handles = {}
        self._data = {}

    def _sample_source(self, shard: int) -> tuple[h5py.Dataset, bool]:
        """The shard's sample dataset, and whether one sample is one unfiltered chunk.

        Then a sample is read with ``read_direct_chunk`` (one HDF5 call, no selection machinery),
        which is what lets one process serve several thousand samples per second.
        """
        if os.getpid() != self._pid or shard not in self._data:
            ds = self._dataset(self._handle(shard), self.data_key, shard)
            direct = (ds.chunks is not None and ds.chunks == (1, *ds.shape[1:]) and ds.compression is None
                      and not ds.shuffle and not ds.fletcher32 and ds.scaleoffset is None and ds.dtype == np.uint8)
            self._data[shard] = (ds, direct)
        return self._data[shard]

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} {self.kind} in split {self.split!r}")
        index %= n
        shard = bisect_right(self._bounds, index) - 1
        return shard, index - self._bounds[shard]

    def _read_sample(self, shard: int, row: int) -> Any:
        if self._memory is not None:
            return self._memory[shard][row]
        try:
            ds, direct = self._sample_source(shard)
            if direct:
                _, raw = ds.id.read_direct_chunk((row,) + (0,) * (ds.ndim - 1))
                return np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(ds.shape[1:])
            return ds[row]
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{self.files[shard]}: cannot read sample {row} ({exc}); {_REPACK}") from None

    def _read_all(self, shard: int) -> Any:
        try:
            return self._dataset(self._handle(shard), self.data_key, shard)[()]
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{self.files[shard]}: cannot read ({exc}); {_REPACK}") from None

    def _read_column(self, spec: DatasetSpec, counts: list[int]) -> np.ndarray:
        name, dtype = spec.name, np.dtype(spec.dtype)
        parts = []
        for i, expected in enumerate(counts):
            f = self._open(i)
            try:
                arr = np.asarray(self._dataset(f, name, i)[()], dtype=dtype)
            except DataError:
                raise
            except READ_ERRORS as exc:
                raise DataError(f"{self.files[i]}: cannot read '{name}' ({exc}); {_REPACK}") from None
            finally:
                f.close()
            if arr.shape[0] != expected:
                raise DataError(f"{self.files[i]}: '{name}' holds {arr.shape[0]} samples, index.json says "
                                f"{expected}; {_REPACK}")
            parts.append(arr)
        return np.concatenate(parts) if parts else np.zeros(spec.shape(0, self.size), dtype=dtype)

    def _load_metadata(self, counts: list[int]) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_data"] = {}  # handles never travel to another process (spawn/forkserver workers)
        return state

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            self._close()


class FaceShards(_ShardSet):
    """Faces of one split: ``{"image": (3,H,W) float32 in [-1, 1], "labels": int64 (age, gender, race),
    "index": int}``; labels are -1 where unknown."""

    kind = "faces"

    def __init__(self, root: str | os.PathLike, split: str, in_memory: bool = False) -> None:
        super().__init__(root, split, in_memory)

    @property
    def data_key(self) -> str:  # type: ignore[override]
        return sample_dataset(self.kind, self.encoding).name

    def _load_metadata(self, counts: list[int]) -> None:
        self.labels: np.ndarray = self._read_column(FACE_LABELS, counts)

    def _decode(self, stored: Any, shard: int, row: int) -> np.ndarray:
        if self.encoding == "raw":
            return np.asarray(stored)
        try:
            with Image.open(io.BytesIO(np.asarray(stored, dtype=np.uint8).tobytes())) as img:
                arr = np.array(img.convert("RGB"))  # writable: torch.from_numpy warns on read-only
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a damaged shard
            raise DataError(f"{self.files[shard]}: sample {row} does not decode ({exc}); {_REPACK}") from None
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, row = self._locate(index)
        image = self._decode(self._read_sample(shard, row), shard, row)
        expected = self._sample_shape
        if image.shape != expected:
            raise DataError(f"{self.files[shard]}: sample {row} has shape {image.shape}, expected {expected}; {_REPACK}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32)
        return {"image": tensor.div_(127.5).sub_(1.0),
                "labels": torch.from_numpy(self.labels[shard_row_index(self, shard, row)].astype(np.int64)),
                "index": int(index) % len(self)}


class MaskShards(_ShardSet):
    """Masks of one split: ``{"mask": (1,H,W) float32, 1 = hole, "ratio": float, "bucket": int,
    "index": int}``."""

    kind = "masks"
    data_key = MASKS.name

    def __init__(self, root: str | os.PathLike, split: str, in_memory: bool = False) -> None:
        super().__init__(root, split, in_memory)

    def _load_metadata(self, counts: list[int]) -> None:
        self.ratios: np.ndarray = self._read_column(MASK_RATIO, counts)
        self.buckets: np.ndarray = self._read_column(MASK_BUCKET, counts).astype(np.int64)
        if self.buckets.size and (self.buckets.min() < 0 or self.buckets.max() >= len(BUCKET_EDGES)):
            raise DataError(f"{self.root}: mask split {self.split!r} has bucket numbers outside 0-"
                            f"{len(BUCKET_EDGES) - 1}; {_REPACK}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, row = self._locate(index)
        mask = np.asarray(self._read_sample(shard, row))
        if mask.shape != self._sample_shape:
            raise DataError(f"{self.files[shard]}: mask {row} has shape {mask.shape}, expected "
                            f"{self._sample_shape}; {_REPACK}")
        i = shard_row_index(self, shard, row)
        return {"mask": torch.from_numpy(mask).to(torch.float32).unsqueeze_(0),
                "ratio": float(self.ratios[i]), "bucket": int(self.buckets[i]), "index": i}


def shard_row_index(dataset: _ShardSet, shard: int, row: int) -> int:
    """Global sample index of ``row`` in shard number ``shard``."""
    return int(dataset._starts[shard]) + row
