"""Copies google/api/{annotations,http}.proto from the googleapis-common-protos
wheel into third_party/googleapis, the local copy that buf and protoc use
(no remote buf registry is reachable from where this project builds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import google.api

ROOT = Path(__file__).resolve().parent.parent
FILES = ("annotations.proto", "http.proto")


def main() -> None:
    source = Path(next(iter(google.api.__path__)))
    target = ROOT / "third_party" / "googleapis" / "google" / "api"
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(source / name, target / name)
        print(f"copied {name}")


if __name__ == "__main__":
    main()
