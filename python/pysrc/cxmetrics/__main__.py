"""``python -m cxmetrics run JOB.yaml [options]``: the command line of the package, with the
same options and exit codes as the ``cxmetrics`` binary."""
import sys

from . import _cli


def main():
    code, message = _cli(sys.argv[1:])
    if message:
        # Errors go to stderr as the binary prints them; --help and --version to stdout.
        print(message, file=sys.stderr if code != 0 else sys.stdout, end="" if message.endswith("\n") else "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
