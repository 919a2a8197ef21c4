"""Well-formed XML for phones: built with ElementTree, so every value is escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def document(root: ET.Element) -> bytes:
    """``root`` as UTF-8 with an XML declaration, indented for a human reader."""
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def child(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    """Append ``<tag attributes>text</tag>`` to ``parent``."""
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element
