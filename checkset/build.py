"""Rebuild the out-of-source check set (checkset/photos) from the Debian packages it came from.

    python checkset/build.py --root /tmp/checkset-debs/root   # packages extracted there
    python checkset/build.py                                  # packages installed under /
    python checkset/build.py --check                          # verify the committed set only

The set is for judging colorization on photos that no training run sees: none of them comes
from ../shared/data, and none is one of the demo's examples (examples/ATTRIBUTION.md). Each
photo is looked up at its original path in its package, checked against the SHA-256 recorded
below (so a rebuild starts from byte-identical originals), converted to sRGB, downscaled with
Lanczos to at most 1024 px on its long side and saved as JPEG quality 90 without metadata. The
licence files, ATTRIBUTION.md and the counts in README.md are written from the same tables, so
the tables in this file are the one place to edit.

Getting the packages (any Debian machine; extracting needs no root). Most are in bookworm;
budgie-backgrounds and plasma-workspace-wallpapers are trixie's, gnome-backgrounds bullseye's
(the newer gnome-backgrounds hold no photographs):

    mkdir -p /tmp/checkset-debs && cd /tmp/checkset-debs
    apt-get download enlightenment-data=0.25.4-2 kphotoalbum=5.9.1-1 \\
        lomiri-wallpapers-16.04=20.04.0-2 lxqt-themes=1.2.0-1 sddm-theme-maldives=0.19.0-5 \\
        python3-skimage=0.19.3-8 python3-sklearn=1.2.1+dfsg-1
    # the other three by their pool URLs (listed in PACKAGES below), e.g.
    #   curl -O http://deb.debian.org/debian/pool/main/b/budgie-backgrounds/budgie-backgrounds_3.0-1_all.deb
    for d in *.deb; do dpkg-deb -x "$d" root; done

The licence texts under /usr/share/common-licenses come from base-files, which every Debian
system has: "/" is always searched after the roots given.
"""

import argparse
import ast
import hashlib
import io
import logging
import re
import sys
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
}
COUNTS_BEGIN = "<!-- counts: written by checkset/build.py, do not edit by hand -->"
COUNTS_END = "<!-- /counts -->"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    suite: str
    url: str


_POOL = "http://deb.debian.org/debian/pool/main"
PACKAGES = {
    p.name: p
    for p in [
        Package(
            "budgie-backgrounds",
            "3.0-1",
            "trixie",
            f"{_POOL}/b/budgie-backgrounds/budgie-backgrounds_3.0-1_all.deb",
        ),
        Package(
            "plasma-workspace-wallpapers",
            "4:6.3.4-1",
            "trixie",
            f"{_POOL}/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_6.3.4-1_all.deb",
        ),
        Package(
            "gnome-backgrounds",
            "3.38.0-1",
            "bullseye",
            f"{_POOL}/g/gnome-backgrounds/gnome-backgrounds_3.38.0-1_all.deb",
        ),
        Package(
            "lomiri-wallpapers-16.04",
            "20.04.0-2",
            "bookworm",
            f"{_POOL}/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb",
        ),
        Package(
            "enlightenment-data",
            "0.25.4-2",
            "bookworm",
            f"{_POOL}/e/e17/enlightenment-data_0.25.4-2_all.deb",
        ),
        Package(
            "kphotoalbum",
            "5.9.1-1",
            "bookworm",
            f"{_POOL}/k/kphotoalbum/kphotoalbum_5.9.1-1_amd64.deb",
        ),
        Package(
            "lxqt-themes",
            "1.2.0-1",
            "bookworm",
            f"{_POOL}/l/lxqt-themes/lxqt-themes_1.2.0-1_all.deb",
        ),
        Package(
            "sddm-theme-maldives",
            "0.19.0-5",
            "bookworm",
            f"{_POOL}/s/sddm/sddm-theme-maldives_0.19.0-5_all.deb",
        ),
        Package(
            "python3-skimage",
            "0.19.3-8",
            "bookworm",
            f"{_POOL}/s/skimage/python3-skimage_0.19.3-8_all.deb",
        ),
        Package(
            "python3-sklearn",
            "1.2.1+dfsg-1",
            "bookworm",
            f"{_POOL}/s/scikit-learn/python3-sklearn_1.2.1%2bdfsg-1_all.deb",
        ),
        Package("base-files", "any", "any", "(installed on every Debian system)"),
    ]
}


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

    @property
    def file(self) -> str:
        return f"photos/{self.category}/{self.name}.jpg"


# Shorthands for the licence files that many rows share.
_BUDGIE = ("budgie-backgrounds.copyright", "CC0-1.0.txt")
_KPA = ("kphotoalbum.copyright", "CC-BY-SA-4.0.txt", "GPL-2.txt")
_LXQT = ("lxqt-themes.wallpapers-License", "lxqt-themes.copyright", "CC-BY-SA-3.0.txt")
_E = ("enlightenment-data.copyright",)
_GNOME = ("gnome-backgrounds.AUTHORS", "gnome-backgrounds.copyright", "CC0-1.0.txt")


def _plasma(name: str) -> tuple[str, ...]:
    return (
        f"plasma-{name}.metadata.json",
        "plasma-workspace-wallpapers.copyright",
        "LGPL-3.txt",
        "GPL-3.txt",
        "GPL-2.txt",
    )


_BUDGIE_AUTHOR = "not recorded (upstream accepts only CC0 or public-domain submissions)"
_PLASMA_LIC = "LGPL-3 (the wallpaper's metadata.json)"
_PLASMA_NOTE = "Debian's copyright file puts the whole package under GPL-2+"
_KPA_AUTHOR = "Jesper K. Pedersen, 2003-2007"
_KPA_LIC = "CC BY-SA 4.0 (upstream .reuse/dep5) / GPL-2+ (Debian copyright)"
_LXQT_LIC = "CC BY-SA 3.0 (the package's wallpapers/License)"
_E_AUTHOR = "not named (Enlightenment authors)"
_E_LIC = "BSD-2-clause (Debian copyright, Files: *)"
_E_NOTE = "largest of the JPEGs embedded in the Edje file"
_GNOME_NOTE = "Debian's copyright file predates this photo; its licence is in upstream's AUTHORS"

_BG = "/usr/share/backgrounds"
_PW = "/usr/share/wallpapers"
_EB = "/usr/share/enlightenment/data/backgrounds"
_KD = "/usr/share/kphotoalbum/demo"
_LW = "/usr/share/lxqt/wallpapers"

PHOTOS = [
    # mountains
    Photo(
        "mountains",
        "lake_sherburne",
        "budgie-backgrounds",
        f"{_BG}/budgie/lake-sherburne.jpg",
        "85881b53de866a521bd806b481d444b7c3a45eee773eefdffaad46e7fb968470",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
    ),
    Photo(
        "mountains",
        "annapurna_blue_hour",
        "plasma-workspace-wallpapers",
        f"{_PW}/Mountain/contents/images/5120x2880.png",
        "a80e07be9ac8c6e366eccdb68b16fb62dbee673a798e5d7721c791fbf3b146c3",
        "Andy Betts",
        "CC BY-SA 4.0 (the wallpaper's metadata.json)",
        (
            "plasma-Mountain.metadata.json",
            "plasma-workspace-wallpapers.copyright",
            "CC-BY-SA-4.0.txt",
            "GPL-2.txt",
        ),
        _PLASMA_NOTE,
    ),
    Photo(
        "mountains",
        "grand_canyon",
        "kphotoalbum",
        f"{_KD}/grand_canyon_3.jpg",
        "923ba3a8d16993388f19686d333d70988f7baf4885865af1729f80bbbd02ffe7",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original (compact camera)",
    ),
    Photo(
        "mountains",
        "valendas_clouds",
        "lxqt-themes",
        f"{_LW}/Valendas.png",
        "f2d275c51d116942cea8e7d80d30c7d3c130349a0695caf2aa235f926ae15759",
        "not named (LXQt Project Team)",
        _LXQT_LIC,
        _LXQT,
        "overcast sky over the ridges",
    ),
    # fields
    Photo(
        "fields",
        "tea_gardens_mist",
        "budgie-backgrounds",
        f"{_BG}/budgie/tea-gardens.jpg",
        "1d7377e9903b29a3e983f1184a3112e50a6b45e65382c491f5c02e20e2861e20",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
        "yellow-green cast in the mist",
    ),
    Photo(
        "fields",
        "desert_dune_hike",
        "budgie-backgrounds",
        f"{_BG}/budgie/extreme-desert-hike.jpg",
        "beed5bc6a2c99b026f869b588be5e32b0c77adb209535975d0e015eb5e7da839",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
    ),
    Photo(
        "fields",
        "green_hills",
        "lxqt-themes",
        f"{_LW}/this-is-not-windows.jpg",
        "2d885e0438c0ab244f818d33d8f745a1cc486558462faf9bf3948675c68ac227",
        "stefonarch (credited in wallpapers/License)",
        _LXQT_LIC,
        _LXQT,
    ),
    Photo(
        "fields",
        "fog_over_field",
        "lxqt-themes",
        f"{_LW}/fog.jpg",
        "a8235344ee6b5ab1b6de3ccef731bcc0e6509cf33ce832db87eae1eb75987083",
        "stefonarch (credited in wallpapers/License)",
        _LXQT_LIC,
        _LXQT,
    ),
    # forest
    Photo(
        "forest",
        "forest_path",
        "plasma-workspace-wallpapers",
        f"{_PW}/Path/contents/images/2560x1600.jpg",
        "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
        "Risto Saukonpää",
        _PLASMA_LIC,
        _plasma("Path"),
        _PLASMA_NOTE,
    ),
    Photo(
        "forest",
        "snowy_forest_aerial",
        "gnome-backgrounds",
        f"{_BG}/gnome/ColdWarm.jpg",
        "b31f8bd5f6f2a16d91fbb7644aeaaf1e6f1254213768cc6bc71151f1e142f1b1",
        "invisiblepower (Pexels)",
        "CC0 (upstream AUTHORS)",
        _GNOME,
        _GNOME_NOTE,
    ),
    Photo(
        "forest",
        "maple_canopy",
        "enlightenment-data",
        f"{_EB}/Green-Maple.edj",
        "78178a3f9af4372ac532c57cb9470209658ee3c21c381ccba5f7607dca090e46",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    Photo(
        "forest",
        "bamboo",
        "enlightenment-data",
        f"{_EB}/Bamboo.edj",
        "53ea365cefdf42f49d68b1415a2255b74a8e4594fe78d7c39c5af60a6e897097",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    # water
    Photo(
        "water",
        "tidal_flat_bridge",
        "lomiri-wallpapers-16.04",
        f"{_BG}/Bridge_by_Sander_Klootwijk.jpg",
        "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
        "Sander Klootwijk, 2018",
        "CC BY-SA 4.0",
        ("lomiri-wallpapers-16.04.copyright", "CC-BY-SA-4.0.txt"),
    ),
    Photo(
        "water",
        "maldives_jetty",
        "sddm-theme-maldives",
        "/usr/share/sddm/themes/maldives/background.jpg",
        "032d28ee4f3d885e9340ae430457fd59341e9fbf8ca45502d86ad14362ffb4a0",
        "Nevit Dilmen, 2008 (Wikimedia Commons)",
        "CC BY 3.0 <https://creativecommons.org/licenses/by/3.0/>",
        ("sddm-theme-maldives.copyright",),
    ),
    Photo(
        "water",
        "skagen_coast_aerial",
        "kphotoalbum",
        f"{_KD}/skagen_2.jpg",
        "17ca43c9fb3b60ad27c63e3a418bff2090999e96bd7a9c7f2c46fb58de899a72",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original, shot through an aircraft window",
    ),
    Photo(
        "water",
        "lake_pier",
        "plasma-workspace-wallpapers",
        f"{_PW}/BytheWater/contents/images/2560x1600.jpg",
        "cf8947583a16d80b83851420f14a15ebea080e7babb9c7cc4cc08b2bfd1e72b6",
        "Maciej Wiklo",
        _PLASMA_LIC,
        _plasma("BytheWater"),
        _PLASMA_NOTE + "; toned (vintage look) by its author",
    ),
    Photo(
        "water",
        "lake_summer_night",
        "plasma-workspace-wallpapers",
        f"{_PW}/summer_1am/contents/images/2560x1600.jpg",
        "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
        "Risto Saukonpää",
        _PLASMA_LIC,
        _plasma("summer_1am"),
        _PLASMA_NOTE,
    ),
    # city
    Photo(
        "city",
        "beacon_street_sunset",
        "budgie-backgrounds",
        f"{_BG}/budgie/beacon-street-sunset.jpg",
        "d77a97bfbb28fa6b2b4c93ad2857894afd38c13f450655942be077118bb9e3f1",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
        "also a warm sunset scene",
    ),
    Photo(
        "city",
        "singapore_skyline_dusk",
        "budgie-backgrounds",
        f"{_BG}/budgie/singaporean-cityscape.jpg",
        "f636392cae58e2cfd478838a8e4d3a3aa0b7c1ecf7be77932c394d649f783363",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
    ),
    Photo(
        "city",
        "colosseum",
        "budgie-backgrounds",
        f"{_BG}/budgie/roman-colosseum.jpg",
        "3a085abab563afcdcfc3009fa126bbceb426921dd5bcdbb6f08fb0a601568030",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
    ),
    Photo(
        "city",
        "casa_mila_courtyard",
        "budgie-backgrounds",
        f"{_BG}/budgie/casa-mila.jpg",
        "5c7b24e463e3ca90cfead8c7fb4a0e0362980e7ff43aa5e877d6a186338977bf",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
    ),
    Photo(
        "city",
        "high_trestle_bridge_night",
        "budgie-backgrounds",
        f"{_BG}/budgie/high-trestle-trail.jpg",
        "3fa56b607d41e658acc589b0e8306f96ec4ea33cbd8d5d8d4d8a688585fb1fe2",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
        "lit by blue lamps at night",
    ),
    Photo(
        "city",
        "summer_palace",
        "python3-sklearn",
        "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
        "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
        "danielbuechele (Flickr)",
        "CC BY 2.0 <https://creativecommons.org/licenses/by/2.0/>",
        ("sklearn-images-README.txt", "python3-sklearn.copyright"),
        "scikit-learn's china.jpg, 640 px; licence in the images' README.txt",
    ),
    Photo(
        "city",
        "rocket_launch_pad",
        "python3-skimage",
        "/usr/lib/python3/dist-packages/skimage/data/rocket.jpg",
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        "SpaceX",
        "public domain (SpaceX release, per scikit-image's rocket() docstring)",
        ("skimage-rocket.txt", "python3-skimage.copyright"),
        "scikit-image's rocket.jpg, 640 px; Adobe RGB original converted to sRGB",
    ),
    # overcast
    Photo(
        "overcast",
        "sun_rays_hills",
        "lxqt-themes",
        f"{_LW}/beam.png",
        "3d199194b048cb793c0ad558337cda3e16f14cd054168d1d813620e24a0a5659",
        "stefonarch (credited in wallpapers/License)",
        _LXQT_LIC,
        _LXQT,
    ),
    Photo(
        "overcast",
        "god_rays",
        "enlightenment-data",
        f"{_EB}/God-Rays.edj",
        "95791b71c50280c52135b767cd8e14420b196c92e29162964badfd20968adae1",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    Photo(
        "overcast",
        "grey_sea_skagen",
        "kphotoalbum",
        f"{_KD}/skagen.jpg",
        "d7c724e47d68b9f9483b14a9a21235c2ba6c9b3bffd1be49a344391e4c189760",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original (compact camera)",
    ),
    Photo(
        "overcast",
        "beach_overcast",
        "kphotoalbum",
        f"{_KD}/cold_water.jpg",
        "1c92d774263012891803360080a03999ffdb4fb643f320d9c106b5a3cbb21306",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original; people in the foreground",
    ),
    Photo(
        "overcast",
        "misty_lake_dusk",
        "plasma-workspace-wallpapers",
        f"{_PW}/DarkestHour/contents/images/2560x1600.jpg",
        "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce",
        "Risto Saukonpää",
        _PLASMA_LIC,
        _plasma("DarkestHour"),
        _PLASMA_NOTE + "; nearly monochrome blue",
    ),
    # sunset
    Photo(
        "sunset",
        "evening_glow_boats",
        "plasma-workspace-wallpapers",
        f"{_PW}/EveningGlow/contents/images/2560x1600.jpg",
        "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
        "Ian Hex",
        _PLASMA_LIC,
        _plasma("EveningGlow"),
        _PLASMA_NOTE + "; HDR-processed look",
    ),
    Photo(
        "sunset",
        "sea_sunset",
        "gnome-backgrounds",
        f"{_BG}/gnome/SeaSunset.jpg",
        "df7a52b652dc381ce7ddb20db2c229af2222f167193e02920919043a58087fac",
        "Sebastian Voortman (Pexels)",
        "CC0 (upstream AUTHORS)",
        _GNOME,
        _GNOME_NOTE,
    ),
    Photo(
        "sunset",
        "sunset_clouds",
        "enlightenment-data",
        f"{_EB}/Sunset-Clouds.edj",
        "9b2041d7107f966e036c0fc97ed40fda657f2930d2e37360ce46fbb216211c45",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    Photo(
        "sunset",
        "after_the_rain",
        "lxqt-themes",
        f"{_LW}/after-the-rain.jpg",
        "e6cb8b3e09b904cc493ff17fddcd564d4e46a1761d05adf972c285a1fd878234",
        "Stef Binde (its EXIF); stefonarch in wallpapers/License",
        _LXQT_LIC,
        _LXQT,
    ),
    Photo(
        "sunset",
        "sunset_treeline",
        "kphotoalbum",
        f"{_KD}/sunset.jpg",
        "da4a44a03272bbaabc9aa384137f2531fe2a7c0075bc761be001c7b4d2eeb4ee",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original (compact camera)",
    ),
    # autumn
    Photo(
        "autumn",
        "fallen_leaf",
        "plasma-workspace-wallpapers",
        f"{_PW}/FallenLeaf/contents/images/2560x1600.jpg",
        "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
        "Martin Klapetek",
        _PLASMA_LIC,
        _plasma("FallenLeaf"),
        _PLASMA_NOTE + "; close view, shallow focus",
    ),
    Photo(
        "autumn",
        "red_maple",
        "enlightenment-data",
        f"{_EB}/Red-Maple.edj",
        "53ea5bf96fe8227c18fd2f27536cf46fea33bdb3db8c154eb412ce1127c54882",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    Photo(
        "autumn",
        "autumn_woods_dog",
        "kphotoalbum",
        f"{_KD}/donna.jpg",
        "c98f91990752bb6dff72bd8bb2820dc28317051c0e60ddf11822a39f076c31da",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original; bare trees, leaf litter",
    ),
    # colourless
    Photo(
        "colourless",
        "pier_in_fog",
        "plasma-workspace-wallpapers",
        f"{_PW}/ColdRipple/contents/images/2560x1600.jpg",
        "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
        "Risto Saukonpää",
        _PLASMA_LIC,
        _plasma("ColdRipple"),
        _PLASMA_NOTE + "; monochrome original (chroma exactly 0)",
    ),
    Photo(
        "colourless",
        "grey_facade",
        "plasma-workspace-wallpapers",
        f"{_PW}/Grey/contents/images/2560x1600.jpg",
        "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
        "Sigi Sagi",
        _PLASMA_LIC,
        _plasma("Grey"),
        _PLASMA_NOTE + "; monochrome original (chroma exactly 0)",
    ),
    Photo(
        "colourless",
        "piazza_gae_aulenti",
        "budgie-backgrounds",
        f"{_BG}/budgie/piazza-gae-aulenti.jpg",
        "f5a33cc32e1e3c453cfbeb0778f989fb2af704b5a7de2d0dc04f8bb3bb3e588c",
        _BUDGIE_AUTHOR,
        "CC0 1.0",
        _BUDGIE,
        "grey tower and sky framed by a dark walkway",
    ),
    Photo(
        "colourless",
        "snow_trees",
        "enlightenment-data",
        f"{_EB}/Snow-Trees.edj",
        "09da5c21c6ff02628c61bb6c60e0760a0b5996d022bfddbf0bed6ef620ce5b5b",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE,
    ),
    Photo(
        "colourless",
        "airport_snow",
        "kphotoalbum",
        f"{_KD}/snow.jpg",
        "7106574608681e7e3387bdc299663cbce521099e9fbff611decf227ee19e7780",
        _KPA_AUTHOR,
        _KPA_LIC,
        _KPA,
        "800 px original; snowed-in airport apron",
    ),
    Photo(
        "colourless",
        "dark_peaks_dusk",
        "enlightenment-data",
        f"{_EB}/Peaks.edj",
        "25e7cd527440f434de0ac779a66d0a0704b5d0974405c60409beb257543f0ceb",
        _E_AUTHOR,
        _E_LIC,
        _E,
        _E_NOTE + "; darkened by its author to almost black and grey",
    ),
]


@dataclass(frozen=True)
class LicenceFile:
    dest: str
    package: str
    path: str
    # "" copies the file; "License: NAME" copies that paragraph of a machine-readable
    # Debian copyright file as plain text; "docstring:NAME" copies a function's docstring.
    extract: str = ""


_CL = "/usr/share/common-licenses"
LICENCE_FILES = [
    LicenceFile("CC0-1.0.txt", "base-files", f"{_CL}/CC0-1.0"),
    LicenceFile("GPL-2.txt", "base-files", f"{_CL}/GPL-2"),
    LicenceFile("GPL-3.txt", "base-files", f"{_CL}/GPL-3"),
    LicenceFile("LGPL-3.txt", "base-files", f"{_CL}/LGPL-3"),
    # lomiri's copyright file carries the full CC texts that Debian's common-licenses lacks.
    LicenceFile(
        "CC-BY-SA-4.0.txt",
        "lomiri-wallpapers-16.04",
        "/usr/share/doc/lomiri-wallpapers-16.04/copyright",
        "License: CC-BY-SA-4.0",
    ),
    LicenceFile(
        "CC-BY-SA-3.0.txt",
        "lomiri-wallpapers-16.04",
        "/usr/share/doc/lomiri-wallpapers-16.04/copyright",
        "License: CC-BY-SA-3.0",
    ),
    LicenceFile(
        "lomiri-wallpapers-16.04.copyright",
        "lomiri-wallpapers-16.04",
        "/usr/share/doc/lomiri-wallpapers-16.04/copyright",
    ),
    LicenceFile(
        "budgie-backgrounds.copyright",
        "budgie-backgrounds",
        "/usr/share/doc/budgie-backgrounds/copyright",
    ),
    LicenceFile(
        "plasma-workspace-wallpapers.copyright",
        "plasma-workspace-wallpapers",
        "/usr/share/doc/plasma-workspace-wallpapers/copyright",
    ),
    *[
        LicenceFile(
            f"plasma-{name}.metadata.json",
            "plasma-workspace-wallpapers",
            f"{_PW}/{name}/metadata.json",
        )
        for name in sorted(
            {p.path.split("/")[4] for p in PHOTOS if p.package == "plasma-workspace-wallpapers"}
        )
    ],
    LicenceFile(
        "gnome-backgrounds.copyright",
        "gnome-backgrounds",
        "/usr/share/doc/gnome-backgrounds/copyright",
    ),
    LicenceFile(
        "gnome-backgrounds.AUTHORS", "gnome-backgrounds", "/usr/share/doc/gnome-backgrounds/AUTHORS"
    ),
    LicenceFile(
        "enlightenment-data.copyright",
        "enlightenment-data",
        "/usr/share/doc/enlightenment-data/copyright",
    ),
    LicenceFile("kphotoalbum.copyright", "kphotoalbum", "/usr/share/doc/kphotoalbum/copyright"),
    LicenceFile("lxqt-themes.copyright", "lxqt-themes", "/usr/share/doc/lxqt-themes/copyright"),
    LicenceFile("lxqt-themes.wallpapers-License", "lxqt-themes", f"{_LW}/License"),
    LicenceFile(
        "sddm-theme-maldives.copyright",
        "sddm-theme-maldives",
        "/usr/share/doc/sddm-theme-maldives/copyright",
    ),
    LicenceFile(
        "python3-skimage.copyright", "python3-skimage", "/usr/share/doc/python3-skimage/copyright"
    ),
    LicenceFile(
        "skimage-rocket.txt",
        "python3-skimage",
        "/usr/lib/python3/dist-packages/skimage/data/_fetchers.py",
        "docstring:rocket",
    ),
    LicenceFile(
        "python3-sklearn.copyright", "python3-sklearn", "/usr/share/doc/python3-sklearn/copyright"
    ),
    LicenceFile(
        "sklearn-images-README.txt",
        "python3-sklearn",
        "/usr/lib/python3/dist-packages/sklearn/datasets/images/README.txt",
    ),
]


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


def find(roots: list[Path], path: str, digest: str | None = None) -> tuple[Path, Path]:
    """(root, file) of the first copy of `path` under the roots (then /) with the digest."""
    seen = []
    for root in [*roots, Path("/")]:
        candidate = root / path.lstrip("/")
        if not candidate.is_file():
            continue
        if digest is None or sha256(candidate) == digest:
            return root, candidate
        seen.append(str(candidate))
    if seen:
        raise SourceError(f"{path}: found {', '.join(seen)} but not with the recorded SHA-256")
    raise SourceError(f"{path}: not found")


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


def prepare(src: Path) -> Image.Image:
    if src.suffix == ".edj":
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


def licence_text(src: Path, extract: str) -> bytes:
    if not extract:
        return src.read_bytes()
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
            f"| `{p.file}` | {p.category} | `{pkg.name}` ({pkg.version}) | `{p.path}` "
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
        "`licenses/lxqt-themes.wallpapers-License`.",
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
            root, sources[p.file] = find(roots, p.path, p.sha256)
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
            licences[lf.dest] = licence_text(find(first + roots, lf.path)[1], lf.extract)
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
        prepare(sources[p.file]).save(dst, "JPEG", quality=JPEG_QUALITY, optimize=True)
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
