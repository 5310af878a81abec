"""``python -m ipledger.network.org.containers build | plan``: the ipledger images, built here, no registry.

  build [--only NAME ...] [--force NAME ...]   build what is not cached (progress per image)
  plan [--offline]                             each image's tag and whether it is cached
                                               (--offline: no engine asked, tags only)
  prune                                        remove ipledger image tags the plan no longer names
"""
from __future__ import annotations

import argparse
import json
import sys

from ipledger.network.org.containers import images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ipledger.network.org.containers",
                                description="ipledger's container images, built here from local material")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build every image that is not cached (tags carry a hash of their inputs)")
    b.add_argument("--only", nargs="+", default=[], metavar="NAME",
                   help="these images (and the parents they need) only: base peer orderer ccaas gateway")
    b.add_argument("--force", nargs="+", default=[], metavar="NAME",
                   help="rebuild these even if their tag exists (e.g. base, for Debian's updates)")
    b.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    pl = sub.add_parser("plan", help="each image's tag, and whether the engine has it")
    pl.add_argument("--offline", action="store_true", help="do not ask the engine: tags only")
    sub.add_parser("prune", help="remove ipledger image tags of older inputs (not 'latest', not current)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            results = images.build_all(only=args.only, force=args.force)
            if args.json:
                print(json.dumps([r.__dict__ for r in results], indent=2))
            return 0
        if args.cmd == "prune":
            images.prune()
            return 0
        specs = images.default_specs()
        if args.offline:
            for step in images.plan(specs):
                print(f"{step.spec.name:8} {step.tag}")
            return 0
        c = images.client()
        for step in images.plan(specs, lambda t: images.tag_exists(c, t)):
            print(f"{step.spec.name:8} {step.tag}  {step.action}")
        return 0
    except images.ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
