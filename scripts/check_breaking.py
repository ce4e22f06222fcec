"""buf breaking: fail when proto/ changed in a wire- or JSON-incompatible way
(a renumbered field, a changed type, a removed RPC, ...) against the base.

    python scripts/check_breaking.py                 # base chosen as below
    python scripts/check_breaking.py --against REV   # an explicit git revision

The base is the last commit of main this tree builds on: the merge-base with
main on another branch; on main itself (as in CI, a clean clone of main) the
commit before HEAD, so that the change being landed is the one checked.
Uncommitted changes of the working tree are part of what is checked.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_REFS = ("main", "origin/main", "refs/remotes/origin/main")


def git(*args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def default_base() -> tuple[str | None, str]:
    head = git("rev-parse", "HEAD")
    if head is None:
        return None, "not a git checkout"
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD")  # None when detached
    for ref in MAIN_REFS:
        main = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if main is None:
            continue
        base = git("merge-base", "HEAD", main)
        # On a branch other than main the merge-base is the base, even when
        # nothing is committed there yet (then the working tree is checked).
        if base is not None and (base != head or (branch and branch != "main")):
            return base, f"merge-base of HEAD with {ref}"
        break
    parent = git("rev-parse", "--verify", "--quiet", "HEAD~1^{commit}")
    if parent is None:
        return None, "HEAD has no parent commit"
    return parent, "HEAD~1 (HEAD is main)"


def export(revision: str, into: Path) -> bool:
    """Writes proto/ of revision into a directory, beside this tree's buf.yaml
    and third_party/ (the imported files, which the check ignores: both sides
    then have the same modules even when a dependency was added since);
    False when that revision had no buf workspace yet."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "buf.yaml", "proto"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    shutil.copy(ROOT / "buf.yaml", into / "buf.yaml")
    shutil.copytree(ROOT / "third_party", into / "third_party")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git revision to compare with (default: see above)")
    args = parser.parse_args()
    if args.against:
        base, why = git("rev-parse", "--verify", f"{args.against}^{{commit}}"), args.against
        if base is None:
            print(f"breaking: unknown revision {args.against}", file=sys.stderr)
            return 2
    else:
        base, why = default_base()
    if base is None:
        print(f"breaking: nothing to compare with ({why}); skipped")
        return 0
    buf = Path(sys.executable).parent / "buf"
    with tempfile.TemporaryDirectory() as tmp:
        if not export(base, Path(tmp)):
            print(f"breaking: {base[:12]} has no buf workspace; skipped")
            return 0
        result = subprocess.run([str(buf), "breaking", "--against", tmp], cwd=ROOT, check=False)
    if result.returncode != 0:
        print(
            f"breaking: proto/ is not compatible with {base[:12]} ({why}); see above",
            file=sys.stderr,
        )
        return 1
    print(f"breaking: proto/ is compatible with {base[:12]} ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
