"""python -m tests.testbed up|down|status|env|logs|kill [service ...]

`up` installs what is missing, starts each service (all when none is named), waits until it
answers and prints its `export` lines on stdout, so `eval "$(python -m tests.testbed up)"` sets
them in a shell; progress goes to stderr. A service started here stays up until `down`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from tests.testbed import SERVICES, open_service
from tests.testbed.service import ServiceError

COMMANDS = ("up", "down", "status", "env", "logs", "kill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("services", nargs="*", choices=[[], *SERVICES], metavar="service",
                        help=f"any of {', '.join(SERVICES)} (default: all)")
    arguments = parser.parse_args(argv)
    # The readiness checks' clients log every refused connection while a broker boots.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    services = [open_service(name) for name in arguments.services or SERVICES]
    status = 0
    try:
        for service in services:
            if arguments.command == "up":
                service.up(owner="cli")
            elif arguments.command == "down":
                service.down()
            elif arguments.command == "kill":
                service.kill()
            elif arguments.command == "status":
                is_up, line = service.status()
                print(line)
                status |= 0 if is_up else 1
            elif arguments.command == "logs":
                print(service.log_report(lines=60))
    except ServiceError as error:
        print(f"testbed: {error}", file=sys.stderr)
        return 1
    if arguments.command in ("up", "env"):
        exports = {key: value for service in services for key, value in service.exports().items()}
        for key, value in exports.items():
            print(f"export {key}={shlex.quote(value)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
