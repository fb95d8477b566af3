"""``python -m bench.peer [--quick] [--n N] [--configs prefork:2,threads:16,...]``

Prints one JSON object: every worker configuration's deliveries/s, the best one, the
peer's versions and the machine's description. Progress goes to stderr.
"""

from __future__ import annotations

import argparse

from bench import common
from bench.peer.runner import FULL_CONFIGS, FULL_N, QUICK_CONFIGS, QUICK_N, run_peer_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, two configs")
    parser.add_argument("--n", type=int, help=f"events per config (default {FULL_N})")
    parser.add_argument(
        "--configs",
        help="comma-separated pool:concurrency[:pf=N][:cma=S] (default: "
        + ",".join(FULL_CONFIGS)
        + ")",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the sweep, interleaved; medians count"
    )
    options = parser.parse_args()
    common.raise_on_termination_signals()
    if options.configs:
        configs = [text.strip() for text in options.configs.split(",") if text.strip()]
    else:
        configs = list(QUICK_CONFIGS if options.quick else FULL_CONFIGS)
    n = options.n or (QUICK_N if options.quick else FULL_N)
    result = run_peer_benchmark(n=n, configs=configs, rounds=options.rounds)
    result["quick"] = options.quick
    common.print_json(result)


if __name__ == "__main__":
    main()
