"""The submit command's options and their resolution into one :class:`~jobs.spec.JobSpec`.

Everything an executor needs is decided here, once, from the command line plus the site
profile, so PBS, SLURM and local runs start the very same trainer command. :func:`resolve` is a
sequence of small steps: check the text of every value, look up the site profile, set the
walltime and its margin, the resources, the container, the trainer's arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inpaint.core.cli import OneLineParser
from inpaint.core.errors import ConfigError, DataError, FacefillError
from inpaint.core.shard_format import INDEX_NAME
from jobs.profiles import SiteProfile
from jobs.scheduler import Scheduler, default_name, job_name, names, scheduler, unsafe_directive_text
from jobs.spec import JobSpec
from jobs.walltime import MIN_QUEUED_WALLTIME_S, evaluation_walltime, format_walltime, parse_walltime, part_time_limit

MODELS = ("1", "2", "3", "smoke")
MEM_RE = re.compile(r"^\d+(\.\d+)?[kmgt]?b$", re.IGNORECASE)
# What each value may look like where it lands in a #PBS / #SBATCH directive.
DIRECTIVE_FORMS = {
    "--queue": (re.compile(r"^[A-Za-z0-9_.@-]+$"), "a queue name, e.g. gpu_long"),
    "--gpu-cap": (re.compile(r"^[A-Za-z0-9_.,]+$"), "e.g. compute_70"),
    "--scratch": (re.compile(r"^[A-Za-z_]+=\d+[kmgt]?b$", re.IGNORECASE), "the resource and size, e.g. scratch_local=20gb"),
    "--pbs-directive": (re.compile(r"^-[A-Za-z]( .*)?$"), "an option and its value, e.g. '-m ae'"),
    "--mem": (MEM_RE, "a PBS size, e.g. 32gb or 500mb"),
}
PLACEHOLDER_IMAGE = "MISSING-IMAGE.sif"  # a dry run without an image shows where it goes
IMAGE_UNSAFE = r"[\s&|<>]"  # an image is one path or URI: never a second command
CONTAINER_PROGRAMS = ("singularity", "apptainer")  # what runs --image; Apptainer also installs "singularity"


def model_name(text: str) -> str:
    """``--model`` takes what ``inpaint.train --config`` takes: ``2`` and ``model2`` alike."""
    short = text[len("model") :] if text.startswith("model") else text
    if short not in MODELS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from 1, 2, 3, smoke or model1..model3)")
    return "smoke" if short == "smoke" else f"model{short}"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m jobs.submit",
        description="Carry a facefill training run to the end across as many batch jobs as it takes.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--model",
        type=model_name,
        metavar="{1,2,3,smoke}",
        help="packaged config: 1, 2, 3 or smoke (model2 works too, as for inpaint.train --config)",
    )
    what.add_argument("--config", help="a config YAML file instead of --model")
    p.add_argument("--data", help="packed shards folder (default: data/shards/64 for smoke, else data/shards/128)")
    p.add_argument("--run-dir", help="run dir on persistent storage (default: runs/model<N>)")
    p.add_argument(
        "--executor", choices=names(), help="default: pbs when qsub is on PATH (or --queue is given with --dry-run), else local"
    )
    p.add_argument(
        "--profile",
        help="site profile: metacentrum, generic-pbs, generic-slurm or a YAML file "
        "(default on PBS: $FACEFILL_PROFILE or detected; on SLURM: generic-slurm)",
    )
    p.add_argument("--queue", help="PBS queue / SLURM partition (default: the profile's)")
    p.add_argument(
        "--walltime",
        help="limit of ONE part, HH:MM:SS (default: the queue's limit; local 24:00:00); "
        f"at least {format_walltime(MIN_QUEUED_WALLTIME_S)} on PBS and SLURM",
    )
    p.add_argument(
        "--allow-short-walltime",
        action="store_true",
        help=f"accept a PBS/SLURM walltime under {format_walltime(MIN_QUEUED_WALLTIME_S)} (debug queues, tests)",
    )
    p.add_argument("--ncpus", type=int, help="CPU cores per node (default: the profile's, else 4 per GPU)")
    p.add_argument("--ngpus", type=int, help="GPUs per node; >1 launches torchrun --nproc-per-node")
    p.add_argument("--nodes", type=int, default=1, help="nodes; >1 starts one torchrun per node")
    p.add_argument("--mem", help="memory per node, e.g. 32gb")
    p.add_argument("--scratch", help="scratch request, e.g. scratch_local=20gb ('none' for no scratch)")
    p.add_argument("--gpu-cap", help="PBS gpu_cap, e.g. compute_70")
    p.add_argument(
        "--image",
        help="Singularity/Apptainer image the trainer runs in, with every executor "
        "(default on PBS: the profile's NGC PyTorch image)",
    )
    p.add_argument(
        "--container",
        choices=("singularity", "none"),
        default=None,
        help="'none' runs the host Python (default: singularity on PBS or with --image, none elsewhere)",
    )
    p.add_argument("--max-resubmits", type=int, default=20, help="parts after the first (default: %(default)s)")
    p.add_argument(
        "--chain",
        type=int,
        default=0,
        metavar="K",
        help="pre-submit K parts linked with -W depend=afterany instead of self-resubmission",
    )
    p.add_argument(
        "--then-evaluate",
        action="store_true",
        help="submit the evaluation when training finishes (it scores the classical fills beside the model: "
        "Navier-Stokes where the node has OpenCV, biharmonic where it has scikit-image)",
    )
    p.add_argument(
        "--pbs-directive",
        action="append",
        default=[],
        metavar="'-X VALUE'",
        help="extra '#PBS' directive (repeatable), placed before the generated ones",
    )
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
    p.add_argument(
        "--allow-world-size-change",
        action="store_true",
        help="let the trainer resume a checkpoint written by another nodes x processes count "
        "(it continues with a different batch order); without it such a resume is refused",
    )
    return p


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --- 1. validation: every value that reaches a directive, the script or spec.json -------------


def check_text(option: str, value: str | None) -> None:
    """Refuse text that could leave its line in a job script: control characters, ``$(``,
    backticks, ``;`` (the rule the submitit PBS plugin applies too), then the directive's form."""
    if value is None:
        return
    problem = unsafe_directive_text(str(value))
    if problem:
        raise ConfigError(f"{option} {str(value)!r}: contains {problem}, which could run as shell in the job script; remove it")
    form = DIRECTIVE_FORMS.get(option)
    if form and not form[0].match(str(value)):
        raise ConfigError(f"{option} {str(value)!r}: write {form[1]}")


def validate(args: argparse.Namespace, executor: str) -> None:
    """Numbers in range and safe text, before anything is looked up or written."""
    sched = scheduler(executor)
    if args.max_resubmits < 0:
        raise ConfigError(f"--max-resubmits {args.max_resubmits} must be 0 or more")
    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes} must be 1 or more")
    if args.chain < 0 or args.chain == 1:
        raise ConfigError(f"--chain {args.chain}: pre-submit at least 2 parts, or leave it out for self-resubmission")
    if args.chain and not sched.presubmits_chain:
        able = " or ".join(n for n in names() if scheduler(n).presubmits_chain)
        raise ConfigError(f"--chain needs --executor {able} (other executors resubmit themselves)")
    if args.nodes > 1 and not sched.multi_node:
        able = " or ".join(n for n in names() if scheduler(n).multi_node)
        raise ConfigError(f"--nodes > 1 needs a scheduler: use --executor {able}")
    for option in (
        "--run-dir",
        "--data",
        "--config",
        "--image",
        "--queue",
        "--walltime",
        "--mem",
        "--gpu-cap",
        "--name",
        "--profile",
        "--trainer-module",
    ):
        check_text(option, getattr(args, option[2:].replace("-", "_")))
    if args.scratch not in (None, "none", ""):
        check_text("--scratch", args.scratch)
    for directive in args.pbs_directive:
        check_text("--pbs-directive", directive.strip())
    for item in args.set:
        check_text("--set", item)
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: write section.key=value, e.g. train.batch_size=8")
    if args.run_dir:
        sched.check_run_dir(args.run_dir)


def default_executor() -> str:
    return default_name()


def choose_executor(args: argparse.Namespace) -> str:
    """``--executor``, else PBS when ``qsub`` is on PATH, else local — except that ``--queue`` asks
    for a scheduler: without one on PATH, ``--dry-run`` shows the PBS script and anything else is
    an error, never a full training run started quietly on a login node."""
    if args.executor:
        return args.executor
    executor = default_executor()
    if not scheduler(executor).queued and args.queue:
        if args.dry_run or args.estimate:
            return next(name for name in names() if scheduler(name).queued)
        raise ConfigError(
            f"--queue {args.queue} needs a scheduler, but qsub is not on PATH: submit from a PBS "
            "front-end, add --executor slurm for a SLURM partition, or drop --queue to train "
            "here with the local executor"
        )
    return executor


def _config_arg(args: argparse.Namespace) -> tuple[str, str]:
    """(value for the trainer's --config, short name for defaults)."""
    if args.config:
        path = Path(args.config).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{args.config}: config file not found; pass an existing YAML or --model 1|2|3|smoke")
        return str(path), path.stem
    name = args.model or "model2"
    return name, name


def _job_name(run_dir: Path, given: str | None) -> str:
    return job_name(given or f"ff-{run_dir.name}", "ff")


# --- 2. the site: profile, queue, walltime and its margin ------------------------------------


def site_profile(args: argparse.Namespace, sched: Scheduler) -> SiteProfile | None:
    """The scheduler's site profile (None where none applies), its directives checked."""
    profile = sched.profile(args.profile)
    for value in profile.directives if profile else ():
        check_text("--pbs-directive", str(value).strip())
    return profile


def check_walltime(args: argparse.Namespace, sched: Scheduler, walltime_s: int) -> None:
    """A queued part shorter than the minimum waits in the queue, spends its time starting up and
    stops before its first checkpoint: the chain would stall. A local part waits for nothing, so
    any walltime is its user's choice."""
    if sched.queued and walltime_s < MIN_QUEUED_WALLTIME_S and not args.allow_short_walltime:
        raise ConfigError(
            f"--walltime {format_walltime(walltime_s)} is shorter than "
            f"{format_walltime(MIN_QUEUED_WALLTIME_S)}, too short for a queued part to start and write "
            "a checkpoint: raise it (or add --allow-short-walltime for a debug queue)"
        )


def queue_and_walltime(args: argparse.Namespace, sched: Scheduler, profile: SiteProfile | None) -> tuple[str | None, int, int]:
    """(queue, walltime of one part, the margin the trainer leaves before it) in seconds. A
    profile that lists queues knows their limits: the queue must be one of them, the walltime
    defaults to its limit and may not exceed it."""
    site = sched.defaults(profile)
    queue = args.queue or site.queue
    if not site.queues:
        walltime_s = parse_walltime(args.walltime) if args.walltime else site.walltime_s
        check_walltime(args, sched, walltime_s)
        return queue, walltime_s, site.margin_s
    check_text("--queue", queue)
    if queue not in site.queues:
        raise ConfigError(
            f"--queue {queue!r} is unknown to profile {profile and profile.name}: use one of "
            f"{sorted(site.queues)} (or add it to a --profile YAML)"
        )
    limit_s = site.queues[queue]
    walltime_s = parse_walltime(args.walltime) if args.walltime else limit_s
    if walltime_s > limit_s:
        raise ConfigError(
            f"--walltime {format_walltime(walltime_s)} exceeds queue {queue}'s limit "
            f"{format_walltime(limit_s)}: lower it or use a longer queue (e.g. gpu_long)"
        )
    check_walltime(args, sched, walltime_s)
    return queue, walltime_s, site.margin_s


def resources(args: argparse.Namespace, res: dict[str, Any]) -> dict[str, Any]:
    """ngpus, ncpus, mem, scratch, gpu_cap: the command line over the site's defaults ``res``."""
    ngpus = args.ngpus if args.ngpus is not None else int(res.get("ngpus") or 0)
    scratch = args.scratch if args.scratch is not None else res.get("scratch")
    out: dict[str, Any] = {
        "ngpus": ngpus,
        "ncpus": args.ncpus if args.ncpus is not None else int(res.get("ncpus") or max(1, ngpus * 4)),
        "mem": args.mem or res.get("mem"),
        "scratch": None if scratch in ("none", "") else scratch,
        "gpu_cap": args.gpu_cap or res.get("gpu_cap"),
    }
    for key in ("mem", "scratch", "gpu_cap"):
        check_text(f"--{key.replace('_', '-')}", out[key])
    return out


# --- 3. the container and the paths a real submit needs ---------------------------------------


def container_image(
    args: argparse.Namespace,
    sched: Scheduler,
    default_image: str | None,
    problem: Callable[[FacefillError], None],
    check_paths: bool,
) -> str | None:
    """The image every part runs the trainer in (all executors), or None for the host's Python.
    ``--image`` alone asks for a container; PBS uses one by default (the profile's)."""
    container = args.container or ("singularity" if sched.container_by_default or args.image else "none")
    if container != "singularity":
        if args.image:
            raise ConfigError("--image given with --container none: drop one of them")
        return None
    if check_paths and sched.checks_container_here and not any(shutil.which(name) for name in CONTAINER_PROGRAMS):
        problem(
            ConfigError(
                f"--container singularity: neither singularity nor apptainer is on PATH here, and "
                f"{sched.name} parts run the trainer with it; load its module or use --container none"
            )
        )
    image = args.image or default_image
    if not image:
        problem(
            ConfigError(
                "no Singularity image: pass --image FILE.sif, set container.image in the profile, or use --container none"
            )
        )
        return PLACEHOLDER_IMAGE
    check_text("--image", image)
    if re.search(IMAGE_UNSAFE, image):
        raise ConfigError(
            f"--image {image!r}: an image is one path or URI, without spaces or &, |, <, >; rename the file or pass its URI alone"
        )
    if check_paths and not image.startswith(("docker://", "library://", "oras://")) and not Path(image).exists():
        problem(
            DataError(
                f"{image}: Singularity image not found; build it (containers/README.md), pass --image, or use --container none"
            )
        )
    return image


def check_config(config: str, overrides: list[str]) -> Any:
    """Resolve the trainer's config here, with every ``--set``: a typo or a bad value is a one-line
    error now, not a job that waits in the queue for hours and then exits 2. (``inpaint.core.config``
    is torch-free; the ConfigError names the key and the file or override holding it.)"""
    from inpaint.core.config import load_config

    return load_config(config, list(overrides))


def check_data(data: Path, size: int, problem: Callable[[FacefillError], None]) -> None:
    """The trainer's first checks on its shards, made before anything is queued: the folder and
    its index, the image size the config trains at, and images in the train split. (The shard
    files themselves are read only by the trainer: a queued part may see them staged.)"""
    from inpaint.core.shard_format import read_index

    if not data.is_dir():
        problem(
            DataError(f"{data}: data folder not found; pack shards with `python -m data_prep.pack --out {data}` or pass --data")
        )
        return
    if not (data / INDEX_NAME).is_file():
        problem(DataError(f"{data}/index.json missing: {data} is not a packed shards folder; run python -m data_prep.pack"))
        return
    try:
        index = read_index(data)
    except DataError as exc:
        problem(exc)
        return
    if index["size"] != size:
        problem(
            DataError(
                f"--data {data}: shards are {index['size']} px but the config trains at data.size = {size}: "
                f"pass shards packed at {size} px (python -m data_prep.pack --size {size}) "
                f"or --set data.size={index['size']}"
            )
        )
    for kind in ("faces", "masks"):
        if not index["counts"][kind].get("train"):
            problem(
                DataError(
                    f"--data {data}: no training {kind} (its train split is empty, e.g. packed with "
                    "--all-test); pack shards with a train split"
                )
            )


# --- 4. what the trainer and the evaluation are given -----------------------------------------


def trainer_args(args: argparse.Namespace, ngpus: int) -> list[str]:
    out: list[str] = []
    if args.max_steps is not None:
        out += ["--max-steps", str(args.max_steps)]
    device = args.device or ("cuda" if ngpus > 0 else None)
    if device:
        out += ["--device", device]
    for item in args.set:
        out += ["--set", item]
    if args.force:
        out += ["--force"]
    if args.allow_world_size_change:
        out += ["--allow-world-size-change"]
    return out


#: The classical fills ``inpaint.evaluate`` scores by default, and the module each needs.
EVALUATION_BASELINES = {"navier-stokes": "cv2", "biharmonic": "skimage"}


def evaluation_baselines() -> list[str]:
    """The classical fills the evaluation part's walltime is sized for: those ``inpaint.evaluate``
    adds by itself (Navier–Stokes where OpenCV is importable, biharmonic where scikit-image is).
    Which are scored is decided on the node (no ``--baseline`` is passed: a node without a library
    scores fewer columns instead of failing); the libraries here (found, not imported: the job
    layer stays free of numpy and torch) are only the best guess for the size."""
    return [method for method, module in EVALUATION_BASELINES.items() if importlib.util.find_spec(module) is not None]


def evaluation_walltime_s(ngpus: int) -> int:
    """The evaluation part's walltime: the model and every default classical fill found here."""
    baselines = evaluation_baselines()
    return evaluation_walltime(ngpus, 1 + len(baselines), baselines)


def raise_problem(error: FacefillError) -> None:
    raise error


def resolve(
    args: argparse.Namespace, check_paths: bool = True, problem: Callable[[FacefillError], None] = raise_problem
) -> JobSpec:
    """Turn parsed options into a :class:`JobSpec`, raising a one-line error for bad input.

    ``problem`` receives what only a real submit must refuse (missing shards or image): a dry
    run passes a function that warns instead, so it works on any machine.
    """
    executor = choose_executor(args)
    validate(args, executor)
    config, short = _config_arg(args)
    cfg = check_config(config, args.set)
    run_dir = Path(args.run_dir or f"runs/{short}").expanduser().resolve()
    data = Path(args.data or ("data/shards/64" if short == "smoke" else "data/shards/128")).expanduser().resolve()
    for option, path in (("--run-dir", run_dir), ("--data", data)):
        check_text(option, str(path))  # the current folder is part of a relative path
    if check_paths:
        check_data(data, cfg.data.size, problem)
    sched = scheduler(executor)
    profile = site_profile(args, sched)
    site = sched.defaults(profile)
    queue, walltime_s, margin_s = queue_and_walltime(args, sched, profile)
    res = resources(args, site.resources)
    image = container_image(args, sched, site.image, problem, check_paths)
    return JobSpec(
        run_dir=str(run_dir),
        config=config,
        data=str(data),
        executor=executor,
        name=_job_name(run_dir, args.name),
        walltime_s=walltime_s,
        time_limit_s=part_time_limit(walltime_s, margin_s),
        max_resubmits=args.max_resubmits,
        then_evaluate=args.then_evaluate,
        eval_walltime_s=evaluation_walltime_s(res["ngpus"]) if args.then_evaluate else 0,
        chain=args.chain,
        queue=queue,
        nodes=args.nodes,
        image=image,
        **res,
        directives=(*site.directives, *args.pbs_directive),
        train_args=tuple(trainer_args(args, res["ngpus"])),
        trainer_module=args.trainer_module,
        python="python" if image else sys.executable,
        profile=profile,
    )
