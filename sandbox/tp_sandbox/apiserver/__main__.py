"""`python -m tp_sandbox.apiserver --state-dir DIR --listen ADDR:PORT[@NETNS] ...`"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from tp_protocol.settings import get_settings

from tp_sandbox.apiserver.server import Listen, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_sandbox.apiserver",
                                     description="The sandbox's Kubernetes API server.")
    parser.add_argument("--state-dir", required=True, type=Path,
                        help="instance state folder (pki/, tokens.json, run/kubelet.sock)")
    parser.add_argument("--listen", action="append", required=True,
                        help="ADDR:PORT, or ADDR:PORT@NETNS to listen inside a netns")
    parser.add_argument("--service-cidr", default=get_settings().sandbox.service_cidr,
                        help="Service ClusterIP range")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        listens = [Listen.parse(x) for x in args.listen]
    except ValueError as exc:
        parser.error(str(exc))
    pki = args.state_dir / "pki"
    if not (pki / "apiserver.crt").exists():
        parser.error(f"no certificate in {pki}: create the instance's PKI first "
                     "(tp_sandbox.pki.ensure_pki)")
    asyncio.run(serve(args.state_dir, listens, args.service_cidr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
