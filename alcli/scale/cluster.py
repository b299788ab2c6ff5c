"""Connecting to Dask for `select`/`embed --scheduler`: `local[:N]` starts a LocalCluster of N worker
processes (one thread each, no dashboard, every socket on 127.0.0.1); anything else is the address of an
existing scheduler (tcp://HOST:PORT). Connection problems are one-line AlcliErrors naming --scheduler.
How long to wait for a scheduler: dask's `distributed.comm.timeouts.connect` (env
DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT, default 30s).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

from alcli.errors import AlcliError

SOURCE = "--scheduler"


def parse_scheduler(spec: str) -> tuple[str, int | None]:
    """'local' / 'local:N' -> ('local', N or None); an address -> (address, None)."""
    spec = spec.strip()
    match = re.fullmatch(r"local(?::(\d+))?", spec)
    if match:
        workers = int(match.group(1)) if match.group(1) else None
        if workers is not None and workers < 1:
            raise AlcliError(f"'{spec}': a local cluster needs at least 1 worker", SOURCE)
        return "local", workers
    if re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d+)?", spec) or re.fullmatch(r"[\w.\-]+:\d+", spec):
        return spec, None
    raise AlcliError(f"'{spec}' is neither local[:N] nor a scheduler address like tcp://HOST:PORT", SOURCE)


@contextlib.contextmanager
def connect(spec: str) -> Iterator[Any]:
    """A dask.distributed Client: a LocalCluster on 127.0.0.1 (processes, 1 thread each, no dashboard)
    for local[:N], else the scheduler at the address. Closed (and the local cluster stopped) on exit."""
    import os

    from dask.distributed import Client, LocalCluster

    address, workers = parse_scheduler(spec)
    for name in ("distributed", "distributed.nanny", "distributed.worker", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = None
    try:
        if address == "local":
            n = workers or max(1, min(os.cpu_count() or 1, 8))
            with warnings.catch_warnings():  # e.g. "port 8787 in use": the HTTP server moves, stderr stays clean
                warnings.simplefilter("ignore")
                cluster = LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=None,
                                       host="127.0.0.1", silence_logs=logging.CRITICAL)
            client = Client(cluster)
            with contextlib.suppress(Exception):  # all N, so the work is split N ways (fewer still work)
                client.wait_for_workers(n, timeout=WORKERS_WAIT)
        else:
            client = Client(address)  # waits distributed.comm.timeouts.connect (DASK_DISTRIBUTED__COMM__...)
    except (OSError, TimeoutError) as exc:
        raise AlcliError(f"cannot reach the Dask scheduler at {spec} ({short(exc)})", SOURCE) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


WORKERS_WAIT = 30.0  # seconds a cluster may take to show its first worker


def workers(client: Any) -> list[str]:
    """The cluster's workers, asked of the scheduler now (the client's cached `scheduler_info` can lag the
    workers' registration on a busy machine: seen as "no workers" in a busy test run). Waits up to
    WORKERS_WAIT seconds for a first worker; none then is a one-line error."""
    found = sorted(client.ncores())
    if not found:
        with contextlib.suppress(Exception):  # a timeout: reported just below
            client.wait_for_workers(1, timeout=WORKERS_WAIT)
        found = sorted(client.ncores())
    if not found:
        raise AlcliError(f"the Dask cluster has no workers (waited {WORKERS_WAIT:.0f} s)", SOURCE)
    return found


def short(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
