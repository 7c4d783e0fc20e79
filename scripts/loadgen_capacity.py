"""How much load meekbench's serving client can generate on this machine, against a stand-in server that
answers at once (tests/fake_openai_server.py, in its own process on 127.0.0.1): for each offered rate,
the rate achieved, how late requests left against their schedule, and the client's own time per token.
The load generator is not the bottleneck of a point whose rate is well below what it sustains here.

    .venv/bin/python scripts/loadgen_capacity.py [--rates 25,50,100,200] [--requests 400] [--tokens 32]
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.engines.server import ServerProcess, free_port  # noqa: E402
from harness.measure.serving import Prompt, run_level  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="50,100,200,400,800")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    port = free_port()
    log = Path("/tmp") / f"meekbench-fake-server-{port}.log"
    prompts = [Prompt("a prompt", 2, args.tokens)]
    print(f"# load generator capacity: {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} logical cores, Python {platform.python_version()}")
    print("| offered req/s | scheduled (this seeded sample) | sent at | completed | send lag p50 ms | send lag p99 ms | "
          "client ms/token | output tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    with ServerProcess([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), str(port)], port, log, 30) as url:
        for rate in (float(r) for r in args.rates.split(",")):
            plan = SimpleNamespace(kind="server", burstiness=1.0, min_requests=args.requests, min_duration_s=0.0,
                                   max_duration_s=120.0, warmup_requests=5, request_timeout_s=30.0,
                                   bootstrap_resamples=200, seed=0)
            r = run_level(url, "fake", prompts, "server", rate, plan)
            print(f"| {rate:g} | {r.scheduled_rate:.1f} | {r.achieved_send_rate:.1f} | {r.completed}/{len(r.requests)} | "
                  f"{r.send_lag_ms.median:.2f} | {r.send_lag_ms.p99:.2f} | {r.client_ms_per_token:.4f} | "
                  f"{r.output_token_throughput:.0f} |")


if __name__ == "__main__":
    main()
