"""The Python client (clients/python, package ``confighub``) is imported from the
checkout itself: its directory goes on ``sys.path`` here, so the tests always run
the code beside them (no install step, requirements.txt unchanged)."""
from __future__ import annotations

import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
if str(CLIENT) not in sys.path:
    sys.path.insert(0, str(CLIENT))
