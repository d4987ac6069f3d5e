"""The GAN training loop: resumable at any step boundary, deadline-aware, single- or multi-process.

One optimizer step = one discriminator update on (real, detached fake) followed by one generator
update against the just-updated discriminator. Everything the next step depends on (weights,
optimizer moments, AMP scale, RNG states, the position in the epoch) is in the checkpoint, and the
data stream is a pure function of (seed, epoch, index), so a stopped-and-resumed run retraces an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from inpaint.checkpoint import (
    CHECKPOINT_FORMAT, CheckpointWarning, bare_module, find_checkpoints, load_latest, read_checkpoint, save_checkpoint,
)
from inpaint.config import resolve_config, save_config
from inpaint.errors import CheckpointError, ConfigError, FacefillError
from inpaint.training.deadline import Deadline, estimated_checkpoint_seconds
from inpaint.training.environment import backend_flags, configure_backends, resolve_device, restore_backend_flags, speed_paths
from inpaint.training.inputs import open_training_data, sample_batch, seed_worker
from inpaint.training.progress import format_duration, setup_logging
from inpaint.training.distributed import DistInfo, any_rank, barrier, broadcast_from_main, init_distributed, shutdown
from inpaint.training.metrics_log import RunningLosses, all_finite, append_metrics, truncate_metrics_after
from inpaint.training.pairs import EpochBatches, TrainingPairs
from inpaint.training.resume import check_config, check_data, data_fingerprint
from inpaint.training.rng import capture_rng_state, restore_rng_state, seed_everything
from inpaint.training.signals import StopRequest
from inpaint.training.status import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_FINISHED, EXIT_STOPPED, Outcome, write_status

log = logging.getLogger("facefill.train")


@dataclass
class TrainOptions:
    """Everything a training process needs besides the config; mirrors the CLI."""

    config: dict[str, Any]
    data_root: Path
    run_dir: Path
    device: str | None = None          # "cpu", "cuda", "cuda:1"; None = cuda if available
    time_limit: float | None = None    # seconds from ``start_time``
    deadline: float | None = None      # absolute UNIX time
    deterministic: bool = False
    force: bool = False
    start_time: float = field(default_factory=time.time)


@dataclass
class Position:
    """Where in training we are: ``step`` optimizer steps done, ``epoch`` = index of the epoch in
    progress (= epochs completed), ``epoch_step`` = batches of it done."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0


# --- the trainer -----------------------------------------------------------------------------

class Trainer:
    """Holds the models, optimizers and position; :meth:`run` trains until done, told to stop,
    out of time, or the loss stops being finite."""

    def __init__(self, opts: TrainOptions, stop: StopRequest | None = None) -> None:
        self.opts = opts
        self.stop = stop or StopRequest()
        self.cfg = opts.config
        self.run_dir = Path(opts.run_dir)
        self.pos = Position()
        self.total_steps: int | None = None
        self.last_saved_step: int | None = None

    # set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        opts, cfg = self.opts, self.cfg
        tcfg = cfg["train"]
        device = resolve_device(opts.device)
        self.dist = init_distributed(device.type)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        configure_backends(device, opts.deterministic)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier(self.dist)
        self._file_handler = setup_logging(self.run_dir, self.dist.is_main)

        self.index, faces, masks = open_training_data(opts.data_root, cfg, self.dist.world_size)
        self.sampler = EpochBatches(len(faces), tcfg["batch_size"], tcfg["seed"], self.dist.rank, self.dist.world_size)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = tcfg["epochs"] * self.steps_per_epoch
        if tcfg["max_steps"] is not None:
            self.total_steps = min(self.total_steps, tcfg["max_steps"])
        self.fingerprint = data_fingerprint(self.index, len(faces), len(masks))

        seed_everything(tcfg["seed"])  # model initialisation depends on it
        self._build_models()
        self._resume()
        if self.dist.is_main:
            save_config(cfg, self.run_dir / "config.yaml")

        pairs = TrainingPairs(faces, masks, tcfg["seed"], cfg["data"]["mask_flip_p"])
        workers = cfg["data"]["workers"]
        loader_seed = torch.Generator()
        loader_seed.manual_seed(tcfg["seed"])
        self.loader = DataLoader(
            pairs, batch_sampler=self.sampler, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
            worker_init_fn=seed_worker, generator=loader_seed,
        )
        self.samples = sample_batch(opts.data_root, self.index, faces, masks) if self.dist.is_main else None

    def _build_models(self) -> None:
        from inpaint.losses import GeneratorLoss, discriminator_loss
        from inpaint.models import build_discriminator, build_generator, count_parameters

        cfg, device = self.cfg, self.device
        tcfg = cfg["train"]
        self.generator = build_generator(cfg["model"]).to(device)
        self.discriminator = build_discriminator(cfg["model"]).to(device)
        speed = speed_paths(tcfg, device)
        self.channels_last = speed.channels_last
        if self.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        betas = tuple(cfg["optim"]["betas"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg["optim"]["lr"], betas=betas, fused=speed.fused_adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg["optim"]["lr"], betas=betas, fused=speed.fused_adam)
        self.amp_dtype = speed.amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.generator_loss = GeneratorLoss(cfg["loss"]).to(device)
        self.discriminator_loss = discriminator_loss
        self.uses_adversarial = "adversarial" in self.generator_loss.weights

        g_train: torch.nn.Module = self.generator
        d_train: torch.nn.Module = self.discriminator
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            g_train = DDP(g_train, device_ids=ids)
            d_train = DDP(d_train, device_ids=ids)
        if speed.compile:
            g_train = torch.compile(g_train)
        self.g_train, self.d_train = g_train, d_train
        log.info("models: generator %s (%.2f M params), discriminator %s (%.2f M params); device %s, precision %s%s",
                 cfg["model"]["generator"], count_parameters(self.generator) / 1e6, cfg["model"]["discriminator"],
                 count_parameters(self.discriminator) / 1e6, device,
                 {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype],
                 f", {self.dist.world_size} processes" if self.dist.enabled else "")

    def _resume(self) -> None:
        path = None
        if self.dist.is_main:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CheckpointWarning)
                found = load_latest(self.run_dir)
            for w in caught:  # into train.log as well, then on to the caller's warning filters
                log.warning("%s", w.message)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            path = str(found[1]) if found else None
        path = broadcast_from_main(path, self.dist)
        if path is None:
            log.info("starting a new run in %s (%d steps: %d epochs x %d steps/epoch%s)", self.run_dir,
                     self.total_steps, self.cfg["train"]["epochs"], self.steps_per_epoch,
                     f", capped at {self.cfg['train']['max_steps']}" if self.cfg["train"]["max_steps"] else "")
            if self.dist.is_main:
                truncate_metrics_after(self.run_dir, 0)
            return
        t0 = time.time()
        state = read_checkpoint(path)
        path = Path(path)
        try:  # fill in keys added to the defaults since the checkpoint was written
            saved_cfg = resolve_config(state["config"], source=str(path))
        except ConfigError:
            saved_cfg = state["config"]
        for diff in check_config(saved_cfg, self.cfg, path, self.opts.force):
            log.warning("--force: continuing with changed %s", diff)
        for diff in check_data(state.get("data"), self.fingerprint, self.opts.data_root, path, self.opts.force):
            log.warning("--force: continuing on changed shards (%s)", diff)
        try:
            self.generator.load_state_dict(state["generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit the configured model ({str(exc).splitlines()[0]}): "
                "resume with the config it was trained with, or use a new --run-dir"
            ) from exc
        for opt in (self.opt_g, self.opt_d):  # --force may have changed them
            for group in opt.param_groups:
                group["lr"] = self.cfg["optim"]["lr"]
                group["betas"] = tuple(self.cfg["optim"]["betas"])
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size:
            log.warning("checkpoint was written by %d processes, this run has %d: the epoch continues with a "
                        "different batch order than an uninterrupted run would use", saved_world, self.dist.world_size)
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.pos = Position(epoch=int(state["epoch"]), step=int(state["step"]), epoch_step=int(state["epoch_step"]))
        if self.pos.epoch_step >= self.steps_per_epoch:  # shard set changed under --force
            self.pos = Position(epoch=self.pos.epoch + 1, step=self.pos.step, epoch_step=0)
        self.last_saved_step = self.pos.step
        self.resumed_timing = state.get("timing") or {}
        if self.dist.is_main:
            truncate_metrics_after(self.run_dir, self.pos.step)
        log.info("resumed from %s: epoch %d, step %d/%d (loaded in %.1f s)", path, self.pos.epoch + 1,
                 self.pos.step, self.total_steps, time.time() - t0)

    # one step ----------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One D update then one G update; returns detached losses (still on the device)."""
        image, mask = self._to_device(batch["image"]), self._to_device(batch["mask"])
        masked = image * (1 - mask)
        with self._autocast():
            fake = self.g_train(masked, mask)
            # Real and fake in one discriminator pass: one DDP forward per backward, half the launches.
            logits = self.d_train(torch.cat((image, fake.detach())), torch.cat((mask, mask)))
            real_logits, fake_logits = logits.chunk(2)
            d_loss = self.discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        self.scaler.step(self.opt_d)

        # The generator step goes through the bare discriminator with frozen weights: no wasted
        # D gradients, and no DDP reducer waiting for gradients that never come.
        d_bare = bare_module(self.discriminator)
        d_bare.requires_grad_(False)
        try:
            with self._autocast():
                adv_logits = d_bare(fake, mask) if self.uses_adversarial else None
                losses = self.generator_loss(fake, image, mask, adv_logits)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(losses["total"]).backward()
            self.scaler.step(self.opt_g)
            self.scaler.update()
        finally:
            d_bare.requires_grad_(True)
        out = {f"g_{k}" if k == "total" else k: v.detach() for k, v in losses.items()}
        out["d_loss"] = d_loss.detach()
        return out

    # persistence -------------------------------------------------------------------------
    def checkpoint_state(self, deadline: Deadline) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg,
            "generator": bare_module(self.generator).state_dict(),
            "discriminator": bare_module(self.discriminator).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": self.pos.epoch,
            "step": self.pos.step,
            "epoch_step": self.pos.epoch_step,
            "rng": capture_rng_state(),
            "time": time.time(),
            "data": self.fingerprint,
            "timing": deadline.summary(),
            "world_size": self.dist.world_size,
        }

    def save(self, deadline: Deadline) -> None:
        """Checkpoint now (rank 0 writes, the others wait); the duration feeds the deadline."""
        if self.last_saved_step == self.pos.step:
            return
        t0 = time.time()
        if self.dist.is_main:
            path = save_checkpoint(self.run_dir, self.checkpoint_state(deadline), keep=self.cfg["train"]["checkpoint_keep"])
        barrier(self.dist)
        seconds = time.time() - t0
        deadline.record_checkpoint(seconds)
        self.last_saved_step = self.pos.step
        if self.dist.is_main:
            log.info("checkpoint %s (%.2f s)", path.name, seconds)

    def write_samples(self, label: int) -> None:
        """``samples/epoch-<label>.png`` from the fixed sample batch, G in eval mode."""
        if not self.dist.is_main or self.samples is None:
            return
        from inpaint.visual import inpainting_grid, save_png

        g = bare_module(self.generator)
        was_training = g.training
        g.eval()
        try:
            with torch.no_grad(), self._autocast():
                image = self._to_device(self.samples["image"])
                mask = self._to_device(self.samples["mask"])
                output = g(image * (1 - mask), mask).float()
        finally:
            g.train(was_training)
        save_png(inpainting_grid(image, mask, output), self.run_dir / "samples" / f"epoch-{label:04d}.png")

    # the loop ----------------------------------------------------------------------------
    def run(self) -> Outcome:
        tcfg = self.cfg["train"]
        total = self.total_steps
        deadline = Deadline.from_args(self.opts.time_limit, self.opts.deadline, self.opts.start_time)
        timing = getattr(self, "resumed_timing", {})
        deadline.seed_estimates(timing.get("step_s"), timing.get("checkpoint_s"))
        deadline.seed_estimates(None, estimated_checkpoint_seconds(self.generator, self.discriminator))
        return self._loop(deadline, self.stop, total, tcfg)

    def _outcome(self, code: int, message: str) -> Outcome:
        return Outcome(code, message, epoch=self.pos.epoch, step=self.pos.step, total_steps=self.total_steps)

    def _loop(self, deadline: Deadline, stop: StopRequest, total: int, tcfg: dict[str, Any]) -> Outcome:
        if self.pos.step >= total:
            return self._outcome(EXIT_FINISHED, f"already finished ({self.pos.step} steps); raise train.epochs or --max-steps to train longer")
        images_per_step = tcfg["batch_size"] * self.dist.world_size
        running = RunningLosses()
        log_t0, log_step0 = time.time(), self.pos.step
        self.generator.train()
        self.discriminator.train()
        self.sampler.set_epoch(self.pos.epoch, self.pos.epoch_step)
        batches = iter(self.loader)
        while self.pos.step < total:
            # Step boundary: the only place we stop, so a checkpoint is always a whole step.
            want_stop = stop.requested or deadline.must_stop()
            if any_rank(want_stop, self.dist, self.device):
                reason = (f"received {stop.signal_name}" if stop.requested else
                          f"time budget: {deadline.remaining():.0f} s left, next step + checkpoint need "
                          f"~{deadline.step_estimate + deadline.checkpoint_estimate + deadline.margin:.0f} s"
                          if deadline.must_stop() else "another process was told to stop")
                failure = self._check_finite(running)
                if failure:
                    return failure
                self.save(deadline)
                return self._outcome(EXIT_STOPPED, f"stopped early ({reason}) with a checkpoint at step {self.pos.step}; run again to continue")
            t0 = time.time()
            try:
                batch = next(batches)
            except StopIteration:  # the epoch is over
                self._end_epoch()
                batches = iter(self.loader)
                continue
            losses = self.train_step(batch)
            running.add(losses)
            self.pos.step += 1
            self.pos.epoch_step += 1

            done = self.pos.step >= total
            if self.pos.step % tcfg["log_every_steps"] == 0 or done:
                failure = self._log_progress(running, log_t0, log_step0, images_per_step, total)
                if failure:
                    return failure
                log_t0, log_step0 = time.time(), self.pos.step
            if self.pos.epoch_step >= self.steps_per_epoch and not done:
                self._end_epoch()
                batches = iter(self.loader)
            # Logging and the epoch's sample picture count as step time: they too must fit.
            deadline.record_step(time.time() - t0)
            if self.pos.step % tcfg["checkpoint_every_steps"] == 0 and not done:
                failure = self._check_finite(running)
                if failure:
                    return failure
                self.save(deadline)
        failure = self._check_finite(running)
        if failure:
            return failure
        if self.pos.epoch_step >= self.steps_per_epoch:
            self._end_epoch()
        else:
            self.write_samples(self.pos.epoch + 1)
        self.save(deadline)
        return self._outcome(EXIT_FINISHED, f"finished {self.pos.step} steps ({self.pos.epoch} full epochs) in {self.run_dir}")

    def _end_epoch(self) -> None:
        self.write_samples(self.pos.epoch + 1)
        self.pos.epoch += 1
        self.pos.epoch_step = 0
        self.sampler.set_epoch(self.pos.epoch, 0)

    def _nan_outcome(self, values: dict[str, float]) -> Outcome:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        last = find_checkpoints(self.run_dir)
        keep = f"last good checkpoint {last[0]}" if last else "no checkpoint was written"
        return self._outcome(EXIT_FAILED, f"non-finite values by step {self.pos.step} ({shown}); {keep}; "
                                          "lower optim.lr or check the data before resuming")

    def _check_finite(self, running: RunningLosses) -> Outcome | None:
        """Before anything is saved: are the losses since the last log and the weights finite?
        (An overflowing gradient can ruin the weights one step before the loss shows it.)"""
        values = running.peek()
        if not self._finite_everywhere(values):
            return self._nan_outcome(values)
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        weights_ok = bool(torch.stack([p.detach().isfinite().all() for p in params]).all())
        if any_rank(not weights_ok, self.dist, self.device):
            return self._nan_outcome({"weights": float("nan")})
        return None

    def _finite_everywhere(self, values: dict[str, float]) -> bool:
        # Collective: a rank that stopped alone would leave the others waiting forever.
        return not any_rank(not all_finite(values), self.dist, self.device)

    def _log_progress(self, running: RunningLosses, t0: float, step0: int, images_per_step: int, total: int) -> Outcome | None:
        values = running.pop()
        if not self._finite_everywhere(values):
            return self._nan_outcome(values)
        seconds = max(time.time() - t0, 1e-9)
        steps = self.pos.step - step0
        img_s = steps * images_per_step / seconds
        eta = (total - self.pos.step) * seconds / max(steps, 1)
        if self.dist.is_main:
            record = {"step": self.pos.step, "epoch": self.pos.epoch + 1, "time": time.time(), **values,
                      "img_per_s": img_s, "lr": self.opt_g.param_groups[0]["lr"]}
            append_metrics(self.run_dir, record)
            terms = " ".join(f"{k.replace('_l1', '')} {values[k]:.4f}" for k in ("global_l1", "hole_l1", "adversarial", "perceptual") if k in values)
            log.info("epoch %d/%d step %d/%d (%.1f%%) | %.1f img/s | ETA %s | G %.4f (%s) | D %.4f",
                     self.pos.epoch + 1, self.cfg["train"]["epochs"], self.pos.step, total, 100 * self.pos.step / total,
                     img_s, format_duration(eta), values["g_total"], terms, values["d_loss"])
        return None


def _finish(trainer: Trainer, outcome: Outcome) -> Outcome:
    """status.json and the one-line status (rank 0; stdout's last line)."""
    is_main = getattr(trainer, "dist", DistInfo()).is_main
    if is_main and trainer.run_dir.is_dir():
        write_status(trainer.run_dir, outcome)
    if is_main:
        for h in log.handlers:
            h.flush()
        if isinstance(getattr(trainer, "_file_handler", None), logging.Handler):
            trainer._file_handler.stream.write(outcome.line() + "\n")
        print(outcome.line(), flush=True)
    return outcome


def train(opts: TrainOptions) -> Outcome:
    """Set up, run, tear down; always leaves ``status.json`` and a status line behind.

    Bad input (FacefillError) is re-raised after that for the CLI to turn into exit 2; any other
    exception is a training failure: traceback on stderr, exit 1.
    """
    stop = StopRequest().install()  # before set-up: a signal during start-up must not kill us
    trainer = Trainer(opts, stop)
    saved_backends = backend_flags()
    try:
        try:
            trainer.setup()
            outcome = trainer.run()
        except FacefillError as exc:
            _finish(trainer, Outcome(EXIT_BAD_INPUT, str(exc), **_where(trainer)))
            raise
        except torch.cuda.OutOfMemoryError as exc:
            log.error("CUDA out of memory: %s", str(exc).splitlines()[0])
            outcome = Outcome(EXIT_FAILED, "CUDA out of memory: lower train.batch_size or data.size, or use a GPU with more memory", **_where(trainer))
        except Exception as exc:  # a bug or a crash: keep the traceback, report failure
            traceback.print_exc()
            handler = getattr(trainer, "_file_handler", None)
            if handler is not None and handler.stream is not None:
                handler.stream.write(traceback.format_exc())
            outcome = Outcome(EXIT_FAILED, f"crashed with {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", **_where(trainer))
        _finish(trainer, outcome)
        return outcome
    finally:
        stop.restore()
        shutdown(getattr(trainer, "dist", DistInfo()))
        restore_backend_flags(saved_backends)  # in-process callers (tests, notebooks) get theirs back
        for h in list(log.handlers):  # and no stale handlers if they train again
            log.removeHandler(h)
            if isinstance(h, logging.FileHandler):
                h.close()


def _where(trainer: Trainer) -> dict[str, int | None]:
    return {"epoch": trainer.pos.epoch, "step": trainer.pos.step, "total_steps": trainer.total_steps}
