"""``fakebeanstalk`` / ``python -m fakebeanstalk``: a drop-in for the beanstalkd command.

Takes beanstalkd's flags (``-l ADDR``, ``-l unix:PATH``, ``-p PORT``, ``-z BYTES``, ``-b DIR``,
``-s BYTES``, ``-f MS``, ``-F``, ``-V``, ``-v``; ``-u USER`` is accepted and ignored) and
parses the numbers as 1.12 does (``sscanf("%zu")``: ``-1`` wraps around). With ``-b`` the
jobs are journaled in beanstalkd's own binlog format and restored at start-up. SIGTERM
and SIGINT stop it, SIGUSR1 starts drain mode. The import path is kept lean so that it
listens within milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from fakebeanstalk.binlog.wal import DEFAULT_FILE_SIZE, c_int
from fakebeanstalk.errors import AddressInUseError, BinlogError, FakeBeanstalkError
from fakebeanstalk.protocol import DEFAULT_MAX_JOB_SIZE, MAX_JOB_SIZE_LIMIT, VERSION
from fakebeanstalk.server import FakeBeanstalkServer

__all__ = ["Options", "UsageError", "main", "parse_args"]

USAGE = """\
Use: fakebeanstalk [OPTIONS]

Options:
 -b DIR   write-ahead log directory
 -f MS    fsync at most once every MS milliseconds (default is 50ms);
          use -f0 for "always fsync"
 -F       never fsync
 -l ADDR  listen on address (default is 0.0.0.0), or unix:PATH
 -p PORT  listen on port (default is 11300)
 -u USER  accepted for compatibility
 -z BYTES set the maximum job size in bytes (default is 65535)
 -s BYTES set the size of each write-ahead log file (default is 10485760)
 -c       removed (warns)
 -n       removed (warns)
 -v       show version information
 -V       increase verbosity
 -h       show this help
"""


class UsageError(Exception):
    """Bad command line; the message is printed (with the usage text for status 5)."""

    def __init__(self, message: str, *, status: int = 5) -> None:
        """``status`` is the exit status beanstalkd gives this mistake."""
        super().__init__(message)
        self.status = status


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        """beanstalkd's defaults."""
        self.address = "0.0.0.0"
        self.port = 11300
        self.max_job_size = DEFAULT_MAX_JOB_SIZE
        self.verbose = 0
        self.binlog_dir: str | None = None
        self.binlog_size = DEFAULT_FILE_SIZE
        self.fsync_ms: int | None = 50
        self.show_version = False
        self.show_help = False


_SIZE_MAX = 2**64 - 1


def _size_t(value: str) -> int:
    """beanstalkd's parse_size_t(): ``sscanf(value, "%zu%c")`` must match exactly one item.

    Leading white space and a sign are allowed, a negative number wraps around modulo 2^64,
    an overflow saturates at SIZE_MAX, and anything after the digits is an error.
    """
    text = value.lstrip(" \t\n\v\f\r")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text.isdigit() or not text.isascii():
        raise UsageError(f"invalid size: {value}")
    number = int(text)
    if number > _SIZE_MAX:
        return _SIZE_MAX
    return (sign * number) % 2**64


def _port(value: str) -> int:
    """The port as beanstalkd gets it: getaddrinfo()'s service, so a service name works,
    a number wraps modulo 2^16, and anything else fails like a bind (exit status 111)."""
    try:
        address = socket.getaddrinfo(
            None, value, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )[0][4]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"getaddrinfo(): {exc}", status=111) from None
    return int(address[1])


def _apply(options: Options, flag: str, value: str) -> None:
    if flag == "p":
        options.port = _port(value)
    elif flag == "l":
        options.address = value
    elif flag == "z":
        size = _size_t(value)
        if size > MAX_JOB_SIZE_LIMIT:
            print(
                f"fakebeanstalk: maximum job size was set to {MAX_JOB_SIZE_LIMIT}", file=sys.stderr
            )
            size = MAX_JOB_SIZE_LIMIT
        options.max_job_size = size
    elif flag == "b":
        options.binlog_dir = value
    elif flag == "s":
        options.binlog_size = c_int(_size_t(value))  # beanstalkd keeps it in an int
    elif flag == "f":
        # an int64 of milliseconds: -f -1 is a negative interval, i.e. always fsync
        options.fsync_ms = (_size_t(value) + 2**63) % 2**64 - 2**63


def parse_args(argv: Sequence[str]) -> Options:
    """Parse beanstalkd-style flags: grouped (``-VV``) and glued values (``-p11300``)."""
    options = Options()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if len(arg) < 2 or arg[0] != "-":
            raise UsageError(f"unknown argument: {arg}")
        j = 1
        while j < len(arg):
            flag = arg[j]
            j += 1
            if flag in "plzsfbu":
                if j < len(arg):
                    value, j = arg[j:], len(arg)
                elif i < len(args):
                    value, i = args[i], i + 1
                else:
                    raise UsageError(f"flag -{flag} requires an argument")
                _apply(options, flag, value)
            elif flag == "V":
                options.verbose += 1
            elif flag == "v":
                options.show_version = True
            elif flag == "h":
                options.show_help = True
            elif flag in "cn":
                print(f"fakebeanstalk: -{flag} flag was removed", file=sys.stderr)
            elif flag == "F":
                options.fsync_ms = None
            else:
                raise UsageError(f"unknown flag: -{flag}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; returns the exit status."""
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        usage = f"\n{USAGE}" if exc.status == 5 else ""
        print(f"fakebeanstalk: {exc}{usage}", file=sys.stderr)
        return exc.status
    if options.show_help:
        print(USAGE)
        return 0
    if options.show_version:
        print(f"fakebeanstalk (beanstalkd {VERSION})")
        return 0
    unix = options.address.startswith("unix:")
    server = FakeBeanstalkServer(
        host=None if unix else options.address,
        port=options.port,
        max_job_size=options.max_job_size,
        unix_path=options.address[5:] if unix else None,
        binlog_dir=options.binlog_dir,
        binlog_size=options.binlog_size,
        fsync_ms=options.fsync_ms,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    signal.signal(signal.SIGINT, lambda *_: server.request_stop())
    signal.signal(signal.SIGUSR1, lambda *_: _drain(server))
    logging.basicConfig(format="fakebeanstalk: %(message)s")  # binlog warnings to stderr
    if options.verbose:
        print(f"pid {os.getpid()}", flush=True)
    try:
        server.serve_forever(on_listening=_announce(server, options.verbose))
    except AddressInUseError as exc:
        print(f"fakebeanstalk: {exc}", file=sys.stderr)
        return 111
    except BinlogError as exc:  # beanstalkd exits 10 when it cannot lock its wal dir
        print(f"fakebeanstalk: {exc}", file=sys.stderr)
        return 10
    return 0


def _announce(server: FakeBeanstalkServer, verbose: int) -> Callable[[], None]:
    def announce() -> None:
        if verbose:
            where = server.unix_path or f"{server.host}:{server.port}"
            print(f"bind {where}", flush=True)

    return announce


def _drain(server: FakeBeanstalkServer) -> None:
    with contextlib.suppress(FakeBeanstalkError):
        server.drain()


if __name__ == "__main__":
    sys.exit(main())
