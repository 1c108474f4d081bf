"""Convert voice2gender 0.1.1's booster to the JSON file this repository ships (run once).

    python tools/convert_voice2gender.py PATH/TO/voice2gender/_model.py

The wheel keeps its XGBoost booster as a Python literal in `voice2gender/_model.py`.
This script checks that file's SHA-256, evaluates only the literal (ast.literal_eval: no
code from the file runs; see `sigwarehouse.models.voice2gender.booster_json`) and writes
the JSON, gzipped without a timestamp so the bytes are reproducible, to
src/sigwarehouse/models/weights/voice2gender-0.1.1.json.gz; it prints the SHA-256 to put
in `WEIGHTS_SHA256`. Find the file in an unpacked wheel (`unzip voice2gender-0.1.1-*.whl`)
or an install made with `pip install --no-deps voice2gender==0.1.1`.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

from sigwarehouse.models.voice2gender import WEIGHTS, booster_json


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = booster_json(Path(sys.argv[1]))
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    WEIGHTS.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes)")
    print(f"WEIGHTS_SHA256 = {hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()!r}")


if __name__ == "__main__":
    main()
