"""Rebuild the out-of-source check set (checkset/photos) from the Debian packages it came from.

    python checkset/build.py --root /tmp/checkset-debs/root   # packages extracted there
    python checkset/build.py                                  # packages installed under /
    python checkset/build.py --check                          # verify the committed set only

The set is for judging colorization on photos that no training run sees: none of them comes
from ../shared/data, and none is one of the demo's examples (examples/ATTRIBUTION.md). Each
photo is looked up at its original path in its package, checked against the SHA-256 recorded
in sources.json (so a rebuild starts from byte-identical originals), converted to sRGB, downscaled with
Lanczos to at most 1024 px on its long side and saved as JPEG quality 90 without metadata. The
licence files, ATTRIBUTION.md and the counts in README.md are written from the same tables, so
sources.json (packages, photos, licence files: data, read by ``load_sources``) is the one place
to edit.

Getting the packages (any Debian machine; extracting needs no root). Most are in bookworm;
budgie-backgrounds, plasma-workspace-wallpapers and libjxl-testdata are trixie's,
gnome-backgrounds bullseye's (the newer gnome-backgrounds hold no photographs):

    mkdir -p /tmp/checkset-debs && cd /tmp/checkset-debs
    apt-get download enlightenment-data=0.25.4-2 kphotoalbum=5.9.1-1 \\
        lomiri-wallpapers-16.04=20.04.0-2 lxqt-themes=1.2.0-1 sddm-theme-maldives=0.19.0-5 \\
        python3-skimage=0.19.3-8 python3-sklearn=1.2.1+dfsg-1 \\
        gcompris-qt-data=3.1-2 tuxpaint-data=1:0.9.28-sdl2-1
    # the other four by their pool URLs (listed under "packages" in sources.json), e.g.
    #   curl -O http://deb.debian.org/debian/pool/main/b/budgie-backgrounds/budgie-backgrounds_3.0-1_all.deb
    for d in *.deb; do dpkg-deb -x "$d" root; done

The licence texts under /usr/share/common-licenses come from base-files, which every Debian
system has: "/" is always searched after the roots given. GCompris keeps its pictures inside
Qt resource bundles (.rcc); a photo or licence file with a "member" is read out of the bundle
at its path, and its SHA-256 is the member's.
"""

import argparse
import ast
import hashlib
import io
import json
import logging
import re
import struct
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

log = logging.getLogger("checkset.build")

HERE = Path(__file__).resolve().parent
MAX_SIDE = 1024
JPEG_QUALITY = 90
CATEGORIES = {
    "mountains": "mountain landscapes",
    "fields": "open land: fields, hills, tea terraces, dunes",
    "forest": "forest and woodland",
    "water": "sea, coast and lakes",
    "city": "streets, cities and buildings",
    "overcast": "overcast and cloudy days",
    "sunset": "sunsets and dusk",
    "autumn": "autumn colours",
    "colourless": "nearly colourless scenes: fog, snow, grey buildings",
    "red": "red and orange buildings and things",
}
COUNTS_BEGIN = "<!-- counts: written by checkset/build.py, do not edit by hand -->"
COUNTS_END = "<!-- /counts -->"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    suite: str
    url: str


@dataclass(frozen=True)
class Photo:
    category: str
    name: str
    package: str
    path: str
    sha256: str
    author: str
    licence: str
    licence_files: tuple[str, ...]
    note: str = ""
    # A file inside a Qt resource bundle (.rcc) at `path`; sha256 is then the member's.
    member: str = ""

    @property
    def file(self) -> str:
        return f"photos/{self.category}/{self.name}.jpg"


@dataclass(frozen=True)
class LicenceFile:
    dest: str
    package: str
    path: str
    # "" copies the file; "License: NAME" copies that paragraph of a machine-readable
    # Debian copyright file as plain text; "docstring:NAME" copies a function's docstring.
    extract: str = ""
    member: str = ""  # as Photo.member


# What is copied, and from where: data, not code (sources.json; edit it, then run this script).
SOURCES = HERE / "sources.json"


def load_sources(path: Path = SOURCES) -> tuple[dict[str, Package], list[Photo], list[LicenceFile]]:
    """The packages (by name), photos and licence files that sources.json lists."""
    data = json.loads(path.read_text(encoding="utf-8"))
    packages = {p["name"]: Package(**p) for p in data["packages"]}
    photos = [Photo(**{**p, "licence_files": tuple(p["licence_files"])}) for p in data["photos"]]
    return packages, photos, [LicenceFile(**f) for f in data["licence_files"]]


PACKAGES, PHOTOS, LICENCE_FILES = load_sources()


class SourceError(Exception):
    """An original file is missing or differs from the recorded one."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _where(package: str) -> str:
    p = PACKAGES[package]
    return f"package {p.name} {p.version} ({p.suite}; {p.url})"


def rcc_member(path: Path, member: str) -> bytes:
    """One file out of a Qt resource bundle (GCompris keeps its activities' images in these).

    Format 1-3: after "qres", big-endian version and the offsets of the tree, the data and the
    names; a tree entry is a name offset, flags (2: directory, 1: zlib-compressed) and either
    (child count, first child) or (locale, data offset), plus a timestamp from version 2 on.
    """
    d = path.read_bytes()
    if d[:4] != b"qres":
        raise SourceError(f"{path}: not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", d[4:20])
    if version not in (1, 2, 3):
        raise SourceError(f"{path}: Qt resource format {version}, not 1-3")
    size = 14 if version == 1 else 22

    def name(entry: int) -> str:
        off = names + struct.unpack(">I", d[entry : entry + 4])[0]
        n = struct.unpack(">H", d[off : off + 2])[0]
        return d[off + 6 : off + 6 + 2 * n].decode("utf-16-be")

    entry = tree  # the root directory
    for part in member.strip("/").split("/"):
        if not struct.unpack(">H", d[entry + 4 : entry + 6])[0] & 2:
            raise SourceError(f"{path}: no {member}")
        count, first = struct.unpack(">II", d[entry + 6 : entry + 14])
        children = (tree + i * size for i in range(first, first + count))
        entry = next((c for c in children if name(c) == part), None)
        if entry is None:
            raise SourceError(f"{path}: no {member}")
    flags = struct.unpack(">H", d[entry + 4 : entry + 6])[0]
    if flags & ~1:
        raise SourceError(f"{path}: {member} is a directory or compressed other than by zlib")
    off = data + struct.unpack(">I", d[entry + 10 : entry + 14])[0]
    blob = d[off + 4 : off + 4 + struct.unpack(">I", d[off : off + 4])[0]]
    if not flags & 1:
        return blob
    out = zlib.decompress(blob[4:])  # after Qt's 4-byte big-endian length of the result
    if len(out) != struct.unpack(">I", blob[:4])[0]:
        raise SourceError(f"{path}: {member} decompresses to another length than recorded")
    return out


def digest_of(src: Path, member: str = "") -> str:
    return hashlib.sha256(rcc_member(src, member)).hexdigest() if member else sha256(src)


def find(
    roots: list[Path], path: str, digest: str | None = None, member: str = ""
) -> tuple[Path, Path]:
    """(root, file) of the first copy of `path` under the roots (then /) with the digest."""
    seen = []
    for root in [*roots, Path("/")]:
        candidate = root / path.lstrip("/")
        if not candidate.is_file():
            continue
        if digest is None or digest_of(candidate, member) == digest:
            return root, candidate
        seen.append(str(candidate))
    where = f"{path}: {member}" if member else path
    if seen:
        raise SourceError(f"{where}: found {', '.join(seen)} but not with the recorded SHA-256")
    raise SourceError(f"{where}: not found")


def largest_embedded_jpeg(data: bytes) -> Image.Image:
    """Edje files hold each background at a dozen resolutions; the largest is the original."""
    best: Image.Image | None = None
    start = data.find(b"\xff\xd8\xff")
    while start >= 0:
        try:
            im = Image.open(io.BytesIO(data[start:]))
            if best is None or im.width * im.height > best.width * best.height:
                im.load()
                best = im
        except OSError:
            pass  # a marker inside other data, not the start of a JPEG
        start = data.find(b"\xff\xd8\xff", start + 1)
    if best is None:
        raise SourceError("no JPEG found inside the Edje file")
    return best


def to_srgb(im: Image.Image) -> Image.Image:
    """RGB in sRGB: the output carries no profile, so a wide-gamut original must be converted."""
    icc = im.info.get("icc_profile")
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    im = im.convert("RGB")
    if icc:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" not in ImageCms.getProfileDescription(src).lower():
            im = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
    return im


def prepare(src: Path, member: str = "") -> Image.Image:
    if member:
        im = Image.open(io.BytesIO(rcc_member(src, member)))
        im.load()
    elif src.suffix == ".edj":
        im = largest_embedded_jpeg(src.read_bytes())
    else:
        im = Image.open(src)
        im.load()
    im = to_srgb(ImageOps.exif_transpose(im))
    scale = MAX_SIDE / max(im.size)
    if scale < 1:  # never upscale: the small originals stay at their own size
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im


def deb822_licence(text: str, header: str) -> str:
    """The text of a stand-alone `License:` paragraph of a Debian copyright file.

    The same header also appears inside `Files:` paragraphs as a bare reference, so the
    paragraph wanted is the one whose header line is followed by indented text.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != header:
            continue
        body = []
        for cont in lines[i + 1 :]:
            if not cont.startswith((" ", "\t")):
                break
            body.append("" if cont.strip() == "." else cont[1:])
        if body:
            return "\n".join(body).rstrip() + "\n"
    raise SourceError(f"no '{header}' paragraph with its text")


def function_docstring(source: str, name: str) -> str:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            doc = ast.get_docstring(node)
            if doc:
                return (
                    f"Docstring of {name}() in scikit-image's skimage/data/_fetchers.py:\n\n{doc}\n"
                )
    raise SourceError(f"no docstring for {name}()")


def licence_text(src: Path, extract: str, member: str = "") -> bytes:
    if not extract:
        return rcc_member(src, member) if member else src.read_bytes()
    text = src.read_text(encoding="utf-8")
    try:
        if extract.startswith("License: "):
            return deb822_licence(text, extract).encode()
        if extract.startswith("docstring:"):
            return function_docstring(text, extract.split(":", 1)[1]).encode()
    except SourceError as e:
        raise SourceError(f"{src}: {e}") from None
    raise ValueError(f"unknown extract {extract!r}")


def render_attribution() -> str:
    rows = [
        "# Out-of-source check set: sources and licences",
        "",
        "Written by `checkset/build.py` from its tables; edit those, not this file. Every photo",
        "was taken from a Debian package (the version below), converted to sRGB, downscaled with",
        f"Lanczos to at most {MAX_SIDE} px on its long side (smaller originals kept at their size)",
        f"and saved as JPEG quality {JPEG_QUALITY} with its metadata dropped; nothing else was",
        "changed. The licence and copyright files named in the last column are in `licenses/`.",
        "Where a package's Debian copyright file and the photo's own upstream record differ, both",
        "are given.",
        "",
        "| file | category | package (version) | original path | author | licence | notes | licence files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in PHOTOS:
        pkg = PACKAGES[p.package]
        files = ", ".join(f"`{f}`" for f in p.licence_files)
        rows.append(
            f"| `{p.file}` | {p.category} | `{pkg.name}` ({pkg.version}) | `{p.path}`"
            + (f", inside it `{p.member}`" if p.member else "")
            + " "
            f"| {p.author} | {p.licence} | {p.note} | {files} |"
        )
    rows += [
        "",
        "## Packages",
        "",
        "| package | version | Debian suite | download |",
        "|---|---|---|---|",
    ]
    used = {p.package for p in PHOTOS}
    for name in sorted(used):
        pkg = PACKAGES[name]
        rows.append(f"| `{pkg.name}` | {pkg.version} | {pkg.suite} | <{pkg.url}> |")
    rows += [
        "",
        "Upstream records cited above: KPhotoAlbum's `.reuse/dep5`",
        "(<https://invent.kde.org/graphics/kphotoalbum>: `demo/*.jpg`, 2003-2007 Jesper K.",
        "Pedersen, CC-BY-SA-4.0); GNOME's `AUTHORS`, shipped in the package and copied to",
        "`licenses/gnome-backgrounds.AUTHORS`; each Plasma wallpaper's `metadata.json`, copied to",
        "`licenses/plasma-*.metadata.json`; the LXQt wallpapers' `License` file, copied to",
        "`licenses/lxqt-themes.wallpapers-License`; GCompris's `explore_monuments` README (inside",
        "`explore_monuments.rcc`: each monument photo's author, Commons source and licence), copied",
        "to `licenses/gcompris-explore_monuments.README`.",
        "",
    ]
    return "\n".join(rows)


def render_counts() -> str:
    counts = Counter(p.category for p in PHOTOS)
    rows = [COUNTS_BEGIN, "", "| category | what | photos |", "|---|---|---|"]
    rows += [f"| `{c}` | {what} | {counts[c]} |" for c, what in CATEGORIES.items()]
    rows += [f"| all | | {len(PHOTOS)} |", "", COUNTS_END]
    return "\n".join(rows)


def readme_with_counts(readme: str) -> str:
    pattern = re.compile(re.escape(COUNTS_BEGIN) + ".*?" + re.escape(COUNTS_END), re.S)
    if not pattern.search(readme):
        raise SourceError(f"README.md lacks the {COUNTS_BEGIN!r} ... {COUNTS_END!r} block")
    return pattern.sub(lambda _: render_counts(), readme)


def validate_tables() -> None:
    names = [p.file for p in PHOTOS]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise SourceError(f"duplicate photo files: {dupes}")
    known = {f.dest for f in LICENCE_FILES}
    for p in PHOTOS:
        if p.category not in CATEGORIES:
            raise SourceError(f"{p.file}: unknown category {p.category!r}")
        missing = [f for f in p.licence_files if f not in known]
        if missing:
            raise SourceError(f"{p.file}: licence files not in LICENCE_FILES: {missing}")


def build(roots: list[Path], out: Path) -> None:
    validate_tables()
    # Resolve every original before writing anything, so a missing package leaves the
    # committed set as it was and the error lists everything that is missing at once.
    errors = []
    sources: dict[str, Path] = {}
    package_root: dict[str, Path] = {}
    for p in PHOTOS:
        try:
            root, sources[p.file] = find(roots, p.path, p.sha256, p.member)
            package_root.setdefault(p.package, root)
        except SourceError as e:
            errors.append(f"{e} ({_where(p.package)})")
    licences: dict[str, bytes] = {}
    for lf in LICENCE_FILES:
        # A licence file has no recorded digest (the texts do not decide the photos), so it is
        # taken from the tree its package's photos came from: another version's copyright
        # file or metadata.json could name other authors or licences.
        first = [package_root[lf.package]] if lf.package in package_root else []
        try:
            src = find(first + roots, lf.path, member=lf.member)[1]
            licences[lf.dest] = licence_text(src, lf.extract, lf.member)
        except SourceError as e:
            errors.append(f"{e} ({_where(lf.package)})")
    readme = out / "README.md"
    try:
        readme_text = readme_with_counts(readme.read_text(encoding="utf-8"))
    except (OSError, SourceError) as e:
        errors.append(str(e))
    if errors:
        raise SourceError("cannot build the check set:\n  " + "\n  ".join(errors))

    for p in PHOTOS:
        dst = out / p.file
        dst.parent.mkdir(parents=True, exist_ok=True)
        prepare(sources[p.file], p.member).save(dst, "JPEG", quality=JPEG_QUALITY, optimize=True)
        log.info("%s <- %s", p.file, sources[p.file])
    (out / "licenses").mkdir(parents=True, exist_ok=True)
    for lf in LICENCE_FILES:
        (out / "licenses" / lf.dest).write_bytes(licences[lf.dest])
    (out / "ATTRIBUTION.md").write_text(render_attribution(), encoding="utf-8")
    readme.write_text(readme_text, encoding="utf-8")
    extra = sorted(
        str(f.relative_to(out))
        for f in (out / "photos").rglob("*")
        if f.is_file() and str(f.relative_to(out)) not in sources
    )
    if extra:
        log.warning("files under photos/ that the table does not name (left alone): %s", extra)
    total = sum((out / p.file).stat().st_size for p in PHOTOS)
    log.info("%d photos, %.2f MB", len(PHOTOS), total / 1e6)


def check(out: Path) -> list[str]:
    """Problems with the committed set, without needing the packages."""
    validate_tables()
    problems = []
    for p in PHOTOS:
        f = out / p.file
        if not f.is_file():
            problems.append(f"missing {p.file}")
            continue
        with Image.open(f) as im:
            if im.format != "JPEG" or im.mode != "RGB" or max(im.size) > MAX_SIDE:
                problems.append(f"{p.file}: {im.format} {im.mode} {im.size}")
    named = {p.file for p in PHOTOS}
    for f in sorted((out / "photos").rglob("*")):
        if f.is_file() and str(f.relative_to(out)) not in named:
            problems.append(f"{f.relative_to(out)} is not in the table")
    for lf in LICENCE_FILES:
        if not (out / "licenses" / lf.dest).is_file():
            problems.append(f"missing licenses/{lf.dest}")
    attribution = out / "ATTRIBUTION.md"
    if not attribution.is_file() or attribution.read_text(encoding="utf-8") != render_attribution():
        problems.append("ATTRIBUTION.md is not what the table gives (run build.py)")
    readme = (out / "README.md").read_text(encoding="utf-8")
    if render_counts() not in readme:
        problems.append("README.md's counts are not what the table gives (run build.py)")
    return problems


def difference_hash(path: Path, n: int = 16) -> list[bool]:
    """Signs of horizontal brightness steps on an n x n grid: robust to scale and recompression."""
    with Image.open(path) as im:
        im.draft("L", (4 * n, 4 * n))  # JPEG decodes at reduced size: fast over thousands
        px = im.convert("L").resize((n + 1, n), Image.Resampling.BILINEAR).tobytes()
    return [px[r * (n + 1) + c + 1] > px[r * (n + 1) + c] for r in range(n) for c in range(n)]


def nearest_in(data: Path, out: Path) -> list[tuple[int, str, str]]:
    """For each photo, the most similar image under `data` by difference-hash distance.

    The set must share no photo with the training data; a distance near 0 (of 256) would be
    a duplicate, unrelated photos sit far above 10.
    """
    ours = [(p.file, difference_hash(out / p.file)) for p in PHOTOS]
    best = {name: (257, "") for name, _ in ours}
    for f in sorted(data.rglob("*")):
        if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        h = difference_hash(f)
        for name, mine in ours:
            d = sum(a != b for a, b in zip(mine, h, strict=True))
            if d < best[name][0]:
                best[name] = (d, str(f))
    return sorted((d, name, f) for name, (d, f) in best.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--root",
        action="append",
        type=Path,
        default=[],
        help="directory holding the packages' files at their installed paths (repeatable; "
        "/ is searched last)",
    )
    ap.add_argument("--out", type=Path, default=HERE, help="the check set's folder")
    ap.add_argument("--check", action="store_true", help="verify the committed set only")
    ap.add_argument(
        "--nearest-in",
        type=Path,
        metavar="DATA",
        help="print each photo's nearest image under DATA (e.g. ../shared/data) and exit",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.nearest_in:
        for d, name, f in nearest_in(args.nearest_in, args.out):
            log.info("%3d  %s  %s", d, name, f)
        return 0
    try:
        if args.check:
            problems = check(args.out)
            for line in problems:
                log.error(line)
            if not problems:
                log.info("check set consistent: %d photos", len(PHOTOS))
            return 1 if problems else 0
        build(args.root, args.out)
    except SourceError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
