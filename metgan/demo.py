"""``make demo``: the pipeline end to end on embedded defaults.

At this stage of the project the pipeline is the store: start the embedded PostgreSQL server
(or use METGAN_DATABASE_URL), apply the migrations and show their state.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    for args in (["db", "migrate"], ["db", "status"]):
        subprocess.run([sys.executable, "-m", "metgan", *args], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
