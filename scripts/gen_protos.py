"""Generate the code for proto/: Python into its own distribution
(clients/python-proto, `runsvc-proto`: the one copy that server, gateway and
clients import) and TypeScript into the TypeScript client (buf generate with
buf.gen.yaml and the local protoc-gen-es).

    python scripts/gen_protos.py           # regenerate in place
    python scripts/gen_protos.py --check   # exit 1 if the tree is stale

Output: messages (*_pb2.py), services (*_pb2_grpc.py) and typing stubs
(*.pyi, from mypy-protobuf) under clients/python-proto/src/tenantpilot/, and
the messages of the protovalidate rules that runs.proto imports under
clients/python-proto/src/buf/; protobuf-es messages and service descriptors
(*_pb.ts) under clients/typescript/src/gen/.
The TypeScript plugin comes from clients/typescript/node_modules (`npm ci`).
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
PROTOVALIDATE_DIR = ROOT / "third_party" / "protovalidate"
OUT_DIR = ROOT / "clients" / "python-proto" / "src"
# Top-level packages of the generated code: ours, and protovalidate's rule
# messages (imported by ours; google/api comes from googleapis-common-protos).
GENERATED_ROOTS = ("tenantpilot", "buf")
TS_OUT = Path("clients") / "typescript" / "src" / "gen"  # as in buf.gen.yaml
TS_PLUGIN = ROOT / "clients" / "typescript" / "node_modules" / ".bin" / "protoc-gen-es"


def generate(out: Path) -> None:
    import grpc_tools

    wkt_dir = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    protoc = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{GOOGLEAPIS_DIR}",
        f"-I{PROTOVALIDATE_DIR}",
        f"-I{wkt_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--python_out={out}",
        f"--mypy_out={out}",
    ]
    ours = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    subprocess.run(
        [
            *protoc,
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            *ours,
        ],
        check=True,
        cwd=PROTO_DIR,
    )
    # Messages only: protovalidate's file declares no services.
    rules = [str(p.relative_to(PROTOVALIDATE_DIR)) for p in PROTOVALIDATE_DIR.rglob("*.proto")]
    rules.sort()
    subprocess.run([*protoc, *rules], check=True, cwd=PROTOVALIDATE_DIR)
    for root in GENERATED_ROOTS:
        # Regular packages (not namespace packages) so that type checkers and
        # setuptools find them without special configuration.
        for directory in (out / root).rglob("*"):
            if directory.is_dir():
                (directory / "__init__.py").touch()
        (out / root / "__init__.py").touch()
        # PEP 561: the .pyi stubs are this package's types.
        (out / root / "py.typed").touch()


def generate_typescript(base: Path) -> Path:
    """Runs buf generate with buf.gen.yaml into base; returns the output dir."""
    if not TS_PLUGIN.exists():
        sys.exit(f"{TS_PLUGIN.relative_to(ROOT)} is missing: run `npm ci` in clients/typescript")
    buf = Path(sys.executable).parent / "buf"
    subprocess.run(
        [str(buf), "generate", "--template", "buf.gen.yaml", "-o", str(base)],
        check=True,
        cwd=ROOT,
    )
    return base / TS_OUT


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
        fresh = Path(tmp) / "python"
        fresh.mkdir()
        generate(fresh)
        pairs = [(fresh / root, OUT_DIR / root) for root in GENERATED_ROOTS]
        pairs.append((generate_typescript(Path(tmp) / "typescript"), ROOT / TS_OUT))
        stale = []
        for new, target in pairs:
            where = target.relative_to(ROOT)
            if not target.exists():
                stale.append(f"{where} (missing)")
                continue
            stale += [f"{where / f}" for f in stale_files(new, target)]
        if args.check:
            if stale:
                print("generated code is stale; run `make gen`:", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        for new, target in pairs:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(new, target)
            print(f"generated {len(tree_files(target))} files into {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
