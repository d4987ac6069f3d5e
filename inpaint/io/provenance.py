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
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from inpaint.core.errors import DataError
from inpaint.core.shard_format import INDEX_NAME, REPACK_HINT, read_index

#: The keys of a checkpoint's ``data`` record holding the digests of its training lists.
DIGEST_KEYS = {"faces": "faces_digest", "masks": "masks_digest"}

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
        except (OSError, KeyError, RuntimeError) as exc:  # h5py raises RuntimeError for some damage
            raise DataError(f"{path}: cannot read the face hashes ({exc}); {REPACK_HINT}") from None
    return ids


def mask_ids(root: str | os.PathLike, split: str) -> list[str]:
    """SHA-256 (hex) of each mask's packed pixels, in the split's order."""
    ids: list[str] = []
    for path in _split_files(root, "masks", split):
        try:
            with h5py.File(path, "r") as f:
                masks = f["masks"][()]
        except (OSError, KeyError, RuntimeError) as exc:  # h5py raises RuntimeError for some damage
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


class ProvenanceWarning(UserWarning):
    """Weights whose training data cannot be recorded or checked: they still work, but no
    evaluation can tell whether it scores them on what they were trained on."""


def recorded_digests(data: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``{"faces": digest, "masks": digest}`` from a checkpoint's ``data`` record, or None for a
    checkpoint written before the trainer recorded them."""
    if not isinstance(data, Mapping):
        return None
    found = {kind: data.get(key) for kind, key in DIGEST_KEYS.items()}
    return found if all(isinstance(v, str) and v for v in found.values()) else None  # type: ignore[return-value]


def differing_lists(recorded: Mapping[str, str], training: TrainingSet) -> list[str]:
    """``faces``/``masks`` whose digest in ``training`` is not the recorded one."""
    found = training.digests()
    return [kind for kind, key in DIGEST_KEYS.items() if found[key] != recorded[kind]]


def verified_training_set(data: Mapping[str, Any], root: str | os.PathLike, what: str, option: str | None = None) -> TrainingSet:
    """The training lists of the shards at ``root``, checked against the digests ``what`` (a
    checkpoint) recorded in ``data``; a one-line DataError naming the folder and the fix when the
    folder is gone or holds other lists. ``option`` is the command-line option that gave ``root``
    (None: the folder recorded in the checkpoint)."""
    recorded = recorded_digests(data)
    if recorded is None:
        raise ValueError(f"{what} records no training-set digests")
    root = Path(root)
    if option:
        named, fix = f"{option} {root}", f"name the shards {what} was trained on"
    else:
        named = f"{root} (the training shards {what} recorded)"
        fix = "pass --train-data SHARDS naming them where they are now (their digests must match)"
    if not (root / INDEX_NAME).is_file():
        raise DataError(f"{named} holds no {INDEX_NAME} (gone or moved): {fix}")
    training = TrainingSet.of(root)
    differ = differing_lists(recorded, training)
    if differ:
        found = training.digests()
        detail = "; ".join(f"{kind} digest {found[DIGEST_KEYS[kind]][:12]}…, recorded {recorded[kind][:12]}…" for kind in differ)
        raise DataError(f"{named} holds other training {' and '.join(differ)} than {what} was trained on ({detail}): {fix}")
    return training


def training_record(card_record: Mapping[str, Any] | None, data: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The record to check scored faces and masks against, and where it came from (``card``,
    ``checkpoint``) or why there is none: a weights card's ``training_set``; else the training
    shards a checkpoint's ``data`` names, when that folder still holds the lists it recorded."""
    if isinstance(card_record, Mapping) and card_record.get("faces") and card_record.get("masks"):
        return dict(card_record), "card"
    recorded = recorded_digests(data)
    if recorded is None or not data or not data.get("root"):
        return None, "no training-set digests recorded (trained or exported before they were)"
    root = Path(str(data["root"]))
    if not (root / INDEX_NAME).is_file():
        return None, f"its training shards {root} are gone or moved"
    try:
        training = TrainingSet.of(root)
    except DataError as exc:
        return None, f"its training shards cannot be read ({exc})"
    differ = differing_lists(recorded, training)
    if differ:
        return None, f"its training shards {root} now hold other {' and '.join(differ)} than it was trained on"
    return training.card_record(), "checkpoint"


def pair_overlap(record: Mapping[str, Any], pairs: Sequence[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """How many of the distinct faces and masks of the scored ``(face id, mask id)`` pairs, and how
    many pairs, hold something the model was trained on (``record`` as :func:`trained_on` takes)."""
    faces = sorted({f for f, _ in pairs})
    masks = sorted({m for _, m in pairs})
    hit_faces = {faces[i] for i in trained_on(record, "faces", faces)}
    hit_masks = {masks[i] for i in trained_on(record, "masks", masks)}
    return {"faces": {"scored": len(faces), "trained_on": len(hit_faces)},
            "masks": {"scored": len(masks), "trained_on": len(hit_masks)},
            "pairs": {"scored": len(pairs), "trained_on": sum(f in hit_faces or m in hit_masks for f, m in pairs)}}


def overlap_sentence(counts: Mapping[str, Mapping[str, int]]) -> str | None:
    """"was trained on F of the N faces and M of the K masks scored here: …" when any were, with
    what to do about it; None when the scored pairs hold nothing the model was trained on."""
    faces, masks = counts["faces"], counts["masks"]
    if not faces["trained_on"] and not masks["trained_on"]:
        return None
    fixes = []
    if faces["trained_on"]:
        fixes.append("score faces outside its training split, e.g. its own shards' test split")
    if masks["trained_on"]:
        fixes.append("pack the masks from the same folder the model's training shards used, or score other masks")
    return (f"was trained on {faces['trained_on']} of the {faces['scored']} faces and {masks['trained_on']} of the "
            f"{masks['scored']} masks scored here: its scores are optimistic ({'; '.join(fixes)})")
