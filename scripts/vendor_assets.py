#!/usr/bin/env python3
"""Vendor third-party browser assets into ``src/civicvoucher/web/static/vendor/`` (what the
app serves) and ``tests/browser/vendor/`` (what only the browser tests inject: axe-core).

Usage::

    python scripts/vendor_assets.py           # fetch pinned versions, (re)write vendor/
    python scripts/vendor_assets.py --check   # verify committed files (no network)

Packages are fetched by name with the ordinary npm client (``npm pack
<name>@<version>``) so that whatever registry npm is configured to use is
honoured; no registry host is named here.  Each downloaded tarball is checked
against the pinned npm integrity (sha512) before anything is extracted, and
only the named files are read out of it (no ``extractall``).

Each asset names its target (``app`` or ``tests``); test-only code stays out of the app's
package (``src/`` ships every ``*.js`` as package data) and out of what it serves.

For each package ``vendor/<name>/`` gets the dist file, the package's LICENSE
(plus NOTICE and any extra licence files it ships), and a ``VERSION`` file::

    <name>@<version>
    <sha256>  <dist file>
    <sha256>  LICENSE
    ...

The hash lines use ``sha256sum`` format, so ``cd vendor/<name> && tail -n +2
VERSION | sha256sum -c`` works as well as ``--check``.

To bump a version: change ``version`` and ``integrity`` below (``npm view
<name>@<version> dist.integrity``), run the script, review and commit.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENDOR_DIR = REPO_ROOT / "src" / "civicvoucher" / "web" / "static" / "vendor"
TESTS_VENDOR_DIR = REPO_ROOT / "tests" / "browser" / "vendor"
TARGETS = {"app": VENDOR_DIR, "tests": TESTS_VENDOR_DIR}
README_NAME = "README.md"
VERSION_NAME = "VERSION"


@dataclass(frozen=True)
class Asset:
    name: str  # npm package name; also the directory name under vendor/
    version: str  # exact pinned version
    integrity: str  # npm "dist.integrity" of the tarball (sha512-<base64>)
    dist: str  # path of the dist file inside the package
    license: str  # SPDX id expected in the package's package.json
    license_files: tuple[str, ...]  # required licence files (paths inside the package)
    optional_files: tuple[str, ...] = ()  # copied when present (NOTICE, ...)
    licence_note: str = ""
    target: str = "app"  # a key of TARGETS: "app" (served, shipped) or "tests" (tests only)

    @property
    def vendor_dir(self) -> Path:
        return TARGETS[self.target]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def dist_basename(self) -> str:
        return Path(self.dist).name


ASSETS: tuple[Asset, ...] = (
    Asset(
        name="echarts",
        version="5.6.0",
        integrity=(
            "sha512-oTbVTsXfKuEhxftHqL5xprgLoc0k7uScAwtryCgWF6hPYFLRwOUHiFmHGCBKP5NPFNkDVopOieyUqYGH8Fa3kA=="
        ),
        dist="dist/echarts.min.js",
        license="Apache-2.0",
        license_files=("LICENSE",),
        optional_files=("NOTICE", "licenses/LICENSE-d3"),
        licence_note="Apache-2.0; NOTICE must be kept; bundles code from d3.js (BSD-3-Clause, `licenses/LICENSE-d3`)",
    ),
    Asset(
        name="htmx.org",
        version="2.0.11",
        integrity=(
            "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="
        ),
        dist="dist/htmx.min.js",
        license="0BSD",
        license_files=("LICENSE",),
        optional_files=("NOTICE",),
        licence_note="0BSD (Zero-Clause BSD)",
    ),
    Asset(
        name="swagger-ui-dist",
        version="5.35.0",
        integrity=(
            "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
        ),
        dist="swagger-ui-bundle.js",
        license="Apache-2.0",
        license_files=("LICENSE",),
        optional_files=("NOTICE", "swagger-ui.css"),
        licence_note="Apache-2.0; the API's interactive docs page (`/api/v1/docs`), with its CSS",
    ),
    Asset(
        name="axe-core",
        version="4.14.1",
        integrity=(
            "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
        ),
        dist="axe.min.js",
        license="MPL-2.0",
        license_files=("LICENSE",),
        optional_files=("LICENSE-3RD-PARTY.txt",),
        licence_note="MPL-2.0, unmodified; the browser tests' accessibility checks (never served)",
        target="tests",
    ),
)


class VendorError(RuntimeError):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def dest_path(asset: Asset, member: str) -> str:
    """Where a package file goes inside vendor/<name>/ (dist files are flattened)."""
    return asset.dist_basename if member == asset.dist else member


# --------------------------------------------------------------------------- fetch


def npm_pack(asset: Asset, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm not found on PATH (install Node.js/npm to refresh vendored assets)")
    cmd = [
        npm,
        "pack",
        asset.spec,
        "--pack-destination",
        str(workdir),
        "--json",
        "--ignore-scripts",
    ]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise VendorError(
            f"`npm pack {asset.spec}` failed ({proc.returncode}):\n{proc.stderr.strip()}"
        )
    try:
        info = json.loads(proc.stdout)
        filename = info[0]["filename"]
    except (ValueError, LookupError, TypeError) as exc:
        raise VendorError(
            f"unexpected `npm pack --json` output for {asset.spec}: {proc.stdout!r}"
        ) from exc
    tgz = workdir / filename
    if not tgz.is_file():
        raise VendorError(f"npm pack reported {filename} but it is not in {workdir}")
    return tgz


def read_members(tgz: Path, asset: Asset) -> dict[str, bytes]:
    """Read the wanted files out of an npm tarball (members live under ``package/``)."""
    wanted = {asset.dist, *asset.license_files, *asset.optional_files, "package.json"}
    found: dict[str, bytes] = {}
    with tarfile.open(tgz, mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            top, _, rel = member.name.partition("/")
            if rel not in wanted or rel in found:
                continue
            if top != "package":  # npm always uses package/, but be tolerant of odd tarballs
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            found[rel] = fh.read()
    missing = [f for f in (asset.dist, *asset.license_files, "package.json") if f not in found]
    if missing:
        raise VendorError(f"{asset.spec}: tarball lacks required file(s): {', '.join(missing)}")
    return found


def fetch_asset(asset: Asset, workdir: Path) -> dict[str, bytes]:
    tgz = npm_pack(asset, workdir)
    data = tgz.read_bytes()
    got = npm_integrity(data)
    if got != asset.integrity:
        raise VendorError(
            f"{asset.spec}: tarball integrity mismatch\n  pinned: {asset.integrity}\n  got:    {got}"
        )
    members = read_members(tgz, asset)
    meta = json.loads(members.pop("package.json"))
    if meta.get("name") != asset.name or meta.get("version") != asset.version:
        raise VendorError(
            f"{asset.spec}: package.json says {meta.get('name')}@{meta.get('version')}"
        )
    if meta.get("license") != asset.license:
        raise VendorError(
            f"{asset.spec}: licence changed: package.json says {meta.get('license')!r}, "
            f"pinned {asset.license!r}; review before vendoring"
        )
    return members


def render_version(asset: Asset, files: dict[str, bytes]) -> str:
    """VERSION contents: spec line, then sha256sum-style lines (dist file first)."""
    order = [asset.dist_basename, *sorted(p for p in files if p != asset.dist_basename)]
    lines = [asset.spec]
    lines += [f"{sha256_hex(files[p])}  {p}" for p in order]
    return "\n".join(lines) + "\n"


def write_asset(asset: Asset, members: dict[str, bytes]) -> dict[str, bytes]:
    files = {dest_path(asset, m): data for m, data in members.items()}
    target = asset.vendor_dir / asset.name
    asset.vendor_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{asset.name}.", dir=asset.vendor_dir))
    try:
        for rel, data in files.items():
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        (staging / VERSION_NAME).write_text(render_version(asset, files), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.chmod(0o755)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return files


# --------------------------------------------------------------------------- README

INTROS = {
    "app": ("Vendored browser assets", """\
Third-party JavaScript served by civicvoucher's web UI. The files are committed so the
app, its tests and CI work offline; they are fetched from the npm registry by package
name with `npm pack` and never loaded from a CDN at run time."""),
    "tests": ("Vendored test-only browser assets", """\
Third-party JavaScript that only the browser tests (`tests/browser/`) inject into pages;
the app never serves it and the package does not ship it. Committed so the tests and CI
work offline; fetched from the npm registry by package name with `npm pack`."""),
}


def render_readme(target: str = "app") -> str:
    rows = []
    for a in (a for a in ASSETS if a.target == target):
        rows.append(
            f"| `{a.name}` | {a.version} | `{a.name}/{a.dist_basename}` | {a.licence_note} |"
        )
    table = "\n".join(rows)
    title, intro = INTROS[target]
    return f"""\
# {title}

<!-- Generated by scripts/vendor_assets.py; edit the ASSETS table there, not this file. -->

{intro}

| package | version | file | licence |
| --- | --- | --- | --- |
{table}

Each `<package>/` directory holds:

- the upstream minified dist file, byte for byte as published;
- the package's `LICENSE` (and `NOTICE` and any further licence files it ships) — keep
  these next to the code when redistributing;
- `VERSION`: first line `<package>@<version>`, then `sha256  path` lines
  (`sha256sum` format) for every file in the directory, the dist file first.

## Refreshing / bumping

```sh
python scripts/vendor_assets.py          # re-fetch the pinned versions (needs npm + network)
python scripts/vendor_assets.py --check  # verify files against VERSION (no network)
```

To move to a new version, edit `version` and `integrity` for the package in the `ASSETS`
table of `scripts/vendor_assets.py` (`npm view <package>@<version> dist.integrity`),
run the script, review the diff (including any licence change, which the script
refuses until the pinned licence is updated) and commit the result.
"""


# --------------------------------------------------------------------------- check


def check() -> list[str]:
    problems: list[str] = []
    for asset in ASSETS:
        adir = asset.vendor_dir / asset.name
        vfile = adir / VERSION_NAME
        if not vfile.is_file():
            problems.append(f"{asset.name}: missing {vfile.relative_to(REPO_ROOT)}")
            continue
        lines = vfile.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0].strip() != asset.spec:
            got = lines[0].strip() if lines else "<empty>"
            problems.append(f"{asset.name}: VERSION says {got!r}, script pins {asset.spec!r}")
        listed: dict[str, str] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            digest, sep, rel = line.partition("  ")
            if not sep or len(digest) != 64:
                problems.append(f"{asset.name}: malformed VERSION line {line!r}")
                continue
            listed[rel] = digest
        required = {asset.dist_basename, *(dest_path(asset, f) for f in asset.license_files)}
        for rel in sorted(required - listed.keys()):
            problems.append(f"{asset.name}: VERSION has no sha256 for {rel}")
        for rel, digest in listed.items():
            path = adir / rel
            if not path.is_file():
                problems.append(f"{asset.name}: missing {rel}")
            elif sha256_hex(path.read_bytes()) != digest:
                problems.append(f"{asset.name}: sha256 mismatch for {rel}")
        present = {p.relative_to(adir).as_posix() for p in adir.rglob("*") if p.is_file()} - {
            VERSION_NAME
        }
        for rel in sorted(present - listed.keys()):
            problems.append(f"{asset.name}: unexpected file {rel} (not in VERSION)")
    for target in sorted({a.target for a in ASSETS}):
        readme = TARGETS[target] / README_NAME
        if not readme.is_file():
            problems.append(f"missing {readme.relative_to(REPO_ROOT)}")
        elif readme.read_text(encoding="utf-8") != render_readme(target):
            problems.append(f"{readme.relative_to(REPO_ROOT)} is out of date (re-run the script)")
    return problems


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify vendored files against the sha256 sums in each VERSION file (no network)",
    )
    args = parser.parse_args(argv)

    if args.check:
        problems = check()
        for p in problems:
            print(f"vendor check: {p}", file=sys.stderr)
        if problems:
            print(
                "vendor check: FAILED (run `python scripts/vendor_assets.py` to refresh)",
                file=sys.stderr,
            )
            return 1
        print(f"vendor check: OK ({', '.join(a.spec for a in ASSETS)})")
        return 0

    try:
        with tempfile.TemporaryDirectory(prefix="civicvoucher-vendor-") as tmp:
            for asset in ASSETS:
                workdir = Path(tmp) / asset.name
                workdir.mkdir()
                files = write_asset(asset, fetch_asset(asset, workdir))
                dist = files[asset.dist_basename]
                print(
                    f"{asset.spec}: {asset.name}/{asset.dist_basename} "
                    f"{len(dist)} bytes sha256 {sha256_hex(dist)}"
                )
    except VendorError as exc:
        print(f"vendor_assets: error: {exc}", file=sys.stderr)
        return 1
    for target in sorted({a.target for a in ASSETS}):
        readme = TARGETS[target] / README_NAME
        readme.write_text(render_readme(target), encoding="utf-8")
        print(f"wrote {readme.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
