"""Where, how and when a result was made: the machine, the command, the time.

Checkpoints (``train.hardware``, ``train.command``), prepared data sets, evaluation summaries
and every benchmark's rows take these from here, so that one machine is described one way
and a recorded command can be typed again as it stands.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

# Environment variables that change how fast (not what) a command computes: a recorded command
# carries the ones that were set, so a speed figure can be reproduced.
SPEED_ENV = ("OMP_NUM_THREADS",)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, str]:
    """Where a number was measured: host, CPU model, threads, torch version, GPU if any."""
    info = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def hardware_string(device: torch.device | str | None = None, world: int = 1) -> str:
    """What ran it, in words (a model card's hardware): the GPU, or the CPU model and torch's
    thread count; ``world`` processes; the host and torch version."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        what = f"{world} x {torch.cuda.get_device_name(device)}"
    else:
        what = f"{cpu_model()}, {torch.get_num_threads()} torch threads"
        if world > 1:
            what = f"{world} x ({what})"
    return f"{what} on {platform.node()} (torch {torch.__version__})"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where the OS has none): how busy the
    machine was with other work."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_string(device: torch.device | str | None = None) -> str:
    """``hardware_string`` plus what a speed figure also depends on: the CPUs visible, the load
    average now (call it before the timing starts, to get the others' load) and Python."""
    return (
        f"{hardware_string(device)}; {os.cpu_count()} CPUs visible, load average "
        f"{load_average()}; Python {platform.python_version()}"
    )


def invocation(argv: Sequence[str] | None = None, *, speed_env: bool = False) -> str:
    """This process's command line as a person would type it again.

    ``python -m training train ...`` rather than the path of the package's ``__main__.py``,
    ``python -m benchmarks.bench_x`` for a module run, ``colorizer colorize ...`` for the
    console command. ``speed_env`` (for speed figures) prefixes the variables of SPEED_ENV
    that are set.
    """
    argv = list(sys.argv if argv is None else argv)
    main = Path(argv[0]) if argv else Path()
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main.name == "__main__.py":
        head = ["python", "-m", main.parent.name]
    elif spec is not None and spec.origin and Path(spec.origin) == main.absolute():
        # python -m pkg.module: argv[0] is the module's file
        head = ["python", "-m", spec.name]
    elif main.name and main.suffix != ".py" and not main.name.startswith("-"):
        head = [main.name]  # a console script such as `colorizer`
    else:
        head = ["python", *argv[:1]]
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in SPEED_ENV if speed_env and k in os.environ]
    return " ".join([*env, *(shlex.quote(a) for a in [*head, *argv[1:]])])


def utc_now() -> str:
    """The time now, UTC, to the second: ``2025-01-31T12:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
