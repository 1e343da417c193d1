"""Fails when a test CI collected ran in none of its phases.

    python .ci/check_every_test_ran.py LEDGER_DIR

LEDGER_DIR is what tests/ci_ledger.py wrote while CI's phases ran with
KERAS_DRN_CI_LEDGER=LEDGER_DIR (``PHASE.collected.*`` and ``PHASE.ran.*`` files, one node
id a line). Exits 1 listing each collected test that no phase ran (skipped on every backend
or deselected by every phase), or when the ledger holds no collected test at all; 0 when
every collected test ran at least once.
"""

import collections
import pathlib
import sys


def read(folder):
    """``(collected, ran)``: dicts node id -> sorted phases that collected / ran it."""
    found = {"collected": collections.defaultdict(set), "ran": collections.defaultdict(set)}
    for path in sorted(pathlib.Path(folder).glob("*.txt")):
        phase, kind = path.name.split(".")[:2]
        if kind in found:
            for line in path.read_text().splitlines():
                if line.strip():
                    found[kind][line.strip()].add(phase)
    return found["collected"], found["ran"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python .ci/check_every_test_ran.py LEDGER_DIR", file=sys.stderr)
        return 2
    collected, ran = read(argv[0])
    if not collected:
        print(f"{argv[0]} records no collected test: run the tests with "
              f"KERAS_DRN_CI_LEDGER={argv[0]} (tests/ci_ledger.py) first.", file=sys.stderr)
        return 1
    missing = sorted(set(collected) - set(ran))
    phases = sorted(set().union(*collected.values()))
    if missing:
        print(f"{len(missing)} of {len(collected)} collected tests ran in no CI phase "
              f"({', '.join(phases)}): each is skipped or deselected everywhere. Make it run "
              "in one phase (a marker, a CPU path) or delete it:", file=sys.stderr)
        for nodeid in missing:
            print(f"  {nodeid} (collected on {', '.join(sorted(collected[nodeid]))})",
                  file=sys.stderr)
        return 1
    print(f"every one of the {len(collected)} collected tests ran in at least one CI phase "
          f"({', '.join(phases)}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
