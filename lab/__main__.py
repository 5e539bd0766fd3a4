"""scripts/lab up [--hosts N | --qemu SERIES...] | down | status | reboot HOST | partition HOST | heal HOST | inventory"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from lab import control  # noqa: E402
from lab import topology as topo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/lab", description="The AutoPod lab of machine-like hosts.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build the lab, or leave a healthy one as it is")
    start.add_argument("--hosts", type=int, default=3)
    start.add_argument("--qemu", nargs="+", metavar="SERIES", choices=("6.1", "6.12"),
                       help="QEMU guests on Debian's kernels instead, one series per guest (e.g. --qemu 6.1 6.12)")
    commands.add_parser("down", help="remove everything the lab made")
    commands.add_parser("status", help="hosts, their boot ids and whether SSH answers")
    restart = commands.add_parser("reboot", help="reboot one lab host")
    restart.add_argument("host")
    for name, what in (("partition", "cut a host off the lab switch (its packets are dropped, none refused)"),
                       ("heal", "put a partitioned host back on the switch")):
        commands.add_parser(name, help=what).add_argument("host")
    commands.add_parser("inventory", help="print the Ansible inventory of the lab")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    if args.command == "up":
        if args.qemu:
            print(control.up(len(args.qemu), control.QEMU, args.qemu))
        else:
            print(control.up(args.hosts))
    elif args.command == "down":
        control.down()
    elif args.command == "status":
        print(json.dumps(control.status(), indent=1))
    elif args.command == "reboot":
        print(control.reboot(args.host))
    elif args.command in ("partition", "heal"):
        getattr(control, args.command)(args.host)
    elif args.command == "inventory":
        with open(topo.inventory_path()) as handle:
            print(handle.read(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
