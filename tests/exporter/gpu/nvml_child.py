"""The GPU collector in a child process over the fake libnvidia-ml (test helper).

pynvml dlopens ``libnvidia-ml.so.1`` once per process, and the loader reads
LD_LIBRARY_PATH only at process start, so each NVML scenario is its own process.
Usage: ``python -m tests.exporter.gpu.nvml_child '{"mode": "on", "node": "n", "socket": null}'``;
then one command per stdin line (``collect`` or ``close``), one JSON reply per stdout line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from exporter.collector import CycleContext, run_collector
from exporter.gpu import GpuSetupError, build_collector


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(options: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    try:
        kube_api = None
        if options.get("apiserver"):
            from tests.kube.client import api_client

            kube_api = api_client(options["apiserver"])
        collector = build_collector(mode=options["mode"], node_name=options.get("node", ""),
                                    pod_resources_socket=options.get("socket"),
                                    library_path=options.get("library_path"), dra=options.get("dra", "off"),
                                    kube_api=kube_api)
    except GpuSetupError as exc:
        emit({"setup_error": str(exc)})
        return
    emit({"collector": None if collector is None else collector.name})
    if collector is None:
        return
    loop = asyncio.get_running_loop()
    while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if command == "collect":
            ctx = CycleContext(now=time.monotonic())
            run = await run_collector(collector, ctx, timeout=options.get("timeout", 30.0))
            emit({"success": run.success,
                  "series": [[s.family, dict(s.labels), s.value] for s in run.series],
                  "pod_gpus": [[ns, pod, share] for (ns, pod), share in ctx.pod_gpus.items()]})
        elif command == "close":
            await collector.close()
            emit({"closed": True})
            return


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
