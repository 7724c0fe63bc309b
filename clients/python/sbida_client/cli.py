"""Command line: python3 -m sbida_client [--url URL] [--token T] COMMAND ...

Commands print JSON on stdout (samples: a .npy file with --out). Errors print one
line on stderr and exit 1 (daemon problem or unreachable) or 2 (bad arguments).
"""
import argparse
import json
import os
import sys
from typing import Any, List, Optional

from .client import Client
from .errors import SbidaError


def _load_json_arg(text: str, what: str) -> Any:
    """A JSON value given inline, as @FILE (JSON, or .npy with numpy) or - (stdin)."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        path = text[1:]
        if path.endswith(".npy"):
            try:
                import numpy as np
            except ImportError:
                raise ValueError("%s: reading %s needs numpy" % (what, path))
            return np.load(path, allow_pickle=False)
        with open(path) as f:
            text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError("%s is not valid JSON: %s" % (what, e))


def _noise(text: str) -> Any:
    v = _load_json_arg(text, "--noise-std")
    if not isinstance(v, (int, float, list)):
        raise ValueError("--noise-std must be a number or a JSON array of numbers")
    return v


def _print(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m sbida_client",
                                description="Client of the sbida assimilation daemon (API v1).")
    p.add_argument("--url", default=os.environ.get("SBIDA_URL", "http://127.0.0.1:8080"),
                   help="daemon URL (env SBIDA_URL, default %(default)s)")
    p.add_argument("--token", default=os.environ.get("SBIDA_TOKEN"),
                   help="bearer token (env SBIDA_TOKEN)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    p.add_argument("--retry-for", type=float, default=60.0,
                   help="seconds to retry an unreachable or busy daemon (default 60, as the library)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("submit", help="submit an assimilation; prints the job",
                       description="Submit an assimilation job and print it as JSON.")
    s.add_argument("--estimator", required=True, help="estimator name (see the estimators command)")
    s.add_argument("--time-index", type=int, required=True, help="index t of the window's last observation")
    s.add_argument("--observations", required=True,
                   help="W rows oldest first: JSON inline, @FILE (.json or .npy) or - for stdin; "
                        "null/NaN marks a missing value")
    s.add_argument("--operator", help='observation operator JSON, e.g. \'{"type":"subsample","stride":2}\'')
    s.add_argument("--noise-std", help="noise std: a number or a JSON array (one per observation)")
    s.add_argument("--n-samples", type=int, help="number of posterior samples (daemon default 100)")
    s.add_argument("--seed", type=int, help="random seed (the daemon picks and stores one if absent)")
    s.add_argument("--params", help="estimator settings as JSON, e.g. '{\"inflation\":1.05}'")
    s.add_argument("--return", dest="return_", metavar="JSON",
                   help='what the result carries besides mean/std, e.g. \'{"quantiles":[0.1,0.9],"window":true}\'')
    s.add_argument("--wait", type=float, default=0.0,
                   help="wait up to this many seconds for the result (0: return at once)")

    g = sub.add_parser("get", help="print a job", description="Print a job as JSON.")
    g.add_argument("id")

    w = sub.add_parser("wait", help="wait for a job to finish and print it",
                       description="Long-poll until the job ends; print it. Exit 1 if it failed or timed out.")
    w.add_argument("id")
    w.add_argument("--timeout", dest="wait_timeout", type=float, default=300.0, help="seconds (default 300)")

    sm = sub.add_parser("samples", help="fetch the samples of a job",
                        description="Fetch the samples (float32 [n_samples, dim]): to a .npy file with --out, "
                                    "else as JSON on stdout.")
    sm.add_argument("id")
    sm.add_argument("--out", help="write the .npy file here")

    e = sub.add_parser("estimators", help="list estimators, or show one",
                       description="List the estimators (name, kind, preset, window, operator); "
                                   "with a NAME print its full metadata.")
    e.add_argument("name", nargs="?")

    c = sub.add_parser("cancel", help="cancel a job", description="Cancel a job and print it.")
    c.add_argument("id")

    ls = sub.add_parser("list", help="list jobs, newest first", description="List jobs, newest first, as JSON lines.")
    ls.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    ls.add_argument("--estimator")
    ls.add_argument("--limit", type=int, default=20, help="at most this many jobs (default 20)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    try:
        client = Client(a.url, token=a.token, timeout=a.timeout, retry_for=a.retry_for)
    except ValueError as e:
        p.error(str(e))
    try:
        if a.command == "submit":
            try:
                obs = _load_json_arg(a.observations, "--observations")
                if not hasattr(obs, "tolist") and not isinstance(obs, list):
                    raise ValueError("--observations must be a list of rows")
                op = _load_json_arg(a.operator, "--operator") if a.operator else None
                noise = _noise(a.noise_std) if a.noise_std else None
                params = _load_json_arg(a.params, "--params") if a.params else None
                ret = _load_json_arg(a.return_, "--return") if a.return_ else None
            except (ValueError, OSError) as ex:
                p.error(str(ex))
            try:
                job = client.submit(a.estimator, obs, a.time_index, operator=op, noise_std=noise,
                                    n_samples=a.n_samples, seed=a.seed, params=params, return_=ret, wait=a.wait)
            except ValueError as ex:  # the observations' shape, found before anything is sent
                p.error(str(ex))
            _print(job.raw)
        elif a.command == "get":
            _print(client.get(a.id).raw)
        elif a.command == "wait":
            job = client.wait(a.id, timeout=a.wait_timeout)
            _print(job.raw)
            if job.state != "succeeded":
                print("error: job %s %s" % (job.id, job.state), file=sys.stderr)
                return 1
        elif a.command == "samples":
            if a.out:
                data = client.samples_npy(a.id)
                with open(a.out, "wb") as f:
                    f.write(data)
                print("wrote %s (%d bytes)" % (a.out, len(data)), file=sys.stderr)
            else:
                _print(client._json("GET", "/v1/assimilations/%s/samples" % a.id))
        elif a.command == "estimators":
            if a.name:
                _print(client.estimator(a.name))
            else:
                for e in client.estimators():
                    print("%-36s %-16s %-11s window=%-4s operator=%s" % (
                        e["name"], e["kind"], e["preset"], e["window"],
                        e["operator"] if isinstance(e["operator"], str) else json.dumps(e["operator"])))
        elif a.command == "cancel":
            _print(client.cancel(a.id).raw)
        elif a.command == "list":
            for job in client.list(state=a.state, estimator=a.estimator, limit=a.limit):
                print(json.dumps({k: job.get(k) for k in ("id", "state", "estimator", "time_index", "created_at")}))
    except SbidaError as ex:
        print("error: %s" % ex, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
