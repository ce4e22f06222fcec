"""Generate the Python code for proto/ into the client package, the one copy
that server, gateway and clients import.

    python scripts/gen_protos.py           # regenerate in place
    python scripts/gen_protos.py --check   # exit 1 if the tree is stale

Output: messages (*_pb2.py), services (*_pb2_grpc.py) and typing stubs
(*.pyi, from mypy-protobuf) under clients/python/src/tenantpilot/.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GOOGLEAPIS_DIR = ROOT / "third_party" / "googleapis"
OUT_DIR = ROOT / "clients" / "python" / "src"
GENERATED_ROOT = "tenantpilot"  # top-level package of the generated code


def generate(out: Path) -> None:
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    wkt_dir = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{GOOGLEAPIS_DIR}",
        f"-I{wkt_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_DIR)
    # Regular packages (not namespace packages) so that type checkers and
    # setuptools find them without special configuration.
    for directory in (out / GENERATED_ROOT).rglob("*"):
        if directory.is_dir():
            (directory / "__init__.py").touch()
    (out / GENERATED_ROOT / "__init__.py").touch()


def tree_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def stale_files(fresh: Path, current: Path) -> list[str]:
    fresh_files, current_files = tree_files(fresh), tree_files(current)
    stale = sorted(fresh_files ^ current_files)
    stale += sorted(
        f
        for f in fresh_files & current_files
        if not filecmp.cmp(fresh / f, current / f, shallow=False)
    )
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated tree is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        target = OUT_DIR / GENERATED_ROOT
        stale = stale_files(fresh / GENERATED_ROOT, target) if target.exists() else ["(missing)"]
        if args.check:
            if stale:
                print("generated code is stale; run `make gen`:", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(fresh / GENERATED_ROOT, target)
        print(f"generated {len(tree_files(target))} files into {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
