"""JSON-lines log observers for ``twistd --logger``: one JSON object per event.

- ``twistd --logger piano.logs.json_stdout ...``: to standard output (journald under systemd).
- ``twistd --logger piano.logs.json_file ...``: to the file named by ``PIANO_LOG_FILE``,
  rotated at ``PIANO_LOG_ROTATE_BYTES`` (default 10 MB), keeping ``PIANO_LOG_KEEP`` old
  files (default 10).

Every event keeps its structured fields (``exchange_id``, ``finess``, ``amc``, ``service``,
``outcome``, ``code``...), so a line can be found by exchange id. Events never carry personal
data: the services only log identifiers and codes.
"""

from __future__ import annotations

import os
import sys

from twisted.logger import ILogObserver, jsonFileLogObserver
from twisted.python.logfile import LogFile


def json_stdout() -> ILogObserver:
    return jsonFileLogObserver(sys.stdout, recordSeparator="")


def json_file() -> ILogObserver:
    path = os.environ.get("PIANO_LOG_FILE")
    if not path:
        raise SystemExit("piano.logs.json_file needs PIANO_LOG_FILE (the log file's path)")
    rotate = int(os.environ.get("PIANO_LOG_ROTATE_BYTES", str(10 * 1024 * 1024)))
    keep = int(os.environ.get("PIANO_LOG_KEEP", "10"))
    logfile = LogFile.fromFullPath(path, rotateLength=rotate, maxRotatedFiles=keep)
    return jsonFileLogObserver(logfile, recordSeparator="")
