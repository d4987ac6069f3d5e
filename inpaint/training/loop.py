"""The GAN training loop: resumable at any step boundary, deadline-aware, single- or multi-process.

One optimizer step = one discriminator update on (real, detached fake) followed by one generator
update against the just-updated discriminator. Everything the next step depends on (weights,
optimizer moments, AMP scale, RNG states, the position in the epoch) is in the checkpoint, and the
data stream is a pure function of (seed, epoch, index), so a stopped-and-resumed run retraces an
uninterrupted one.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from inpaint.io.checkpoint import (
    CheckpointWarning, DiskFullError, RUN_DIR_FIX, find_checkpoints, load_latest,
    read_checkpoint, save_checkpoint,
)
from inpaint.core.config import Config, save_config
from inpaint.models.wrappers import bare_module
from inpaint.core.contract import CONFIG_FILE, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_FINISHED, EXIT_STOPPED, SAMPLES_DIR, Outcome
from inpaint.core.disk import disk_full_message, free_bytes, is_disk_full
from inpaint.core.errors import FacefillError
from inpaint.training.batches import make_loader, stop_workers, worker_error
from inpaint.training.deadline import Deadline, estimated_checkpoint_seconds
from inpaint.training.cpu_time import CpuMeter, process_tree_cpu_seconds
from inpaint.training.distributed import (
    DistInfo, any_rank, barrier, broadcast_from_main, init_distributed, shutdown, sum_over_ranks,
)
from inpaint.device import resolve_device
from inpaint.training.environment import backend_flags, configure_backends, restore_backend_flags
from inpaint.training.inputs import open_training_data, sample_batch
from inpaint.training.metrics_log import RunningLosses, all_finite, append_metrics, truncate_metrics_after
from inpaint.training.networks import TrainingModels
from inpaint.training.pairs import EpochBatches, TrainingPairs
from inpaint.training.schedule import lr_factor
from inpaint.training.step import autocast, train_step
from inpaint.training.run_dir import RunDir
from inpaint.training.signals import StopRequest
from inpaint.training.state import (
    Position, data_fingerprint, dump_state, restore_state, seed_everything, world_size_change,
)
from inpaint.training.tensorboard_log import TensorBoardLog
from inpaint.training.train_log import format_duration

log = logging.getLogger("facefill.train")


@dataclass
class TrainOptions:
    """Everything a training process needs besides the config; mirrors the CLI."""

    config: Config
    data_root: Path
    run_dir: Path
    device: str | None = None          # "cpu", "cuda", "cuda:1"; None = cuda if available
    time_limit: float | None = None    # seconds from ``start_time``
    deadline: float | None = None      # absolute UNIX time
    deterministic: bool = False
    force: bool = False
    allow_world_size_change: bool = False  # resume a checkpoint of another world size (another batch order)
    start_time: float = field(default_factory=time.time)
    # CPU seconds of this process not to bill to the run: what it had used when the options were
    # made (an in-process caller's own work); the CLI passes 0, so start-up and imports count too.
    cpu_baseline: float = field(default_factory=process_tree_cpu_seconds)


@dataclass
class TrainingData:
    """The training stream: shard index, the train splits, their batch order and loader, and the
    fixed batch for the per-epoch pictures (rank 0 only)."""

    index: dict[str, Any]
    faces: Dataset
    masks: Dataset
    sampler: EpochBatches
    fingerprint: dict[str, Any]          # what a checkpoint records to refuse other shards on resume
    loader: DataLoader
    samples: dict[str, torch.Tensor] | None

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch


class NonFinite(Exception):
    """The losses since the last check, or the weights, hold NaN or inf (on any process): the run
    ends as failed, and nothing is saved, so the newest checkpoint stays the last good one."""

    def __init__(self, values: dict[str, float]) -> None:
        super().__init__(", ".join(f"{k}={v:.4g}" for k, v in values.items()))
        self.values = values


# --- the trainer -----------------------------------------------------------------------------

class Trainer:
    """Holds the networks, data, position and deadline of one training process; built whole by
    :meth:`open` (which starts a run or resumes the run dir's newest valid checkpoint), then
    :meth:`run` trains until done, told to stop, out of time, or the loss stops being finite."""

    def __init__(self, opts: TrainOptions, stop: StopRequest, run: RunDir, dist: DistInfo, device: torch.device,
                 data: TrainingData, models: TrainingModels, pos: Position, total_steps: int, deadline: Deadline,
                 board: TensorBoardLog | None, cpu_carried: float = 0.0, resume_note: str | None = None) -> None:
        self.opts, self.cfg, self.stop, self.run_dir = opts, opts.config, stop, run
        self.dist, self.device, self.data, self.models = dist, device, data, models
        self.pos, self.total_steps, self.deadline, self.board = pos, total_steps, deadline, board
        self.last_saved_step: int | None = pos.step if run.checkpoint is not None else None
        self.images_trained = 0          # by this process, for the measured throughput
        self.step_seconds = 0.0
        self.cpu = CpuMeter(cpu_carried, opts.cpu_baseline)  # this rank's; summed over ranks at each save
        self.cpu_seconds: float | None = cpu_carried or None
        self.resume_note = resume_note   # how this resume differs from an uninterrupted run: every outcome says it

    # set-up ------------------------------------------------------------------------------
    @classmethod
    def open(cls, opts: TrainOptions, stop: StopRequest, run: RunDir, dist: DistInfo, device: torch.device) -> "Trainer":
        """Read the run dir's newest valid checkpoint (if any), open the shards, build the
        networks and load the checkpoint into them (refusing a changed config or shard set)."""
        cfg = opts.config
        tcfg = cfg.train
        found = _newest_valid_checkpoint(run, dist)  # first: a failure below still reports its step

        index, faces, masks = open_training_data(opts.data_root, cfg, dist.world_size)
        sampler = EpochBatches(len(faces), tcfg.batch_size, tcfg.seed, dist.rank, dist.world_size)
        total_steps = tcfg.epochs * sampler.steps_per_epoch
        if tcfg.max_steps is not None:
            total_steps = min(total_steps, tcfg.max_steps)
        run.total_steps = total_steps
        fingerprint = data_fingerprint(index, len(faces), len(masks), opts.data_root)

        seed_everything(tcfg.seed)  # model initialisation depends on it
        models = TrainingModels.build(cfg, device, dist)
        resume_note = None
        if found is None:
            pos, timing = Position(), {}
            log.info("starting a new run in %s (%d steps: %d epochs x %d steps/epoch%s)", run.path, total_steps,
                     tcfg.epochs, sampler.steps_per_epoch, f", capped at {tcfg.max_steps}" if tcfg.max_steps else "")
        else:
            pos, timing, resume_note = _resume(found, opts, models, fingerprint, sampler.steps_per_epoch, dist)
            log.info("resumed from step %d/%d (%s, epoch %d)", pos.step, total_steps, found[1], pos.epoch + 1)
        if dist.is_main:
            truncate_metrics_after(run.path, pos.step)  # steps logged after the checkpoint are retrained
            save_config(cfg, run.path / CONFIG_FILE)

        pairs = TrainingPairs(faces, masks, tcfg.seed, cfg.data.mask_flip_p)
        loader = make_loader(pairs, sampler, cfg.data.workers, tcfg.seed, pin_memory=device.type == "cuda")
        samples = sample_batch(opts.data_root, index, faces, masks) if dist.is_main else None
        data = TrainingData(index, faces, masks, sampler, fingerprint, loader, samples)

        deadline = Deadline.from_args(opts.time_limit, opts.deadline, opts.start_time)
        deadline.seed_estimates(timing.get("step_s"), timing.get("checkpoint_s"))
        deadline.seed_estimates(None, estimated_checkpoint_seconds(models.generator, models.discriminator))
        board = TensorBoardLog.open(run.path, pos.step) if dist.is_main else None
        # Rank 0's checkpoint holds the whole run's CPU time; the other ranks carry none of it.
        carried = float(found[0].get("cpu_seconds") or 0.0) if found is not None and dist.is_main else 0.0
        return cls(opts, stop, run, dist, device, data, models, pos, total_steps, deadline, board, carried, resume_note)

    def close(self) -> None:
        """Stop the loader's workers and close the event file: nothing outlives the trainer."""
        stop_workers(self.data.loader)
        if self.board is not None:
            self.board.close()

    # one step ----------------------------------------------------------------------------
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.models.channels_last else t

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One D update then one G update (:func:`inpaint.training.step.train_step`)."""
        return train_step(self.models, self._to_device(batch["image"]), self._to_device(batch["mask"]))

    # persistence -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return dump_state(self.cfg, self.models, self.pos, self.data.fingerprint, self.deadline.summary(),
                          self.dist.world_size, self.cpu_seconds)

    def save(self) -> None:
        """Checkpoint now (rank 0 writes, the others wait); the duration feeds the deadline."""
        if self.last_saved_step == self.pos.step:
            return
        t0 = time.time()
        self.cpu_seconds = sum_over_ranks(self.cpu.total(), self.dist, self.device)
        if self.dist.is_main:
            path = save_checkpoint(self.run_dir.path, self.checkpoint_state(), keep=self.cfg.train.checkpoint_keep)
            self.run_dir.mark_checkpoint(path, self.pos.epoch, self.pos.step)
        barrier(self.dist)
        seconds = time.time() - t0
        self.deadline.record_checkpoint(seconds)
        self.last_saved_step = self.pos.step
        if self.dist.is_main:
            log.info("checkpoint %s (%.2f s)", path.name, seconds)

    def write_samples(self, label: int) -> None:
        """``samples/epoch-<label>.png`` from the fixed sample batch, G in eval mode."""
        samples = self.data.samples
        if not self.dist.is_main or samples is None:
            return
        from inpaint.render.visual import inpainting_grid, save_image

        g = bare_module(self.models.generator)
        was_training = g.training
        g.eval()
        try:
            with torch.no_grad(), autocast(self.models, self.device):
                image = self._to_device(samples["image"])
                mask = self._to_device(samples["mask"])
                output = g(image * (1 - mask), mask).float()
        finally:
            g.train(was_training)
        picture = inpainting_grid(image, mask, output)
        save_image(picture, self.run_dir.path / SAMPLES_DIR / f"epoch-{label:04d}.png")
        if self.board is not None:
            self.board.picture("samples", self.pos.step, picture)

    # the loop ----------------------------------------------------------------------------
    def outcome(self, code: int, message: str) -> Outcome:
        rate = self.images_trained / self.step_seconds if self.step_seconds > 0 else None
        if self.resume_note:
            message = f"{message}; {self.resume_note}"
        return self.run_dir.outcome(code, message, epoch=self.pos.epoch, step=self.pos.step,
                                    total_steps=self.total_steps, images_per_s=rate, cpu_seconds=self.cpu_seconds)

    def run(self) -> Outcome:
        """Train until done, told to stop or out of time (a checkpoint first); losses or weights
        that stop being finite end it without one (:class:`NonFinite`)."""
        try:
            return self._train()
        except NonFinite as exc:
            last = self.run_dir.checkpoint
            keep = f"last good checkpoint {last.path}" if last else "no checkpoint was written"
            return self.outcome(EXIT_FAILED, f"non-finite values by step {self.pos.step} ({exc}); {keep}; "
                                             "lower optim.lr or check the data before resuming")

    def _train(self) -> Outcome:
        tcfg, total, deadline, stop = self.cfg.train, self.total_steps, self.deadline, self.stop
        if self.pos.step >= total:
            return self.outcome(EXIT_FINISHED, f"already finished ({self.pos.step} steps); raise train.epochs or --max-steps to train longer")
        images_per_step = tcfg.batch_size * self.dist.world_size
        running = RunningLosses()
        log_t0, log_step0 = time.time(), self.pos.step
        self.models.generator.train()
        self.models.discriminator.train()
        self.data.sampler.set_epoch(self.pos.epoch, self.pos.epoch_step)
        batches = iter(self.data.loader)
        while self.pos.step < total:
            # Step boundary: the only place we stop, so a checkpoint is always a whole step.
            want_stop = stop.requested or deadline.must_stop()
            if any_rank(want_stop, self.dist, self.device):
                reason = (f"received {stop.signal_name}" if stop.requested else
                          f"time budget: {deadline.remaining():.0f} s left, next step + checkpoint need "
                          f"~{deadline.step_estimate + deadline.checkpoint_estimate + deadline.reserve_s:.0f} s"
                          if deadline.must_stop() else "another process was told to stop")
                self._check_finite(running)
                self.save()
                return self.outcome(EXIT_STOPPED, f"stopped early ({reason}) with a checkpoint at step {self.pos.step}; run again to continue")
            t0 = time.time()
            try:
                batch = next(batches)
            except StopIteration:  # the epoch is over
                self._end_epoch()
                batches = iter(self.data.loader)
                continue
            except FacefillError as exc:  # raised in a DataLoader worker: the one line it was
                raise worker_error(exc) from None
            ocfg = self.cfg.optim
            self.models.set_lr(ocfg.lr * lr_factor(self.pos.step, total, ocfg.lr_decay, ocfg.lr_decay_start))
            losses = self.train_step(batch)
            running.add(losses)
            self.pos.step += 1
            self.pos.epoch_step += 1
            self.images_trained += images_per_step

            done = self.pos.step >= total
            if self.pos.step % tcfg.log_every_steps == 0 or done:
                self._log_progress(running, log_t0, log_step0, images_per_step)
                log_t0, log_step0 = time.time(), self.pos.step
            if self.pos.epoch_step >= self.data.steps_per_epoch and not done:
                self._end_epoch()
                batches = iter(self.data.loader)
            # Logging and the epoch's sample picture count as step time: they too must fit.
            seconds = time.time() - t0
            deadline.record_step(seconds)
            self.step_seconds += seconds
            if self.pos.step % tcfg.checkpoint_every_steps == 0 and not done:
                self._check_finite(running)
                self.save()
        self._check_finite(running)
        if self.pos.epoch_step >= self.data.steps_per_epoch:
            self._end_epoch()
        else:
            self.write_samples(self.pos.epoch + 1)
        self.save()
        return self.outcome(EXIT_FINISHED, f"finished {self.pos.step} steps ({self.pos.epoch} full epochs) in {self.run_dir.path}")

    def _end_epoch(self) -> None:
        self.write_samples(self.pos.epoch + 1)
        self.pos.epoch += 1
        self.pos.epoch_step = 0
        self.data.sampler.set_epoch(self.pos.epoch, 0)

    def _check_finite(self, running: RunningLosses) -> None:
        """Before anything is saved: are the losses since the last log and the weights finite?
        (An overflowing gradient can ruin the weights one step before the loss shows it.)"""
        values = running.peek()
        if not self._finite_everywhere(values):
            raise NonFinite(values)
        if any_rank(not self.models.weights_finite(), self.dist, self.device):
            raise NonFinite({"weights": float("nan")})

    def _finite_everywhere(self, values: dict[str, float]) -> bool:
        # Collective: a rank that stopped alone would leave the others waiting forever.
        return not any_rank(not all_finite(values), self.dist, self.device)

    def _log_progress(self, running: RunningLosses, t0: float, step0: int, images_per_step: int) -> None:
        values = running.pop()
        if not self._finite_everywhere(values):
            raise NonFinite(values)
        total = self.total_steps
        seconds = max(time.time() - t0, 1e-9)
        steps = self.pos.step - step0
        img_s = steps * images_per_step / seconds
        eta = (total - self.pos.step) * seconds / max(steps, 1)
        if self.dist.is_main:
            lr = self.models.opt_g.param_groups[0]["lr"]
            record = {"step": self.pos.step, "epoch": self.pos.epoch + 1, "time": time.time(), **values,
                      "img_per_s": img_s, "lr": lr}
            append_metrics(self.run_dir.path, record)
            if self.board is not None:
                self.board.scalars(self.pos.step, {**values, "img_per_s": img_s, "lr": lr})
            terms = " ".join(f"{k.replace('_l1', '')} {values[k]:.4f}" for k in ("global_l1", "hole_l1", "adversarial", "perceptual") if k in values)
            log.info("epoch %d/%d step %d/%d (%.1f%%) | %.1f img/s | ETA %s | G %.4f (%s) | D %.4f",
                     self.pos.epoch + 1, self.cfg.train.epochs, self.pos.step, total, 100 * self.pos.step / total,
                     img_s, format_duration(eta), values["g_total"], terms, values["d_loss"])


# --- resuming ----------------------------------------------------------------------------------

def _newest_valid_checkpoint(run: RunDir, dist: DistInfo) -> tuple[dict[str, Any], Path] | None:
    """Rank 0 reads the newest readable checkpoint (setting unreadable newer ones aside); the
    others read the one it chose. Marks it in the run dir as the newest valid checkpoint."""
    found = None
    if dist.is_main:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CheckpointWarning)
            found = load_latest(run.path, set_aside_unreadable=True)
        for w in caught:  # into train.log as well, then on to the caller's warning filters
            log.warning("%s", w.message)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    path = broadcast_from_main(str(found[1]) if found else None, dist)
    if path is None:
        return None
    if found is None:
        found = (read_checkpoint(path), Path(path))
    state = found[0]
    run.mark_checkpoint(found[1], int(state["epoch"]), int(state["step"]))
    return found


def _resume(found: tuple[dict[str, Any], Path], opts: TrainOptions, models: TrainingModels,
            fingerprint: dict[str, Any], steps_per_epoch: int, dist: DistInfo) -> tuple[Position, dict[str, float], str | None]:
    """Check the checkpoint against the config, shards and world size, load it; its position, timing
    and the note of an allowed world-size change."""
    state, path = found
    restored = restore_state(state, path, opts.config, models, fingerprint, opts.data_root, steps_per_epoch, opts.force)
    for diff in restored.config_changes:
        log.warning("--force: continuing with changed %s", diff)
    for diff in restored.data_changes:
        log.warning("--force: continuing on changed shards (%s)", diff)
    note = world_size_change(restored.saved_world_size, dist.world_size, path, opts.allow_world_size_change)
    if note:
        log.warning("%s", note)
    return restored.position, restored.timing, note


# --- one training process ----------------------------------------------------------------------

def full_disk_failure(exc: BaseException, run: RunDir) -> str:
    """One line: which file, that the disk is full, how much was free (and needed, for a checkpoint),
    and what was kept."""
    if isinstance(exc, DiskFullError):
        what = str(exc)
    else:
        target = getattr(exc, "filename", None) or run.path
        free = free_bytes(target)
        what = disk_full_message(target, free, fix=RUN_DIR_FIX)
    last = run.checkpoint
    return f"{what}; {f'last good checkpoint {last.path} kept' if last else 'no checkpoint was written'}"


def stopped_during_start_up(stop: StopRequest, run: RunDir) -> str:
    """The status message of a stop that came before training began: nothing was read or written,
    so a rerun continues from the newest checkpoint there is (checked then), or starts afresh."""
    newest = find_checkpoints(run.path)
    resume = f"continue from {newest[0].name}" if newest else "start from scratch (no checkpoint yet)"
    signal_name = stop.signal_name or "a stop signal"
    return f"stopped during start-up (received {signal_name}) before the first step; run the same command to {resume}"


def train(opts: TrainOptions, stop: StopRequest | None = None) -> Outcome:
    """Set up, run, tear down; always leaves ``status.json`` and a status line behind (unless
    another trainer holds the run dir: its status is not ours to overwrite).

    ``stop``: the caller's stop request, installed earlier (the CLI installs it before importing
    torch) and left installed; without one, train installs its own and restores the handlers.
    A stop asked for before the run dir was taken ends there, before anything is read or written.

    Bad input (FacefillError) is re-raised after that for the CLI to turn into exit 2; a full
    disk is exit 1 with one line; any other exception is a training failure: traceback on
    stderr, exit 1.
    """
    own_stop = stop is None
    if stop is None:
        stop = StopRequest().install()  # before set-up: a signal during start-up must not kill us
    saved_backends = backend_flags()
    dist = DistInfo()
    run: RunDir | None = None
    trainer: Trainer | None = None
    try:
        device = resolve_device(opts.device)
        dist = init_distributed(device.type)
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        configure_backends(device, opts.deterministic)
        run = RunDir.open(opts.run_dir, dist)
        barrier(dist)
        if any_rank(stop.requested, dist, device):
            return run.finish(run.outcome(EXIT_STOPPED, stopped_during_start_up(stop, run)))

        def outcome(code: int, message: str) -> Outcome:
            return trainer.outcome(code, message) if trainer is not None else run.outcome(code, message)

        try:
            trainer = Trainer.open(opts, stop, run, dist, device)
            result = trainer.run()
        except FacefillError as exc:
            run.finish(outcome(EXIT_BAD_INPUT, str(exc)))
            raise
        except torch.cuda.OutOfMemoryError as exc:
            log.error("CUDA out of memory: %s", str(exc).splitlines()[0])
            result = outcome(EXIT_FAILED, "CUDA out of memory: lower train.batch_size or data.size, or use a GPU with more memory")
        except Exception as exc:
            if is_disk_full(exc):
                return run.finish(outcome(EXIT_FAILED, full_disk_failure(exc, run)), to_stderr=True)
            traceback.print_exc()  # a bug or a crash: keep the traceback, report failure
            if run.log_file is not None:
                run.log_file.write_line(traceback.format_exc())
            result = outcome(EXIT_FAILED, f"crashed with {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return run.finish(result)
    finally:
        if trainer is not None:
            trainer.close()
        if run is not None:
            run.close()
        if own_stop:
            stop.restore()
        shutdown(dist)
        restore_backend_flags(saved_backends)  # in-process callers (tests, notebooks) get theirs back
