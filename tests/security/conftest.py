"""Counts of the authorization matrix, printed at the end of the run."""
from collections import Counter

MATRIX_COUNTS: Counter = Counter()
MATRIX_ROUTES: set = set()


def pytest_terminal_summary(terminalreporter):
    if MATRIX_COUNTS:
        terminalreporter.write_line(
            f"authorization matrix: {len(MATRIX_ROUTES)} route+method pairs, "
            f"{sum(MATRIX_COUNTS.values())} cases ("
            + ", ".join(f"{k}: {v}" for k, v in sorted(MATRIX_COUNTS.items()))
            + ")"
        )
