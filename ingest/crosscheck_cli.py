"""`make crosscheck`: rerun the FAISS cross-check, in the running service when it owns the embedded shard.

Like `make ingest`, a second process cannot open the shard while `make run` serves, so the work is
handed to the service over loopback (with the token it wrote to `data/admin.token`)."""

from __future__ import annotations

import argparse
import sys

from core.settings import load_settings
from core.store import store_backend
from eval import crosscheck
from ingest.handoff import find_service


def main(argv: list[str] | None = None) -> int:
    """Hand the cross-check to the running service, or run it here when none owns the store."""
    parser = argparse.ArgumentParser(prog="make crosscheck", description=__doc__)
    parser.add_argument("--samples", type=int, default=100, help="stored vectors used as queries")
    parser.add_argument("-k", type=int, default=12, help="neighbours compared per query")
    args = parser.parse_args(argv)
    settings = load_settings()
    service = (
        find_service(settings.data_dir, settings.port) if store_backend(settings).single_process else None
    )
    if service is None:
        return crosscheck.main(argv)
    print(f"A Wonders service is running at {service.url}: it runs the cross-check on its store.")
    try:
        answer = service.crosscheck(args.samples, args.k)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(answer.get("summary", ""))
    print(f"report saved to {settings.crosscheck_report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
