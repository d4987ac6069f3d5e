"""The submit command's options and their resolution into one :class:`JobSpec`.

Everything an executor needs is decided here, once, from the command line plus the site
profile, so PBS, SLURM and local runs start the very same trainer command.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from inpaint.atomic import write_json
from inpaint.errors import ConfigError, DataError
from jobs.paths import SPEC, under
from jobs.profiles import load_profile
from jobs.walltime import format_walltime, parse_walltime, trainer_time_limit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("1", "2", "3", "smoke")
EXECUTORS = ("pbs", "slurm", "local")
LOCAL_DEFAULT_WALLTIME = "24:00:00"
MEM_RE = re.compile(r"^\d+(\.\d+)?[kmgt]?b$", re.IGNORECASE)


@dataclass
class JobSpec:
    """A resolved submission; saved as ``run_dir/jobs/spec.json``."""

    run_dir: str
    config: str
    data: str
    executor: str
    name: str
    walltime_s: int
    time_limit_s: int
    max_resubmits: int
    then_evaluate: bool = False
    chain: int = 0
    queue: str | None = None
    ncpus: int = 1
    ngpus: int = 0
    nodes: int = 1
    mem: str | None = None
    scratch: str | None = None
    gpu_cap: str | None = None
    image: str | None = None
    directives: list[str] = field(default_factory=list)
    train_args: list[str] = field(default_factory=list)
    trainer_module: str = "inpaint.train"
    python: str = "python"
    project_root: str = str(PROJECT_ROOT)
    profile: dict = field(default_factory=dict)

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_s)

    def trainer_command(self, data: str | None = None) -> list[str]:
        """The trainer CLI (contract): the one thing every executor runs."""
        return [self.python, "-m", self.trainer_module, "--config", self.config,
                "--data", data or self.data, "--run-dir", self.run_dir,
                "--time-limit", str(self.time_limit_s), *self.train_args]

    def save(self) -> Path:
        return write_json(under(self.run_dir, SPEC), asdict(self), indent=1, sort_keys=True)

    @classmethod
    def load(cls, run_dir: Path | str) -> "JobSpec":
        path = under(run_dir, SPEC)
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no submission recorded here; is {run_dir} a run dir made by jobs.submit?") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); submit again with jobs.submit") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jobs.submit",
        description="Carry a facefill training run to the end across as many batch jobs as it takes.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", choices=MODELS, help="packaged config inpaint/configs/model<N>.yaml (or smoke)")
    what.add_argument("--config", help="a config YAML file instead of --model")
    p.add_argument("--data", help="packed shards folder (default: data/shards/64 for smoke, else data/shards/128)")
    p.add_argument("--run-dir", help="run dir on persistent storage (default: runs/model<N>)")
    p.add_argument("--executor", choices=EXECUTORS, help="default: pbs when qsub is on PATH (or --queue is given with --dry-run), else local")
    p.add_argument("--profile", help="site profile: metacentrum, generic-pbs or a YAML file (default: $FACEFILL_PROFILE or detected)")
    p.add_argument("--queue", help="PBS queue / SLURM partition (default: the profile's)")
    p.add_argument("--walltime", help="limit of ONE part, HH:MM:SS (default: the queue's limit; local 24:00:00)")
    p.add_argument("--ncpus", type=int)
    p.add_argument("--ngpus", type=int, help="GPUs per node; >1 launches torchrun --nproc-per-node")
    p.add_argument("--nodes", type=int, default=1, help="nodes; >1 starts one torchrun per node")
    p.add_argument("--mem", help="memory per node, e.g. 32gb")
    p.add_argument("--scratch", help="scratch request, e.g. scratch_local=20gb ('none' for no scratch)")
    p.add_argument("--gpu-cap", help="PBS gpu_cap, e.g. compute_70")
    p.add_argument("--image", help="Singularity image (default: the profile's NGC PyTorch image)")
    p.add_argument("--container", choices=("singularity", "none"), default=None,
                   help="'none' runs the host Python (default: singularity on PBS, none elsewhere)")
    p.add_argument("--max-resubmits", type=int, default=20, help="parts after the first (default: %(default)s)")
    p.add_argument("--chain", type=int, default=0, metavar="K",
                   help="pre-submit K parts linked with -W depend=afterany instead of self-resubmission")
    p.add_argument("--then-evaluate", action="store_true", help="submit the evaluation when training finishes")
    p.add_argument("--pbs-directive", action="append", default=[], metavar="'-X VALUE'",
                   help="extra '#PBS' directive (repeatable), placed before the generated ones")
    p.add_argument("--name", help="job name (default: ff-<run dir name>)")
    p.add_argument("--max-steps", type=int, help="passed to the trainer")
    p.add_argument("--device", choices=("cpu", "cuda"), help="passed to the trainer (default: cuda when GPUs are requested)")
    p.add_argument("--set", action="append", default=[], metavar="section.key=value", help="config override for the trainer")
    p.add_argument("--trainer-module", default="inpaint.train", help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="print what would be submitted; submit nothing")
    p.add_argument("--estimate", action="store_true", help="print the expected number of parts and walltime")
    p.add_argument("--img-per-s", type=float, help="throughput for --estimate before the run has measured its own")
    p.add_argument("--no-wait", action="store_true", help="local: return at once, the chain runs in the background")
    p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    return p


def default_executor() -> str:
    return "pbs" if shutil.which("qsub") else "local"


def choose_executor(args: argparse.Namespace) -> str:
    """``--executor``, else PBS when ``qsub`` is on PATH, else local — except that ``--queue`` asks
    for a scheduler: without one on PATH, ``--dry-run`` shows the PBS script and anything else is
    an error, never a full training run started quietly on a login node."""
    if args.executor:
        return args.executor
    executor = default_executor()
    if executor == "local" and args.queue:
        if args.dry_run or args.estimate:
            return "pbs"
        raise ConfigError(f"--queue {args.queue} needs a scheduler, but qsub is not on PATH: submit from a PBS "
                          "front-end, add --executor slurm for a SLURM partition, or drop --queue to train "
                          "here with the local executor")
    return executor


def _config_arg(args: argparse.Namespace) -> tuple[str, str]:
    """(value for the trainer's --config, short name for defaults)."""
    if args.config:
        path = Path(args.config).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{args.config}: config file not found; pass an existing YAML or --model 1|2|3|smoke")
        return str(path), path.stem
    model = args.model or "2"
    name = "smoke" if model == "smoke" else f"model{model}"
    return name, name


def _check_data(data: Path) -> None:
    if not data.is_dir():
        raise DataError(f"{data}: data folder not found; pack shards with `python -m data_prep.pack --out {data}` or pass --data")
    if not (data / "index.json").is_file():
        raise DataError(f"{data}/index.json missing: {data} is not a packed shards folder; run python -m data_prep.pack")


def _job_name(run_dir: Path, given: str | None) -> str:
    name = given or f"ff-{run_dir.name}"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if not name[0].isalpha():
        name = "ff" + name
    return name[:15]  # PBS Pro accepts longer names, but qstat's table and older servers cut at 15


def resolve(args: argparse.Namespace, check_paths: bool = True) -> JobSpec:
    """Turn parsed options into a :class:`JobSpec`, raising a one-line error for bad input."""
    executor = choose_executor(args)
    config, short = _config_arg(args)
    run_dir = Path(args.run_dir or f"runs/{short}").expanduser().resolve()
    data = Path(args.data or ("data/shards/64" if short == "smoke" else "data/shards/128")).expanduser().resolve()
    if check_paths:
        _check_data(data)
    if args.max_resubmits < 0:
        raise ConfigError(f"--max-resubmits {args.max_resubmits} must be 0 or more")
    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes} must be 1 or more")
    if args.chain < 0 or args.chain == 1:
        raise ConfigError(f"--chain {args.chain}: pre-submit at least 2 parts, or leave it out for self-resubmission")
    if args.chain and executor != "pbs":
        raise ConfigError("--chain needs --executor pbs (other executors resubmit themselves)")
    if args.nodes > 1 and executor == "local":
        raise ConfigError("--nodes > 1 needs a scheduler: use --executor pbs or slurm")

    profile: dict[str, Any] = load_profile(args.profile) if executor == "pbs" else {}
    res = dict(profile.get("resources") or {})
    queue = args.queue
    if executor == "pbs":
        queue = queue or profile["default_queue"]
        if queue not in profile["queues"]:
            raise ConfigError(f"unknown queue {queue!r} for profile {profile['name']}: use one of "
                              f"{sorted(profile['queues'])} (or add it to a --profile YAML)")
        limit_s = parse_walltime(profile["queues"][queue]["max_walltime"])
        walltime_s = parse_walltime(args.walltime) if args.walltime else limit_s
        if walltime_s > limit_s:
            raise ConfigError(f"--walltime {format_walltime(walltime_s)} exceeds queue {queue}'s limit "
                              f"{format_walltime(limit_s)}: lower it or use a longer queue (e.g. gpu_long)")
        margin_s = parse_walltime(profile.get("safety_margin", "00:15:00"))
    else:
        walltime_s = parse_walltime(args.walltime or LOCAL_DEFAULT_WALLTIME)
        margin_s = 120 if executor == "local" else 900

    ngpus = args.ngpus if args.ngpus is not None else (int(res.get("ngpus") or 0) if executor == "pbs" else 0)
    ncpus = args.ncpus if args.ncpus is not None else int(res.get("ncpus") or max(1, ngpus * 4))
    mem = args.mem or res.get("mem")
    if mem and not MEM_RE.match(str(mem)):
        raise ConfigError(f"--mem {mem!r} is not a PBS size: write e.g. 32gb or 500mb")
    scratch = args.scratch if args.scratch is not None else res.get("scratch")
    if scratch in ("none", ""):
        scratch = None
    if scratch and "=" not in scratch:
        raise ConfigError(f"--scratch {scratch!r}: write the resource and size, e.g. scratch_local=20gb")
    gpu_cap = args.gpu_cap or res.get("gpu_cap")

    container = args.container or ("singularity" if executor == "pbs" else "none")
    image = None
    if container == "singularity":
        image = args.image or (profile.get("container") or {}).get("image")
        if not image:
            raise ConfigError("no Singularity image: pass --image FILE.sif, set container.image in the profile, "
                              "or use --container none")
        if check_paths and not image.startswith(("docker://", "library://", "oras://")) and not Path(image).exists():
            raise DataError(f"{image}: Singularity image not found; build it (containers/README.md), "
                            "pass --image, or use --container none")
    elif args.image:
        raise ConfigError("--image given with --container none: drop one of them")

    train_args: list[str] = []
    if args.max_steps is not None:
        train_args += ["--max-steps", str(args.max_steps)]
    device = args.device or ("cuda" if ngpus > 0 else None)
    if device:
        train_args += ["--device", device]
    for item in args.set:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: write section.key=value, e.g. train.batch_size=8")
        train_args += ["--set", item]
    if args.force:
        train_args += ["--force"]

    python = "python" if image else sys.executable
    return JobSpec(
        run_dir=str(run_dir), config=config, data=str(data), executor=executor,
        name=_job_name(run_dir, args.name), walltime_s=walltime_s,
        time_limit_s=trainer_time_limit(walltime_s, margin_s), max_resubmits=args.max_resubmits,
        then_evaluate=args.then_evaluate, chain=args.chain, queue=queue, ncpus=ncpus, ngpus=ngpus,
        nodes=args.nodes, mem=mem, scratch=scratch, gpu_cap=gpu_cap, image=image,
        directives=[*(profile.get("directives") or []), *args.pbs_directive], train_args=train_args,
        trainer_module=args.trainer_module, python=python, profile=profile,
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)
