"""Search terms per landmark class, shared by every source.

Terms name well-photographed places so that search results are mostly photos of the class. A class that is
added to `core/classes.yaml` without terms here is searched by its English name.
"""

from __future__ import annotations

QUERIES: dict[str, tuple[str, ...]] = {
    "waterfalls_lakes": (
        "Plitvice Lakes",
        "Niagara Falls",
        "Iguazu Falls",
        "Lake Moraine Banff",
        "Krka waterfalls",
        "Seljalandsfoss",
    ),
    "pyramids": (
        "Pyramids of Giza",
        "Great Pyramid of Giza",
        "Pyramid of Khafre",
        "Giza pyramid complex Sphinx",
        "Pyramid of Djoser",
        "Teotihuacan Pyramid of the Sun",
    ),
    "colorful_mountains": (
        "Zhangye Danxia",
        "Rainbow Mountain Vinicunca",
        "Danxia landform",
        "Painted Hills Oregon",
        "Landmannalaugar mountains",
    ),
    "moscow_kremlin": (
        "Moscow Kremlin",
        "Kremlin wall towers Moscow",
        "Spasskaya Tower",
        "Red Square Moscow",
        "Saint Basil's Cathedral",
    ),
    "ancient_ruins": (
        "Machu Picchu",
        "Petra Al-Khazneh",
        "Angkor Wat",
        "Roman Forum ruins",
        "Parthenon Acropolis",
        "Palmyra ruins",
    ),
    "towers_skyscrapers": (
        "Eiffel Tower",
        "Burj Khalifa",
        "Shanghai Tower",
        "Empire State Building",
        "Petronas Towers",
        "CN Tower",
    ),
    "cappadocia_balloons": (
        "Cappadocia hot air balloons",
        "Göreme balloons",
        "hot air balloons Cappadocia sunrise",
        "Cappadocia fairy chimneys balloons",
    ),
    "pillar_mountains": (
        "Zhangjiajie National Forest Park",
        "Tianzi Mountain",
        "Avatar Hallelujah Mountain Zhangjiajie",
        "Wulingyuan",
        "Zhangjiajie sandstone pillars",
    ),
}


def terms_for(class_id: str, name: str) -> tuple[str, ...]:
    """The search terms of a class: those listed above, else the class's English name."""
    return QUERIES.get(class_id) or (name,)
