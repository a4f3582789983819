"""Build the test suite's digits bundle (cpu + gpu + edgetpu artifacts) into a folder.

The device-side tests (``pytest -m "not build"``) need a real bundle but no
TensorFlow: build it here, on the build side, and hand it to the device with
``EDGEKIT_TEST_BUNDLE=<folder>``. It is the very bundle the suite builds for
itself (same model, seed and split), so the tests' expectations hold.

    python tools/make_test_bundle.py /tmp/digits-bundle
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/make_test_bundle.py DEST", file=sys.stderr)
        return 2
    dest = Path(argv[0])
    if dest.exists():
        print(f"{dest} exists; remove it or pick another folder", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "tests"))
    import runtime_fixtures

    runtime_fixtures._train_and_convert(dest)
    print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
