"""Refreshes the local copies of the .proto files that proto/ imports (no
remote buf registry is reachable from where this project builds):

- google/api/{annotations,http}.proto and google/rpc/error_details.proto from
  the installed googleapis-common-protos wheel, into third_party/googleapis;
- buf/validate/validate.proto (protovalidate's rules) from the source
  distribution of the pinned protovalidate release, into
  third_party/protovalidate.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import google.api

ROOT = Path(__file__).resolve().parent.parent
GOOGLE_FILES = ("api/annotations.proto", "api/http.proto", "rpc/error_details.proto")
# The release whose source distribution ships validate.proto; the runtime
# (protovalidate 2.x) reads rules of this and later versions of the file.
PROTOVALIDATE_SOURCE = "protovalidate==1.2.0"
VALIDATE_PROTO = "buf/validate/validate.proto"


def copy_google() -> None:
    google_root = Path(next(iter(google.api.__path__))).parent
    for name in GOOGLE_FILES:
        target = ROOT / "third_party" / "googleapis" / "google" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(google_root / name, target)
        print(f"copied google/{name}")


def copy_protovalidate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--dest", tmp, PROTOVALIDATE_SOURCE],
            check=True,
        )  # fmt: skip
        (archive,) = Path(tmp).glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(VALIDATE_PROTO))
            source = tar.extractfile(member)
            assert source is not None
            target = ROOT / "third_party" / "protovalidate" / VALIDATE_PROTO
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
    print(f"copied {VALIDATE_PROTO} ({PROTOVALIDATE_SOURCE})")


def main() -> None:
    copy_google()
    copy_protovalidate()


if __name__ == "__main__":
    main()
