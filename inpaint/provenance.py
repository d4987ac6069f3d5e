"""What a model was trained on, as digests: so that a score can be checked for leakage.

A face is identified by the SHA-256 of its source file (the packer stores it per face, and it is
the same whichever folder or split the file was packed from); a mask by the SHA-256 of its packed
pixels (the same source mask packed at the same size gives the same pixels, whatever folder it was
packed from: ``masks/`` and ``masks/irregular_nvidia_test/`` list the same files under different
names and give different splits). A list is identified by the digest of its sorted ids.

The trainer records the digests of its training lists in every checkpoint; the exporter writes
them into the weights card together with short prefixes of every id (:data:`PREFIX_BYTES` bytes,
one-way and far too short to recover anything from), and ``inpaint.evaluate`` warns when the pairs
it scores include faces or masks the model under test was trained on.

Standard library, NumPy and h5py only: no torch.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np

from inpaint.errors import DataError
from inpaint.shard_format import REPACK_HINT, read_index

#: Bytes of each id kept for the membership test: 48 bits, so a false "trained on" among
#: thousands of scored items against ten thousand training ones has odds of about 1e-7.
PREFIX_BYTES = 6


def _split_files(root: str | os.PathLike, kind: str, split: str) -> list[str]:
    index = read_index(root)
    return [os.path.join(root, s["file"]) for s in index.get("shards", []) if s.get("kind") == kind and s.get("split") == split]


def face_ids(root: str | os.PathLike, split: str) -> list[str]:
    """SHA-256 (hex) of each face's source file, in the split's order."""
    ids: list[str] = []
    for path in _split_files(root, "faces", split):
        try:
            with h5py.File(path, "r") as f:
                ids.extend(h.decode() if isinstance(h, bytes) else str(h) for h in f["hashes"][()])
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read the face hashes ({exc}); {REPACK_HINT}") from None
    return ids


def mask_ids(root: str | os.PathLike, split: str) -> list[str]:
    """SHA-256 (hex) of each mask's packed pixels, in the split's order."""
    ids: list[str] = []
    for path in _split_files(root, "masks", split):
        try:
            with h5py.File(path, "r") as f:
                masks = f["masks"][()]
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read the masks ({exc}); {REPACK_HINT}") from None
        ids.extend(hashlib.sha256(np.ascontiguousarray(m).tobytes()).hexdigest() for m in masks)
    return ids


def list_digest(ids: Iterable[str]) -> str:
    """One digest for a list of ids, independent of their order."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def encode_prefixes(ids: Sequence[str]) -> str:
    """The first :data:`PREFIX_BYTES` bytes of every id, sorted, as one base64 string."""
    raw = sorted({bytes.fromhex(i)[:PREFIX_BYTES] for i in ids})
    return base64.b64encode(b"".join(raw)).decode("ascii")


def decode_prefixes(text: str) -> set[bytes]:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % PREFIX_BYTES:
        raise ValueError(f"length {len(raw)} is not a multiple of {PREFIX_BYTES}")
    return {raw[i:i + PREFIX_BYTES] for i in range(0, len(raw), PREFIX_BYTES)}


@dataclass(frozen=True)
class TrainingSet:
    """The training lists of one shard folder: ids of faces and masks."""

    faces: list[str]
    masks: list[str]

    @classmethod
    def of(cls, root: str | os.PathLike, split: str = "train") -> "TrainingSet":
        return cls(face_ids(root, split), mask_ids(root, split))

    def digests(self) -> dict[str, str]:
        """What a checkpoint records (small: two hashes)."""
        return {"faces_digest": list_digest(self.faces), "masks_digest": list_digest(self.masks)}

    def card_record(self) -> dict[str, object]:
        """What a weights card records: counts, digests and the membership prefixes."""
        return {
            "faces": {"count": len(self.faces), "digest": list_digest(self.faces), "prefixes": encode_prefixes(self.faces)},
            "masks": {"count": len(self.masks), "digest": list_digest(self.masks), "prefixes": encode_prefixes(self.masks)},
            "id": {"faces": "sha256 of the source file", "masks": "sha256 of the packed mask pixels"},
            "prefix_bytes": PREFIX_BYTES,
        }


def trained_on(record: Mapping[str, object], kind: str, ids: Sequence[str]) -> list[int]:
    """Positions in ``ids`` (faces or masks) whose prefix is in a card's training-set record."""
    entry = record.get(kind) if isinstance(record, Mapping) else None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("prefixes"), str):
        return []
    members = decode_prefixes(entry["prefixes"])
    return [i for i, x in enumerate(ids) if bytes.fromhex(x)[:PREFIX_BYTES] in members]
